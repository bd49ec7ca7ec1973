package smime

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"strings"
)

// The application/pkcs7-mime wrapping of an envelope (RFC 8551 §3.3,
// §3.4) and the content handed to the envelope code.

// content is the plaintext of an envelope in two pieces, so a whole message
// can be encrypted without first assembling its entity in a buffer of its
// own: head (the entity's Content-* fields and the empty line) is copied
// as is, body with bare LFs turned into CRLF on the way.
type content struct {
	head, body []byte
	fixLF      bool
}

func (c content) size() int {
	n := len(c.head) + len(c.body)
	if c.fixLF {
		n += bareLFs(c.body)
	}
	return n
}

// copyTo writes the content into dst, which has exactly c.size() bytes.
func (c content) copyTo(dst []byte) {
	n := copy(dst, c.head)
	if !c.fixLF {
		copy(dst[n:], c.body)
		return
	}
	prev := byte(0)
	if len(c.head) > 0 {
		prev = c.head[len(c.head)-1]
	}
	for _, b := range c.body {
		if b == '\n' && prev != '\r' {
			dst[n] = '\r'
			n++
		}
		dst[n] = b
		n++
		prev = b
	}
}

// Len and WriteTo make content a Content for NewEnvelope.
func (c content) Len() int64 { return int64(c.size()) }

func (c content) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(c.head)
	if err != nil {
		return int64(n), err
	}
	total := int64(n)
	if !c.fixLF {
		n, err = w.Write(c.body)
		return total + int64(n), err
	}
	// Bare LFs are rare (SMTP delivers CRLF): a line at a time through a
	// small buffer is fast enough.
	buf := make([]byte, 0, 16<<10)
	prev := byte(0)
	if len(c.head) > 0 {
		prev = c.head[len(c.head)-1]
	}
	for body := c.body; len(body) > 0; {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line = body[:i+1]
		}
		body = body[len(line):]
		if line[len(line)-1] == '\n' && (len(line) > 1 && line[len(line)-2] != '\r' || len(line) == 1 && prev != '\r') {
			buf = append(append(buf, line[:len(line)-1]...), '\r', '\n')
		} else {
			buf = append(buf, line...)
		}
		prev = line[len(line)-1]
		if len(buf) >= cap(buf)/2 || len(body) == 0 {
			n, err = w.Write(buf)
			total += int64(n)
			if err != nil {
				return total, err
			}
			buf = buf[:0]
		}
	}
	return total, nil
}

// splitHeaderBody cuts a message after the empty line that ends its header
// block (CRLF or LF). Without one, the whole message is header.
func splitHeaderBody(msg []byte) (head, body []byte) {
	pos := 0
	for pos < len(msg) {
		i := bytes.IndexByte(msg[pos:], '\n')
		if i < 0 {
			break
		}
		line := msg[pos : pos+i]
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return msg[:pos+i+1], msg[pos+i+1:]
		}
		pos += i + 1
	}
	return msg, nil
}

// splitForEnvelope splits msg into the outer header fields and the content
// to encrypt (the entity), without copying the body.
func splitForEnvelope(msg []byte) (Header, content, error) {
	head, body := splitHeaderBody(msg)
	outer, entityHead, err := SplitMessage(head)
	if err != nil {
		return nil, content{}, err
	}
	return outer, content{head: entityHead, body: body, fixLF: bareLFs(body) > 0}, nil
}

// pkcs7MIMEHeader is the entity header of an encrypted message.
func pkcs7MIMEHeader(auth bool) string {
	smimeType := "enveloped-data"
	if auth {
		smimeType = "authEnveloped-data"
	}
	return "Content-Type: application/pkcs7-mime; smime-type=" + smimeType + "; name=\"smime.p7m\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n"
}

