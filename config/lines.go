package config

import (
	"strconv"
	"strings"
)

// keyLines maps dotted keys and table names to the line that first
// defines them. The toml package keeps key positions to itself (only a
// ParseError carries one), so problems found after decoding look their
// line up here.
type keyLines map[string]int

// line returns the line of key, else of the nearest enclosing table that
// is in the file, else 0.
func (kl keyLines) line(key string) int {
	for k := key; k != ""; {
		if l, ok := kl[k]; ok {
			return l
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// scanKeyLines is a small TOML lexer that only tracks where keys are
// defined: table headers, key/value pairs and the keys of inline tables,
// skipping over strings (all four kinds), arrays and comments so their
// contents are never mistaken for keys. It never fails; on input the toml
// package rejects it returns whatever it found.
func scanKeyLines(data []byte) keyLines {
	s := &lineScanner{data: data, line: 1, out: keyLines{}}
	if strings.HasPrefix(string(data[:min(3, len(data))]), "\uFEFF") {
		s.pos = 3 // UTF-8 byte order mark
	}
	s.document()
	return s.out
}

type lineScanner struct {
	data []byte
	pos  int
	line int
	out  keyLines
}

func (s *lineScanner) eof() bool { return s.pos >= len(s.data) }

func (s *lineScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.data[s.pos]
}

func (s *lineScanner) next() {
	if s.eof() {
		return
	}
	if s.data[s.pos] == '\n' {
		s.line++
	}
	s.pos++
}

func (s *lineScanner) hasPrefix(p string) bool {
	return strings.HasPrefix(string(s.data[s.pos:min(len(s.data), s.pos+len(p))]), p)
}

func (s *lineScanner) record(key []string, line int) {
	if len(key) == 0 {
		return
	}
	k := strings.Join(key, ".")
	if _, ok := s.out[k]; !ok {
		s.out[k] = line
	}
}

// skipBlank skips spaces and tabs.
func (s *lineScanner) skipBlank() {
	for c := s.peek(); c == ' ' || c == '\t'; c = s.peek() {
		s.next()
	}
}

// skipSpace skips whitespace, newlines and comments.
func (s *lineScanner) skipSpace() {
	for !s.eof() {
		switch s.peek() {
		case ' ', '\t', '\r', '\n':
			s.next()
		case '#':
			s.skipLine()
		default:
			return
		}
	}
}

// skipLine skips to just past the next newline.
func (s *lineScanner) skipLine() {
	for !s.eof() && s.peek() != '\n' {
		s.next()
	}
	s.next()
}

func (s *lineScanner) document() {
	var table []string
	for {
		s.skipSpace()
		if s.eof() {
			return
		}
		start := s.pos
		line := s.line
		if s.peek() == '[' {
			s.next()
			if s.peek() == '[' {
				s.next()
			}
			table = s.key()
			s.record(table, line)
		} else {
			key := s.key()
			s.skipBlank()
			if len(key) > 0 && s.peek() == '=' {
				s.next()
				full := append(append([]string{}, table...), key...)
				s.record(full, line)
				s.value(full)
			}
		}
		// The rest of the line can only be a comment (or, on broken
		// input, garbage); both are skipped.
		if s.line == line || s.pos == start {
			s.skipLine()
		}
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// key reads a dotted key of bare and quoted parts.
func (s *lineScanner) key() []string {
	var parts []string
	for {
		s.skipBlank()
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			parts = append(parts, s.quoted(c))
		case isBare(c):
			start := s.pos
			for isBare(s.peek()) {
				s.next()
			}
			parts = append(parts, string(s.data[start:s.pos]))
		default:
			return parts
		}
		s.skipBlank()
		if s.peek() != '.' {
			return parts
		}
		s.next()
	}
}

// quoted reads a single-line string starting at the quote q and returns
// its value (escapes decoded for basic strings where possible).
func (s *lineScanner) quoted(q byte) string {
	start := s.pos
	s.next()
	for !s.eof() {
		c := s.peek()
		if c == '\n' {
			break
		}
		s.next()
		if c == '\\' && q == '"' {
			s.next()
			continue
		}
		if c == q {
			break
		}
	}
	raw := string(s.data[start:s.pos])
	if q == '"' {
		if v, err := strconv.Unquote(raw); err == nil {
			return v
		}
	}
	return strings.TrimSuffix(strings.TrimPrefix(raw, string(q)), string(q))
}

// multiline skips a multi-line string whose opening delimiter d has been
// consumed, including up to two quotes that belong to the content.
func (s *lineScanner) multiline(d string) {
	for !s.eof() {
		if d == `"""` && s.peek() == '\\' {
			s.next()
			s.next()
			continue
		}
		if s.hasPrefix(d) {
			s.pos += 3
			for i := 0; i < 2 && s.peek() == d[0]; i++ {
				s.next()
			}
			return
		}
		s.next()
	}
}

// value skips one value; keys of inline tables are recorded under prefix
// (nil inside arrays, where keys have no single dotted name).
func (s *lineScanner) value(prefix []string) {
	s.skipBlank()
	switch c := s.peek(); {
	case s.hasPrefix(`"""`) || s.hasPrefix(`'''`):
		d := string(s.data[s.pos : s.pos+3])
		s.pos += 3
		s.multiline(d)
	case c == '"' || c == '\'':
		s.quoted(c)
	case c == '[':
		s.next()
		for !s.eof() {
			s.skipSpace()
			switch s.peek() {
			case ']':
				s.next()
				return
			case ',':
				s.next()
				continue
			}
			start := s.pos
			s.value(nil)
			if s.pos == start {
				s.next()
			}
		}
	case c == '{':
		s.next()
		for !s.eof() {
			s.skipSpace()
			switch s.peek() {
			case '}':
				s.next()
				return
			case ',':
				s.next()
				continue
			}
			start, line := s.pos, s.line
			key := s.key()
			s.skipBlank()
			if len(key) == 0 || s.peek() != '=' {
				if s.pos == start {
					s.next()
				}
				continue
			}
			s.next()
			var full []string
			if prefix != nil {
				full = append(append([]string{}, prefix...), key...)
				s.record(full, line)
			}
			s.value(full)
		}
	default:
		for !s.eof() && !strings.ContainsRune(" \t\r\n,]}#", rune(s.peek())) {
			s.next()
		}
	}
}
