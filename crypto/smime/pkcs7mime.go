package smime

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"runtime"
	"strings"
	"sync/atomic"
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

func bareLFs(b []byte) int {
	n := 0
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			n++
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return n
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

// base64Lines writes base64 in 76-character CRLF lines, a block of whole
// lines per Write (see appendBase64Lines).
type base64Lines struct {
	w   io.Writer
	out []byte
}

const (
	b64LineIn    = 57 // input bytes per 76-character line
	b64BlockLine = 128
)

func newBase64Lines(w io.Writer) *base64Lines {
	return &base64Lines{w: w, out: make([]byte, 0, b64BlockLine*78)}
}

// emit writes the whole lines in data (all of it when final) and returns
// how many bytes it consumed.
func (b *base64Lines) emit(data []byte, final bool) (int, error) {
	n := len(data)
	if !final {
		n -= n % b64LineIn
	}
	for done := 0; done < n; {
		k := min(n-done, b64LineIn*b64BlockLine)
		out := appendBase64Lines(b.out[:0], data[done:done+k])
		if _, err := b.w.Write(out); err != nil {
			return done, err
		}
		done += k
	}
	return n, nil
}

// writeBase64Body writes data as base64 in 76-character CRLF lines, in
// blocks, without an encoded copy of the whole.
func writeBase64Body(w io.Writer, data []byte) error {
	_, err := newBase64Lines(w).emit(data, true)
	return err
}

// CBC encryption cannot run in parallel and base64 costs about as much
// again, so for larger messages the two run side by side: a goroutine
// encrypts the content area chunk by chunk while this one encodes and
// writes everything before the encrypter's position. Measured on two
// loaded cores: 10 MB twice as fast; at 100 KB the hand-over costs more
// than it saves, hence the threshold.
const (
	pipelineMin   = 256 << 10
	pipelineChunk = 16 << 10 // a multiple of the AES block size
)

// encryptAndWriteBase64 finishes p and writes its DER as base64 lines.
func encryptAndWriteBase64(w io.Writer, p *pendingEnvelope) error {
	if p.cbc == nil || p.f.end-p.f.start < pipelineMin || runtime.GOMAXPROCS(0) < 2 {
		return writeBase64Body(w, p.finish())
	}
	buf, mode := p.f.buf, p.cbc
	p.cbc = nil
	ready := make(chan int, 4)
	var stop atomic.Bool
	go func() {
		defer close(ready)
		for off := p.f.start; off < p.f.end; {
			end := min(off+pipelineChunk, p.f.end)
			mode.CryptBlocks(buf[off:end], buf[off:end])
			ready <- end
			if stop.Load() {
				return
			}
			off = end
		}
	}()
	lines := newBase64Lines(w)
	done, avail := 0, p.f.start
	var err error
	for {
		if err == nil {
			var n int
			n, err = lines.emit(buf[done:avail], false)
			done += n
			if err != nil {
				stop.Store(true)
			}
		}
		next, ok := <-ready // drained to the end, so the goroutine never blocks
		if !ok {
			break
		}
		avail = next
	}
	if err != nil {
		return err
	}
	_, err = lines.emit(buf[done:], true) // the tail after the content (none for CBC)
	return err
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
