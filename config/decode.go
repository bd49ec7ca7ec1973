package config

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
)

// The toml package stops at the first value it cannot store, so the file
// is decoded into generic maps first and copied into Config here, one key
// at a time, collecting a problem for every unknown key and every value of
// the wrong type.

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// validator collects problems about keys of one file.
type validator struct {
	file  string
	lines keyLines
	probs *Problems
}

func (v *validator) bad(key, format string, args ...any) {
	v.probs.add(Problem{File: v.file, Line: v.lines.line(key), Key: key, Message: fmt.Sprintf(format, args...)})
}

// tomlFields maps the toml tag names of struct type t to field indexes.
func tomlFields(t reflect.Type) (map[string]int, []string) {
	fields := map[string]int{}
	var names []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("toml")
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		names = append(names, tag)
	}
	return fields, names
}

func decodeTable(v *validator, prefix string, m map[string]any, dst any) {
	decodeStruct(v, prefix, m, reflect.ValueOf(dst).Elem())
}

func decodeStruct(v *validator, prefix string, m map[string]any, sv reflect.Value) {
	fields, names := tomlFields(sv.Type())
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		full := k
		if prefix != "" {
			full = prefix + "." + k
		}
		i, ok := fields[k]
		if !ok {
			what := "key"
			if _, isTable := m[k].(map[string]any); isTable {
				what = "table"
			}
			v.bad(full, "unknown %s%s", what, suggest(k, prefix, names))
			continue
		}
		decodeValue(v, full, m[k], sv.Field(i))
	}
}

func decodeValue(v *validator, key string, val any, f reflect.Value) {
	switch f.Type() {
	case durationType:
		s, ok := val.(string)
		if !ok {
			v.bad(key, "must be a duration string such as \"30m\" or \"5h\", not %s", typeName(val))
			return
		}
		d, err := ParseDuration(s)
		if err != nil {
			v.bad(key, "%v", err)
			return
		}
		f.SetInt(int64(d))
		return
	case sizeType:
		switch x := val.(type) {
		case string:
			n, err := ParseSize(x)
			if err != nil {
				v.bad(key, "%v", err)
				return
			}
			f.SetInt(int64(n))
		case int64:
			if x < 0 {
				v.bad(key, "size must not be negative")
				return
			}
			f.SetInt(x)
		default:
			v.bad(key, "must be a size such as \"50MB\" or a number of bytes, not %s", typeName(val))
		}
		return
	}
	switch f.Kind() {
	case reflect.Struct:
		m, ok := val.(map[string]any)
		if !ok {
			v.bad(key, "must be a table [%s], not %s", key, typeName(val))
			return
		}
		decodeStruct(v, key, m, f)
	case reflect.String:
		s, ok := val.(string)
		if !ok {
			v.bad(key, "must be a string, not %s", typeName(val))
			return
		}
		f.SetString(s)
	case reflect.Bool:
		b, ok := val.(bool)
		if !ok {
			v.bad(key, "must be true or false, not %s", typeName(val))
			return
		}
		f.SetBool(b)
	case reflect.Int:
		n, ok := val.(int64)
		if !ok || n < math.MinInt32 || n > math.MaxInt32 {
			v.bad(key, "must be an integer, not %s", typeName(val))
			return
		}
		f.SetInt(n)
	case reflect.Slice:
		arr, ok := val.([]any)
		if !ok {
			v.bad(key, "must be an array of strings, not %s", typeName(val))
			return
		}
		out := make([]string, 0, len(arr))
		for i, e := range arr {
			s, ok := e.(string)
			if !ok {
				v.bad(key, "element %d must be a string, not %s", i+1, typeName(e))
				return
			}
			out = append(out, s)
		}
		f.Set(reflect.ValueOf(out))
	default:
		// Every field kind of Config is handled above; a new kind needs
		// a case, which the schema test catches.
		v.bad(key, "internal: field kind %s not decodable", f.Kind())
	}
}

// typeName names the TOML type of a decoded value, for messages.
func typeName(val any) string {
	switch x := val.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case time.Time:
		return "a date-time"
	default:
		return fmt.Sprintf("a %T", x)
	}
}

// suggest completes an unknown-key message with the closest known key or,
// when none is close, the list of known keys.
func suggest(k, table string, names []string) string {
	best, bestDist := "", min(3, (len(k)+1)/2)
	for _, n := range names {
		if d := editDistance(strings.ToLower(k), n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	where := "the top level"
	if table != "" {
		where = "[" + table + "]"
	}
	return fmt.Sprintf("; %s has: %s", where, strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
