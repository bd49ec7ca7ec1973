package smime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits on what the MIME parser accepts. They bound time and memory on
// hostile input; real mail stays far below them.
const (
	// MaxHeaderBytes bounds one header block (top level or part).
	MaxHeaderBytes = 1 << 20
	// MaxHeaderLine bounds one physical header line.
	MaxHeaderLine = 64 << 10
	// MaxDepth bounds MIME nesting: multiparts inside multiparts, and
	// S/MIME layers inside S/MIME layers.
	MaxDepth = 16
	// MaxParts bounds the number of entities in one MIME tree.
	MaxParts = 10000
)

// Sentinel errors of the MIME layer; callers branch on them with errors.Is.
var (
	ErrHeaderTooLarge = errors.New("smime: header block too large")
	ErrLineTooLong    = errors.New("smime: header line too long")
	ErrTooDeep        = errors.New("smime: MIME nesting too deep")
	ErrTooManyParts   = errors.New("smime: too many MIME parts")
	ErrMalformedMIME  = errors.New("smime: malformed MIME")
)

// Field is one header field. Raw is the whole field including its name,
// folding and the final CRLF, with every line end normalised to CRLF.
type Field struct {
	Name string
	Raw  []byte
}

// Value returns the unfolded field body with surrounding white space removed.
func (f Field) Value() string {
	i := bytes.IndexByte(f.Raw, ':')
	if i < 0 {
		return ""
	}
	v := f.Raw[i+1:]
	v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
	return strings.TrimSpace(string(v))
}

// Header is an ordered list of header fields.
type Header []Field

// Get returns the unfolded value of the first field named name
// (case-insensitive), or "".
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value()
		}
	}
	return ""
}

// Has reports whether a field named name is present.
func (h Header) Has(name string) bool {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// WriteTo writes every field in order.
func (h Header) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, f := range h {
		m, err := w.Write(f.Raw)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// NewField builds a field "Name: value\r\n". value must already be folded
// if it is long; it must not contain bare line ends.
func NewField(name, value string) Field {
	return Field{Name: name, Raw: []byte(name + ": " + value + "\r\n")}
}

// isContentField reports whether a top-level field belongs to the MIME
// entity (RFC 2045 Content-* fields) rather than to the message envelope.
func isContentField(name string) bool {
	return len(name) >= 8 && strings.EqualFold(name[:8], "content-")
}

// defaultContentType is what RFC 2045 §5.2 assumes for a message without
// Content-Type; it is written explicitly so the signed entity says it.
const defaultContentType = "text/plain; charset=us-ascii"

// SplitMessage splits an RFC 5322 message into the header fields that stay
// outside the S/MIME wrapping and the MIME entity that goes inside. Line
// ends are normalised to CRLF first (bare LF becomes CRLF). MIME-Version is
// dropped; Content-* fields move into the entity, which gets
// "Content-Type: text/plain; charset=us-ascii" when the message has none.
func SplitMessage(raw []byte) (outer Header, entity []byte, err error) {
	outer, inner, body, err := splitFields(ToCRLF(raw))
	if err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	b.Grow(len(body) + 256)
	inner.WriteTo(&b)
	b.WriteString("\r\n")
	b.Write(body)
	return outer, b.Bytes(), nil
}

// splitFields is SplitMessage without assembling the entity: the entity's
// header fields and its body, a slice of msg (which must have CRLF line
// ends), so large bodies are not copied.
func splitFields(msg []byte) (outer, inner Header, body []byte, err error) {
	h, bodyStart, err := parseHeader(msg, MaxHeaderBytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("split message: %w", err)
	}
	for _, f := range h {
		switch {
		case strings.EqualFold(f.Name, "MIME-Version"):
		case isContentField(f.Name):
			inner = append(inner, f)
		default:
			outer = append(outer, f)
		}
	}
	if !inner.Has("Content-Type") {
		inner = append(Header{NewField("Content-Type", defaultContentType)}, inner...)
	}
	return outer, inner, msg[bodyStart:], nil
}

// Compose writes the outer fields, "MIME-Version: 1.0" and the entity (which
// starts with its own Content-* fields). A MIME-Version among outer is
// skipped so the result carries exactly one.
func Compose(w io.Writer, outer Header, entity []byte) error {
	for _, f := range outer {
		if strings.EqualFold(f.Name, "MIME-Version") {
			continue
		}
		if _, err := w.Write(f.Raw); err != nil {
			return fmt.Errorf("compose message: %w", err)
		}
	}
	if _, err := io.WriteString(w, "MIME-Version: 1.0\r\n"); err != nil {
		return fmt.Errorf("compose message: %w", err)
	}
	if _, err := w.Write(entity); err != nil {
		return fmt.Errorf("compose message: %w", err)
	}
	return nil
}

// ToCRLF returns b with every bare LF turned into CRLF. It returns b itself
// when nothing needs to change.
func ToCRLF(b []byte) []byte {
	// This runs over every signed or verified message: the count is a
	// word-at-a-time scan.
	bare := bareLFs(b)
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for len(b) > 0 {
		j := bytes.IndexByte(b, '\n')
		if j < 0 {
			return append(out, b...)
		}
		out = append(out, b[:j]...)
		if j == 0 && (len(out) == 0 || out[len(out)-1] != '\r') || j > 0 && b[j-1] != '\r' {
			out = append(out, '\r')
		}
		out = append(out, '\n')
		b = b[j+1:]
	}
	return out
}

// parseHeader reads the header block at the start of b, accepting CRLF or
// LF line ends. It returns the fields (Raw normalised to CRLF) and the
// offset of the body, just past the empty line. A block without an empty
// line (header only) ends at len(b).
func parseHeader(b []byte, limit int) (Header, int, error) {
	var h Header
	pos := 0
	for pos < len(b) {
		if pos > limit {
			return nil, 0, fmt.Errorf("%w: more than %d bytes", ErrHeaderTooLarge, limit)
		}
		end, next := lineAt(b, pos)
		if end-pos > MaxHeaderLine {
			return nil, 0, fmt.Errorf("%w: a line of more than %d bytes", ErrLineTooLong, MaxHeaderLine)
		}
		line := b[pos:end]
		if len(line) == 0 {
			return h, next, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(h) == 0 {
				return nil, 0, fmt.Errorf("%w: header starts with a continuation line", ErrMalformedMIME)
			}
			last := &h[len(h)-1]
			last.Raw = append(append(last.Raw, line...), '\r', '\n')
			pos = next
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validFieldName(line[:colon]) {
			return nil, 0, fmt.Errorf("%w: header line %q is not a field", ErrMalformedMIME, abbreviate(line))
		}
		raw := make([]byte, 0, len(line)+2)
		raw = append(append(raw, line...), '\r', '\n')
		h = append(h, Field{Name: string(line[:colon]), Raw: raw})
		pos = next
	}
	if len(b) > limit {
		return nil, 0, fmt.Errorf("%w: more than %d bytes", ErrHeaderTooLarge, limit)
	}
	return h, len(b), nil
}

// lineAt returns the end of the line starting at pos (excluding CR LF or
// LF) and the start of the next line.
func lineAt(b []byte, pos int) (end, next int) {
	i := bytes.IndexByte(b[pos:], '\n')
	if i < 0 {
		return len(b), len(b)
	}
	end = pos + i
	next = end + 1
	if end > pos && b[end-1] == '\r' {
		end--
	}
	return end, next
}

func validFieldName(name []byte) bool {
	for _, c := range name {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

func abbreviate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}
