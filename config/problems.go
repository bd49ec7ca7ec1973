package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	File    string // as given to Load or Parse
	Line    int    // 1-based; 0 when the key is not in the file (a default)
	Key     string // dotted key, "imap.listen"; empty for syntax errors
	Message string
}

// String formats p as "file:line: key: message", leaving out the line
// when unknown and the key when empty.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is the error Load and Parse return: every problem found, in
// file order.
type Problems struct {
	List []Problem
}

// Error prints one problem per line.
func (ps *Problems) Error() string {
	lines := make([]string, len(ps.List))
	for i, p := range ps.List {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func (ps *Problems) add(p Problem) { ps.List = append(ps.List, p) }

// sort orders problems by line, keeping the order of discovery within a
// line; problems without a line (about defaults) come last.
func (ps *Problems) sort() {
	slices.SortStableFunc(ps.List, func(a, b Problem) int {
		la, lb := a.Line, b.Line
		if la == 0 {
			la = int(^uint(0) >> 1)
		}
		if lb == 0 {
			lb = int(^uint(0) >> 1)
		}
		return cmp.Compare(la, lb)
	})
}

func (ps *Problems) err() error {
	if len(ps.List) == 0 {
		return nil
	}
	ps.sort()
	return ps
}
