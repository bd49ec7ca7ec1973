package smime

import (
	"bytes"
	"fmt"
	"mime/quotedprintable"
	"strings"
)

// Canonicalize returns an entity in the form that is signed (RFC 8551
// §3.1.1): CRLF line ends, and every leaf whose body is not 7-bit clean
// (Content-Transfer-Encoding 8bit or binary, or mislabelled 7bit with
// 8-bit bytes, NULs or lines longer than 998 octets) re-encoded as
// quoted-printable (text/*) or base64 (anything else), recursively through
// multiparts and message/rfc822. A relay that downgrades 8-bit mail would
// otherwise change the signed bytes. Entities that need no change come back
// byte for byte.
func Canonicalize(entity []byte) ([]byte, error) {
	entity = ToCRLF(entity)
	h, bodyStart, err := parseHeader(entity, MaxHeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("canonicalise entity: %w", err)
	}
	count := 0
	p, changed, err := canonicalEntity(h, entity[bodyStart:], 0, &count)
	if err != nil {
		return nil, fmt.Errorf("canonicalise entity: %w", err)
	}
	if !changed {
		return entity, nil
	}
	return p.join(), nil
}

// pieces is content held as consecutive slices, so unchanged parts of a
// large message are signed and written without being copied.
type pieces [][]byte

func (p pieces) len() int {
	n := 0
	for _, b := range p {
		n += len(b)
	}
	return n
}

func (p pieces) join() []byte {
	out := make([]byte, 0, p.len())
	for _, b := range p {
		out = append(out, b...)
	}
	return out
}

var crlf = []byte("\r\n")

// canonicalEntity returns the canonical form of the entity with header
// h and body (both CRLF) as pieces, and whether anything changed.
func canonicalEntity(h Header, body []byte, depth int, count *int) (pieces, bool, error) {
	if depth > MaxDepth {
		return nil, false, fmt.Errorf("%w: more than %d levels", ErrTooDeep, MaxDepth)
	}
	*count++
	if *count > MaxParts {
		return nil, false, fmt.Errorf("%w: more than %d", ErrTooManyParts, MaxParts)
	}
	mt, params, err := parseContentType(h.Get("Content-Type"))
	if err != nil {
		return nil, false, err
	}
	enc := strings.ToLower(h.Get("Content-Transfer-Encoding"))
	unchanged := pieces{headerBytes(h), crlf, body}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		return canonicalMultipart(h, body, params["boundary"], mt, depth, count)
	case mt == "message/rfc822" || mt == "message/global":
		ih, bodyStart, err := parseHeader(body, MaxHeaderBytes)
		if err != nil {
			return nil, false, err
		}
		inner, changed, err := canonicalEntity(ih, body[bodyStart:], depth+1, count)
		if err != nil || !changed {
			return unchanged, false, err
		}
		if enc == "8bit" || enc == "binary" {
			h = setField(h, "Content-Transfer-Encoding", "7bit")
		}
		return append(pieces{headerBytes(h), crlf}, inner...), true, nil
	}
	switch enc {
	case "base64", "quoted-printable":
		return unchanged, false, nil
	case "", "7bit", "8bit", "binary":
		if enc != "8bit" && enc != "binary" && is7bit(body) {
			return unchanged, false, nil
		}
	default:
		// An unknown encoding cannot be re-encoded without guessing what
		// it means; such a body is signed as it stands.
		return unchanged, false, nil
	}
	var b bytes.Buffer
	if strings.HasPrefix(mt, "text/") {
		h = setField(h, "Content-Transfer-Encoding", "quoted-printable")
		w := quotedprintable.NewWriter(&b)
		w.Write(body)
		w.Close()
	} else {
		h = setField(h, "Content-Transfer-Encoding", "base64")
		writeBase64Lines(&b, body)
	}
	return pieces{headerBytes(h), crlf, b.Bytes()}, true, nil
}

func canonicalMultipart(h Header, body []byte, boundary, mt string, depth int, count *int) (pieces, bool, error) {
	if boundary == "" {
		return nil, false, fmt.Errorf("%w: %s without boundary parameter", ErrMalformedMIME, mt)
	}
	parts, err := SplitMultipart(body, boundary)
	if err != nil {
		return nil, false, err
	}
	if len(parts) == 0 {
		return nil, false, fmt.Errorf("%w: %s without body parts", ErrMalformedMIME, mt)
	}
	out := make([]pieces, len(parts))
	changedAny := false
	for i, p := range parts {
		ph, bodyStart, err := parseHeader(p, MaxHeaderBytes)
		if err != nil {
			return nil, false, fmt.Errorf("part %d: %w", i+1, err)
		}
		c, changed, err := canonicalEntity(ph, p[bodyStart:], depth+1, count)
		if err != nil {
			return nil, false, fmt.Errorf("part %d: %w", i+1, err)
		}
		out[i] = c
		changedAny = changedAny || changed
	}
	if !changedAny {
		return pieces{headerBytes(h), crlf, body}, false, nil
	}
	if enc := strings.ToLower(h.Get("Content-Transfer-Encoding")); enc == "8bit" || enc == "binary" {
		h = setField(h, "Content-Transfer-Encoding", "7bit")
	}
	delim := []byte("--" + boundary + "\r\n")
	res := pieces{headerBytes(h), crlf}
	for _, p := range out {
		res = append(res, delim)
		res = append(res, p...)
		res = append(res, crlf)
	}
	return append(res, []byte("--"+boundary+"--\r\n")), true, nil
}

// headerBytes concatenates the fields of h.
func headerBytes(h Header) []byte {
	var b bytes.Buffer
	h.WriteTo(&b)
	return b.Bytes()
}

// setField replaces the first field named name (dropping any others of
// that name) or appends one.
func setField(h Header, name, value string) Header {
	out := make(Header, 0, len(h)+1)
	done := false
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			if !done {
				out = append(out, NewField(name, value))
				done = true
			}
			continue
		}
		out = append(out, f)
	}
	if !done {
		out = append(out, NewField(name, value))
	}
	return out
}

// writeBase64Lines writes data as base64 in lines of 76 characters, each
// ended by CRLF (RFC 2045 §6.8).
func writeBase64Lines(b *bytes.Buffer, data []byte) {
	b.Grow(int(base64Len(int64(len(data)))))
	b.Write(appendBase64Lines(b.AvailableBuffer(), data))
}
