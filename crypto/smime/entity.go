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
	return parseEntity(entity, 0, MaxDepth+1, &count)
}

// parseTop parses an entity and, for a multipart, the headers of its
// direct parts only. Verification needs no more, and what lies deeper in
// signed content must not stop a signature from being checked.
func parseTop(entity []byte) (*Entity, error) {
	count := 0
	return parseEntity(entity, 0, 1, &count)
}

// parseEntity parses b at nesting depth, splitting multiparts down to
// depth levels.
func parseEntity(b []byte, depth, levels int, count *int) (*Entity, error) {
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
	return buildEntity(h, b, b[bodyStart:], depth, levels, count)
}

// buildEntity completes an entity whose header is parsed; raw may be nil
// when header and body do not lie together in one buffer.
func buildEntity(h Header, raw, body []byte, depth, levels int, count *int) (*Entity, error) {
	e := &Entity{Header: h, Raw: raw, RawBody: body}
	var err error
	e.MediaType, e.Params, err = parseContentType(h.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	if !e.IsMultipart() || depth >= levels {
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
		child, err := parseEntity(p, depth+1, levels, count)
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
