package smime

import (
	"bytes"
	"encoding/base64"
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
	count := 0
	out, _, err := canonicalize(ToCRLF(entity), 0, &count)
	if err != nil {
		return nil, fmt.Errorf("canonicalise entity: %w", err)
	}
	return out, nil
}

func canonicalize(raw []byte, depth int, count *int) ([]byte, bool, error) {
	if depth > MaxDepth {
		return nil, false, fmt.Errorf("%w: more than %d levels", ErrTooDeep, MaxDepth)
	}
	*count++
	if *count > MaxParts {
		return nil, false, fmt.Errorf("%w: more than %d", ErrTooManyParts, MaxParts)
	}
	h, bodyStart, err := parseHeader(raw, MaxHeaderBytes)
	if err != nil {
		return nil, false, err
	}
	body := raw[bodyStart:]
	mt, params, err := parseContentType(h.Get("Content-Type"))
	if err != nil {
		return nil, false, err
	}
	enc := strings.ToLower(h.Get("Content-Transfer-Encoding"))
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		return canonicalizeMultipart(raw, h, body, params["boundary"], mt, depth, count)
	case mt == "message/rfc822" || mt == "message/global":
		inner, changed, err := canonicalize(body, depth+1, count)
		if err != nil || !changed {
			return raw, false, err
		}
		if enc == "8bit" || enc == "binary" {
			h = setField(h, "Content-Transfer-Encoding", "7bit")
		}
		return assemble(h, inner), true, nil
	}
	switch enc {
	case "base64", "quoted-printable":
		return raw, false, nil
	case "", "7bit", "8bit", "binary":
		if enc != "8bit" && enc != "binary" && is7bit(body) {
			return raw, false, nil
		}
	default:
		// An unknown encoding cannot be re-encoded without guessing what
		// it means; such a body is signed as it stands.
		return raw, false, nil
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
	return assemble(h, b.Bytes()), true, nil
}

func canonicalizeMultipart(raw []byte, h Header, body []byte, boundary, mt string, depth int, count *int) ([]byte, bool, error) {
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
	out := make([][]byte, len(parts))
	changedAny := false
	for i, p := range parts {
		c, changed, err := canonicalize(p, depth+1, count)
		if err != nil {
			return nil, false, fmt.Errorf("part %d: %w", i+1, err)
		}
		out[i] = c
		changedAny = changedAny || changed
	}
	if !changedAny {
		return raw, false, nil
	}
	if enc := strings.ToLower(h.Get("Content-Transfer-Encoding")); enc == "8bit" || enc == "binary" {
		h = setField(h, "Content-Transfer-Encoding", "7bit")
	}
	var b bytes.Buffer
	for _, p := range out {
		b.WriteString("--" + boundary + "\r\n")
		b.Write(p)
		b.WriteString("\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return assemble(h, b.Bytes()), true, nil
}

// assemble writes header fields, the empty line and body.
func assemble(h Header, body []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(body) + 512)
	h.WriteTo(&b)
	b.WriteString("\r\n")
	b.Write(body)
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

// is7bit reports whether body is valid 7bit data (RFC 2045 §2.7): no
// octets above 127, no NULs, no bare CR or LF, lines of at most 998 octets.
func is7bit(body []byte) bool {
	line := 0
	for i, c := range body {
		switch {
		case c >= 0x80 || c == 0:
			return false
		case c == '\r':
			if i+1 >= len(body) || body[i+1] != '\n' {
				return false
			}
		case c == '\n':
			if i == 0 || body[i-1] != '\r' {
				return false
			}
			line = -1
		}
		line++
		if line > 998 {
			return false
		}
	}
	return true
}

// writeBase64Lines writes data as base64 in lines of 76 characters, each
// ended by CRLF (RFC 2045 §6.8).
func writeBase64Lines(b *bytes.Buffer, data []byte) {
	const lineBytes = 57 // 76 base64 characters
	b.Grow(base64.StdEncoding.EncodedLen(len(data)) + len(data)/lineBytes*2 + 2)
	var line [76]byte
	for len(data) > 0 {
		n := min(lineBytes, len(data))
		base64.StdEncoding.Encode(line[:], data[:n])
		b.Write(line[:base64.StdEncoding.EncodedLen(n)])
		b.WriteString("\r\n")
		data = data[n:]
	}
}
