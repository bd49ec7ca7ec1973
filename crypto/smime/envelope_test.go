package smime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// pieceContent writes its bytes in writes of step bytes, as a Content
// made of many parts does; lie changes what it writes from what Len says.
type pieceContent struct {
	b    []byte
	step int
	lie  int
}

func (c pieceContent) Len() int64 { return int64(len(c.b)) }

func (c pieceContent) WriteTo(w io.Writer) (int64, error) {
	b := c.b
	if c.lie < 0 {
		b = b[:len(b)+c.lie]
	} else if c.lie > 0 {
		b = append(bytes.Clone(b), make([]byte, c.lie)...)
	}
	var n int64
	for len(b) > 0 {
		k := min(c.step, len(b))
		m, err := w.Write(b[:k])
		n += int64(m)
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}

// checkLines fails unless body is base64 in 76-character CRLF lines.
func checkLines(t *testing.T, body string) {
	t.Helper()
	if body == "" {
		t.Fatal("empty body")
	}
	lines := strings.Split(strings.TrimSuffix(body, "\r\n"), "\r\n")
	for i, l := range lines {
		if len(l) > 76 || (i < len(lines)-1 && len(l) != 76) || strings.ContainsAny(l, "\r\n") {
			t.Fatalf("line %d has %d characters", i, len(l))
		}
	}
}

// TestEnvelopeRoundTrip: at sizes around the block and chunk boundaries,
// for every outbound cipher, written whole or in small pieces, the
// streamed entity has exactly Len bytes, its body is base64 of a DER
// (definite lengths) in 76-character lines, and both an RSA and an EC
// recipient decrypt it to the content with Decrypt, Open and DecryptDER.
func TestEnvelopeRoundTrip(t *testing.T) {
	keys := testKeys(t)
	head := "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	outer := Header{NewField("From", "alice@example.test"), NewField("Subject", "stream")}
	sizes := []int{0, 1, 15, 16, 17, 31, 32, 33, 56, 57, 58, cbcChunk - 1, cbcChunk, cbcChunk + 1, 3*cbcChunk + 5}
	for _, c := range OutboundCiphers() {
		for _, n := range sizes {
			for _, step := range []int{1 << 30, 7} {
				if step == 7 && n > cbcChunk+1 {
					continue
				}
				t.Run(fmt.Sprintf("%s/%d/step%d", c, n, step), func(t *testing.T) {
					entity := []byte(head + strings.Repeat("x", n))
					env, err := NewEnvelope(pieceContent{b: entity, step: step}, []Recipient{{Cert: keys["rsa"].cert}, {Cert: keys["p256"].cert}}, EncryptOptions{Cipher: c})
					if err != nil {
						t.Fatal(err)
					}
					var msg bytes.Buffer
					if err := ComposeContent(&msg, outer, env); err != nil {
						t.Fatal(err)
					}
					head, body, _ := strings.Cut(msg.String(), "\r\n\r\n")
					if want := "From: alice@example.test\r\nSubject: stream\r\nMIME-Version: 1.0\r\n" + strings.TrimSuffix(env.Header(), "\r\n\r\n"); head != want {
						t.Fatalf("header %q, want %q", head, want)
					}
					if int64(len(body)+len(head)+4) != int64(msg.Len()) || int64(len(env.Header())+len(body)) != env.Len() {
						t.Fatalf("wrote %d body bytes, Len %d with header %d", len(body), env.Len(), len(env.Header()))
					}
					checkLines(t, body)
					der, err := decodeBase64Body([]byte(body))
					if err != nil {
						t.Fatal(err)
					}
					if conv, err := berToDER(der); err != nil || &conv[0] != &der[0] {
						t.Fatalf("not DER: %v", err)
					}
					for _, k := range []string{"rsa", "p256"} {
						d, err := Decrypt(msg.Bytes(), []KeyPair{keys[k].pair()})
						if err != nil {
							t.Fatalf("%s: %v", k, err)
						}
						if !bytes.Equal(d.Entity, entity) || d.Cipher != c || d.Header.Get("Subject") != "stream" {
							t.Fatalf("%s: decrypted %d bytes (cipher %s), want %d", k, len(d.Entity), d.Cipher, len(entity))
						}
					}
					d, err := DecryptDER(der, []KeyPair{keys["rsa"].pair()})
					if err != nil || !bytes.Equal(d.Entity, entity) {
						t.Fatalf("DecryptDER: %v", err)
					}
					o, err := Open(msg.Bytes(), []KeyPair{keys["p256"].pair()}, VerifyOptions{})
					if err != nil || !bytes.Equal(o.Entity, entity) || len(o.Layers) != 1 {
						t.Fatalf("Open: %v", err)
					}
				})
			}
		}
	}
}

// TestEnvelopeWriteErrors: a destination that fails anywhere — in the
// header, the DER header, the ciphertext or the last line — makes WriteTo
// return its error.
func TestEnvelopeWriteErrors(t *testing.T) {
	keys := testKeys(t)
	entity := []byte(testEntity + strings.Repeat("y", 3*cbcChunk))
	for _, c := range OutboundCiphers() {
		probe, err := NewEnvelope(EntityBytes(entity), []Recipient{{Cert: keys["rsa"].cert}}, EncryptOptions{Cipher: c})
		if err != nil {
			t.Fatal(err)
		}
		total := int(probe.Len())
		for _, limit := range []int{0, 10, 200, 300, total / 2, total - 3} {
			env, err := NewEnvelope(EntityBytes(entity), []Recipient{{Cert: keys["rsa"].cert}}, EncryptOptions{Cipher: c})
			if err != nil {
				t.Fatal(err)
			}
			n, err := env.WriteTo(&failingWriter{left: limit})
			if !errors.Is(err, errWriterFull) || n != int64(limit) {
				t.Fatalf("%s, writer failing after %d of %d bytes: wrote %d, %v", c, limit, total, n, err)
			}
		}
	}
}

// TestEnvelopeContentLength: content that writes fewer or more bytes than
// its Len announced is an error, not a truncated or overlong envelope.
func TestEnvelopeContentLength(t *testing.T) {
	keys := testKeys(t)
	entity := []byte(testEntity + strings.Repeat("z", 100))
	for _, c := range OutboundCiphers() {
		for _, lie := range []int{-1, -20, 1, 16} {
			env, err := NewEnvelope(pieceContent{b: entity, step: 9, lie: lie}, []Recipient{{Cert: keys["rsa"].cert}}, EncryptOptions{Cipher: c})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.WriteTo(io.Discard); !errors.Is(err, ErrContentLength) {
				t.Fatalf("%s, content off by %d: %v", c, lie, err)
			}
		}
	}
}

// TestEnvelopeWrittenOnce: the content key is gone after WriteTo, so a
// second call is refused instead of writing something else.
func TestEnvelopeWrittenOnce(t *testing.T) {
	keys := testKeys(t)
	env, err := NewEnvelope(EntityBytes(testEntity), []Recipient{{Cert: keys["rsa"].cert}}, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.WriteTo(io.Discard); err != nil {
		t.Fatal(err)
	}
	if n, err := env.WriteTo(io.Discard); !errors.Is(err, ErrEnvelopeWritten) || n != 0 {
		t.Fatalf("second WriteTo: %d, %v", n, err)
	}
}

// TestNewEnvelopeErrors: what can fail fails before anything is written.
func TestNewEnvelopeErrors(t *testing.T) {
	keys := testKeys(t)
	if _, err := NewEnvelope(EntityBytes(testEntity), nil, EncryptOptions{}); !errors.Is(err, ErrNoRecipients) {
		t.Fatalf("no recipients: %v", err)
	}
	if _, err := NewEnvelope(EntityBytes(testEntity), []Recipient{{Cert: keys["rsa"].cert}}, EncryptOptions{Cipher: DES3CBC}); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("3DES: %v", err)
	}
	if _, err := NewEnvelope(pieceContent{b: nil, lie: 0}, []Recipient{{}}, EncryptOptions{}); err == nil {
		t.Fatal("recipient without certificate accepted")
	}
}