// envelopeBody finds the CMS bytes in an encrypted message: the outer
// header fields, and the decoded DER with a flag telling whether it is a
// fresh buffer (decoded here) that may be decrypted in place.
func envelopeBody(msg []byte) (Header, []byte, bool, error) {
	head, body := splitHeaderBody(msg)
	outer, entityHead, err := SplitMessage(head)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// Only the entity's header is looked at here: the body is base64 of
	// the envelope, or something that is not ours to parse.
	inner, _, err := parseHeader(entityHead, MaxHeaderBytes)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ent := &Entity{Header: inner}
	ctype := inner.Get("Content-Type")
	switch kind := Classify(ctype); kind {
	case Enveloped, AuthEnveloped:
	case Plain:
		if !isOctetStreamP7M(ctype, ent.Header.Get("Content-Disposition")) {
			return nil, nil, false, fmt.Errorf("%w: the message is %s (Content-Type %s)", ErrNotEncrypted, kind, ctype)
		}
	default:
		return nil, nil, false, fmt.Errorf("%w: the message is %s, not encrypted", ErrNotEncrypted, kind)
	}
	switch enc := ent.Encoding(); enc {
	case "base64":
		der, err := decodeBase64Body(body)
		if err != nil {
			return nil, nil, false, err
		}
		if len(der) == 0 {
			return nil, nil, false, fmt.Errorf("%w: empty body", ErrMalformed)
		}
		return outer, der, true, nil
	case "binary", "8bit", "7bit":
		if len(body) == 0 {
			return nil, nil, false, fmt.Errorf("%w: empty body", ErrMalformed)
		}
		return outer, body, false, nil
	default:
		return nil, nil, false, fmt.Errorf("%w: Content-Transfer-Encoding %q for an encrypted body", ErrMalformed, enc)
	}
}

// isOctetStreamP7M: RFC 8551 §3.2.2 lets senders label the envelope
// application/octet-stream with a .p7m file name.
func isOctetStreamP7M(ctype, disposition string) bool {
	mt, params, _ := mime.ParseMediaType(ctype)
	if !strings.EqualFold(mt, "application/octet-stream") {
		return false
	}
	name := params["name"]
	if _, dp, err := mime.ParseMediaType(disposition); err == nil && dp["filename"] != "" {
		name = dp["filename"]
	}
	return strings.HasSuffix(strings.ToLower(name), ".p7m")
}

// dropMIMEVersion removes MIME-Version fields from the header of a
// decrypted entity (senders that encrypt a whole message leave one in),
// so that Compose, which writes its own, does not repeat it. The entity
// buffer is ours: the kept header is moved up against the body in place.
func dropMIMEVersion(entity []byte) []byte {
	head, _ := splitHeaderBody(entity)
	var kept []byte
	dropping, found := false, false
	for pos := 0; pos < len(head); {
		end := bytes.IndexByte(head[pos:], '\n')
		if end < 0 {
			end = len(head)
		} else {
			end += pos + 1
		}
		line := head[pos:end]
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if !dropping {
				kept = append(kept, line...)
			}
		} else {
			name, _, _ := bytes.Cut(line, []byte(":"))
			dropping = strings.EqualFold(strings.TrimSpace(string(name)), "MIME-Version")
			found = found || dropping
			if !dropping {
				kept = append(kept, line...)
			}
		}
		pos = end
	}
	if !found {
		return entity
	}
	start := len(head) - len(kept)
	copy(entity[start:], kept)
	return entity[start:]
}

// decodeBase64Body decodes a base64 body into one buffer. Line by line is
// the fast path (the decoder's 8-character loop stops at every line
// break), in two halves side by side for large bodies; lines that do not
// hold whole quanta, or stray white space, fall back to decoding the whole
// body, then to the tolerant DecodeBase64.
func decodeBase64Body(body []byte) ([]byte, error) {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
	if n, ok := decodeLinesParallel(out, body); ok {
		return out[:n], nil
	}
	n, err := base64.StdEncoding.Decode(out, body) // skips CR and LF
	if err == nil {
		return out[:n], nil
	}
	der, err := DecodeBase64(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return der, nil
}
