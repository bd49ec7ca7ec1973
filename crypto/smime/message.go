package smime

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
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
	msg := ToCRLF(raw)
	h, bodyStart, err := parseHeader(msg, MaxHeaderBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("split message: %w", err)
	}
	var inner Header
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
	var b bytes.Buffer
	b.Grow(len(msg) - bodyStart + 256)
	inner.WriteTo(&b)
	b.WriteString("\r\n")
	b.Write(msg[bodyStart:])
	return outer, b.Bytes(), nil
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
	bare := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			bare++
		}
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
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

// Entity is one parsed MIME entity. Raw and RawBody are slices of the input
// given to ParseEntity, so signatures can be checked over the exact bytes.
type Entity struct {
	Header    Header
	MediaType string            // lower case "type/subtype"
	Params    map[string]string // lower-case names
	Raw       []byte            // the whole entity: header, empty line, body
	RawBody   []byte            // the body as it stands, still transfer-encoded
	Parts     []*Entity         // children of a multipart, in order
}

// Encoding returns the lower-case Content-Transfer-Encoding, "7bit" when absent.
func (e *Entity) Encoding() string {
	v := strings.ToLower(e.Header.Get("Content-Transfer-Encoding"))
	if v == "" {
		return "7bit"
	}
	return v
}

// IsMultipart reports whether the entity is a multipart/*.
func (e *Entity) IsMultipart() bool { return strings.HasPrefix(e.MediaType, "multipart/") }

// Body returns the body with its transfer encoding (base64,
// quoted-printable, 7bit, 8bit, binary) removed.
func (e *Entity) Body() ([]byte, error) {
	switch enc := e.Encoding(); enc {
	case "7bit", "8bit", "binary":
		return e.RawBody, nil
	case "base64":
		return DecodeBase64(e.RawBody)
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(e.RawBody)))
		if err != nil {
			return nil, fmt.Errorf("%w: quoted-printable body: %v", ErrMalformedMIME, err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unknown Content-Transfer-Encoding %q", ErrMalformedMIME, enc)
	}
}

// DecodeBase64 decodes base64 that may be broken into lines (CRLF or LF)
// and carry white space, as mail bodies do. Garbage gives ErrMalformedMIME.
func DecodeBase64(b []byte) ([]byte, error) {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			clean = append(clean, c)
		}
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	if err != nil {
		return nil, fmt.Errorf("%w: base64 body: %v", ErrMalformedMIME, err)
	}
	return out[:n], nil
}

// ParseEntity parses a MIME entity (header fields, empty line, body) and,
// for multiparts, its parts recursively up to MaxDepth levels and MaxParts
// entities. CRLF or LF line ends are accepted. message/rfc822 bodies are
// not descended into. A missing Content-Type means text/plain (RFC 2045).
func ParseEntity(entity []byte) (*Entity, error) {
	count := 0
	return parseEntity(entity, 0, &count)
}

func parseEntity(b []byte, depth int, count *int) (*Entity, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: more than %d levels", ErrTooDeep, MaxDepth)
	}
	*count++
	if *count > MaxParts {
		return nil, fmt.Errorf("%w: more than %d", ErrTooManyParts, MaxParts)
	}
	h, bodyStart, err := parseHeader(b, MaxHeaderBytes)
	if err != nil {
		return nil, err
	}
	e := &Entity{Header: h, Raw: b, RawBody: b[bodyStart:]}
	e.MediaType, e.Params, err = parseContentType(h.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	if !e.IsMultipart() {
		return e, nil
	}
	boundary := e.Params["boundary"]
	if boundary == "" {
		return nil, fmt.Errorf("%w: %s without boundary parameter", ErrMalformedMIME, e.MediaType)
	}
	parts, err := SplitMultipart(e.RawBody, boundary)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: %s without body parts", ErrMalformedMIME, e.MediaType)
	}
	for i, p := range parts {
		child, err := parseEntity(p, depth+1, count)
		if err != nil {
			if errors.Is(err, ErrTooDeep) || errors.Is(err, ErrTooManyParts) {
				return nil, err
			}
			return nil, fmt.Errorf("part %d: %w", i+1, err)
		}
		e.Parts = append(e.Parts, child)
	}
	return e, nil
}

// parseContentType returns the lower-case media type and parameters. An
// empty value means text/plain; charset=us-ascii. Bad parameters are
// dropped (as mime.ParseMediaType allows), a bad media type is an error.
func parseContentType(v string) (string, map[string]string, error) {
	if v == "" {
		return "text/plain", map[string]string{"charset": "us-ascii"}, nil
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return "", nil, fmt.Errorf("%w: Content-Type %q: %v", ErrMalformedMIME, abbreviate([]byte(v)), err)
	}
	if params == nil {
		params = map[string]string{}
	}
	return strings.ToLower(mt), params, nil
}

// SplitMultipart returns the body parts of a multipart body as slices of b:
// the bytes between a delimiter line and the line end that precedes the
// next delimiter (RFC 2046 §5.1.1). A missing close delimiter ends the last
// part at the end of b.
func SplitMultipart(b []byte, boundary string) ([][]byte, error) {
	if len(boundary) > 70+20 {
		return nil, fmt.Errorf("%w: boundary longer than 70 characters", ErrMalformedMIME)
	}
	delim := []byte("--" + boundary)
	var parts [][]byte
	start := -1 // start of the current part, -1 before the first delimiter
	pos := 0
	for pos <= len(b) {
		i := findDelimiter(b, pos, delim)
		if i < 0 {
			break
		}
		after := i + len(delim)
		closing := bytes.HasPrefix(b[after:], []byte("--"))
		if closing {
			after += 2
		}
		// Only transport padding may follow the delimiter on its line.
		end, next := lineAt(b, after)
		if len(bytes.TrimRight(b[after:end], " \t")) != 0 {
			pos = after // "--boundaryX": not a delimiter, a longer string
			continue
		}
		if start >= 0 {
			parts = append(parts, b[start:max(start, partEnd(b, i))])
			if len(parts) > MaxParts {
				return nil, fmt.Errorf("%w: more than %d", ErrTooManyParts, MaxParts)
			}
		}
		if closing {
			return parts, nil
		}
		start = next
		pos = next
	}
	if start < 0 {
		return nil, fmt.Errorf("%w: no delimiter line for boundary %q", ErrMalformedMIME, boundary)
	}
	return append(parts, b[start:]), nil
}

// findDelimiter finds delim at the start of a line at or after pos.
func findDelimiter(b []byte, pos int, delim []byte) int {
	for pos <= len(b) {
		i := bytes.Index(b[pos:], delim)
		if i < 0 {
			return -1
		}
		i += pos
		if i == 0 || b[i-1] == '\n' {
			return i
		}
		pos = i + 1
	}
	return -1
}

// partEnd returns where the part before the delimiter at i ends: the line
// end preceding the delimiter belongs to the delimiter.
func partEnd(b []byte, i int) int {
	if i > 0 && b[i-1] == '\n' {
		i--
		if i > 0 && b[i-1] == '\r' {
			i--
		}
	}
	return i
}
