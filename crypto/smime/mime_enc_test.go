package smime

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"smimeproxy/internal/mailtest"
)

const testMessageLF = "From: Alice <alice@example.test>\n" +
	"To: Bob <bob@example.test>\n" +
	"Subject: envelope test\n" +
	"MIME-Version: 1.0\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\n" +
	"\n" +
	"--b1\nContent-Type: text/plain\n\nfirst part\n--b1--\n"

const wantEntity = "Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"--b1\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--b1--\r\n"

func TestEncryptMessageFormat(t *testing.T) {
	keys := testKeys(t)
	for _, c := range OutboundCiphers() {
		var out bytes.Buffer
		if err := Encrypt(&out, []byte(testMessageLF), []Recipient{{Cert: keys["rsa"].cert}, {Cert: keys["p256"].cert}}, EncryptOptions{Cipher: c}); err != nil {
			t.Fatal(err)
		}
		msg := out.String()
		head, body, ok := strings.Cut(msg, "\r\n\r\n")
		if !ok {
			t.Fatal("no header/body separator")
		}
		smimeType := "enveloped-data"
		if c.AEAD() {
			smimeType = "authEnveloped-data"
		}
		wantHead := "From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\nSubject: envelope test\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: application/pkcs7-mime; smime-type=" + smimeType + "; name=\"smime.p7m\"\r\n" +
			"Content-Transfer-Encoding: base64\r\n" +
			"Content-Disposition: attachment; filename=\"smime.p7m\""
		if head != wantHead {
			t.Fatalf("%s header:\n%s\nwant\n%s", c, head, wantHead)
		}
		if strings.Contains(body, "first part") || strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\n") {
			t.Fatal("plaintext or bare LF in body")
		}
		lines := strings.Split(strings.TrimSuffix(body, "\r\n"), "\r\n")
		for i, l := range lines {
			if len(l) > 76 || (i < len(lines)-1 && len(l) != 76) {
				t.Fatalf("line %d has %d characters", i, len(l))
			}
		}
		for _, name := range []string{"rsa", "p256"} {
			d, err := Decrypt(out.Bytes(), []KeyPair{keys[name].pair()})
			if err != nil {
				t.Fatalf("%s %s: %v", c, name, err)
			}
			if string(d.Entity) != wantEntity || d.Header.Get("Subject") != "envelope test" || d.Cipher != c {
				t.Fatalf("%s %s: entity %q subject %q", c, name, d.Entity, d.Header.Get("Subject"))
			}
		}
	}
}

func TestEncryptMessageWithoutContentType(t *testing.T) {
	keys := testKeys(t)
	var out bytes.Buffer
	if err := Encrypt(&out, []byte("Subject: bare\r\n\r\nhello\r\n"), []Recipient{{Cert: keys["rsa"].cert}}, EncryptOptions{}); err != nil {
		t.Fatal(err)
	}
	d, err := Decrypt(out.Bytes(), []KeyPair{keys["rsa"].pair()})
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Entity) != "Content-Type: text/plain; charset=us-ascii\r\n\r\nhello\r\n" {
		t.Fatalf("entity %q", d.Entity)
	}
}

func TestDecryptMessageErrors(t *testing.T) {
	keys := testKeys(t)
	var out bytes.Buffer
	if err := Encrypt(&out, []byte(testMessageLF), []Recipient{{Cert: keys["rsa"].cert}}, EncryptOptions{}); err != nil {
		t.Fatal(err)
	}
	good := out.String()
	head, body, _ := strings.Cut(good, "\r\n\r\n")
	cases := []struct {
		name string
		msg  string
		want error
	}{
		{"plain", testMessageLF, ErrNotEncrypted},
		{"signed", "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=x\r\n\r\n--x--\r\n", ErrNotEncrypted},
		{"opaque signed", "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMAA=\r\n", ErrNotEncrypted},
		{"truncated base64", head + "\r\n\r\n" + body[:len(body)/2], ErrMalformed},
		{"garbled base64", head + "\r\n\r\n" + strings.Replace(body, "A", "!", 3), ErrMalformed},
		{"empty body", head + "\r\n\r\n", ErrMalformed},
		{"wrong recipient", good, ErrNoMatchingRecipient},
		{"quoted-printable", strings.Replace(good, "base64", "quoted-printable", 1), ErrMalformed},
	}
	for _, tc := range cases {
		kp := keys["rsa"].pair()
		if tc.name == "wrong recipient" {
			kp = keys["rsa2"].pair()
		}
		_, err := Decrypt([]byte(tc.msg), []KeyPair{kp})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: want %v, got %v", tc.name, tc.want, err)
		}
	}
}

func TestDecryptOpenSSLMessages(t *testing.T) {
	rsaPair, ecPair := sampleKeys(t)
	want := readSample(t, "sample-entity.txt")
	for _, name := range []string{"enc-aes256cbc-ber-stream-openssl.eml", "enc-ecdh-gcm-openssl.eml"} {
		d, err := Decrypt(readSample(t, name), []KeyPair{rsaPair, ecPair})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(d.Entity, want) {
			t.Fatalf("%s: entity %q", name, d.Entity)
		}
	}
}

// TestOpenSSLReadsOurMessage: openssl cms -decrypt (S/MIME input) reads
// what Encrypt writes.
func TestOpenSSLReadsOurMessage(t *testing.T) {
	bin := mailtest.LookTool(t, "openssl", "openssl")
	keys := testKeys(t)
	dir := t.TempDir()
	writeKeyFiles(t, dir, keys)
	for _, c := range OutboundCiphers() {
		var out bytes.Buffer
		if err := Encrypt(&out, []byte(testMessageLF), []Recipient{{Cert: keys["p384"].cert}, {Cert: keys["rsa"].cert, OAEP: true}}, EncryptOptions{Cipher: c}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "m.eml"), out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"p384", "rsa"} {
			got := runOpenSSL(t, bin, dir, nil, "cms", "-decrypt", "-binary", "-in", "m.eml", "-recip", k+".crt", "-inkey", k+".key")
			if string(got) != wantEntity {
				t.Fatalf("%s %s: openssl gave %q", c, k, got)
			}
		}
	}
}

// TestLargeMessageMemory: encrypting and decrypting a 25 MB message
// allocates about one copy of it each (the DER, then the decoded DER that
// is decrypted in place), not several.
func TestLargeMessageMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("25 MB message")
	}
	keys := testKeys(t)
	const size = 25 << 20
	msg := make([]byte, 0, size+200)
	msg = append(msg, "From: a@example.test\r\nSubject: big\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"...)
	line := []byte(strings.Repeat("QUJD", 19) + "\r\n")
	for len(msg)+len(line) <= size {
		msg = append(msg, line...)
	}
	var out bytes.Buffer
	out.Grow(size*4/3 + size/20 + 4096)
	allocs := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	var err error
	enc := allocs(func() { err = Encrypt(&out, msg, []Recipient{{Cert: keys["rsa"].cert}}, EncryptOptions{}) })
	if err != nil {
		t.Fatal(err)
	}
	var d *Decrypted
	dec := allocs(func() { d, err = Decrypt(out.Bytes(), []KeyPair{keys["rsa"].pair()}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("message %d bytes: Encrypt allocated %d (%.2fx), Decrypt %d (%.2fx)", len(msg), enc, float64(enc)/float64(len(msg)), dec, float64(dec)/float64(len(msg)))
	if enc > uint64(len(msg))*12/10 || dec > uint64(len(msg))*12/10 {
		t.Fatalf("allocations above 1.2x the message size")
	}
	if !bytes.HasSuffix(d.Entity, line) || len(d.Entity) < size-1000 {
		t.Fatal("content lost")
	}
}

// TestSignThenEncrypt: a signed message encrypted, decrypted and put
// back together with its outer header verifies, for RSA and EC users.
func TestSignThenEncrypt(t *testing.T) {
	pki := mailtest.NewPKI(t)
	for _, kt := range []mailtest.KeyType{mailtest.RSA, mailtest.P256} {
		u := pki.User(t, "alice-"+kt.String()+"@example.test", kt)
		msg := []byte("From: " + u.Email + "\r\nTo: bob@example.test\r\nSubject: triple\r\n\r\nsigned, then sealed\r\n")
		var signed, sealed bytes.Buffer
		if err := Sign(&signed, msg, SignOptions{Cert: u.SignCert, Key: u.SignKey, Chain: u.Chain, EncryptionCert: u.EncCert}); err != nil {
			t.Fatal(err)
		}
		for _, c := range OutboundCiphers() {
			sealed.Reset()
			if err := Encrypt(&sealed, signed.Bytes(), []Recipient{{Cert: u.EncCert}}, EncryptOptions{Cipher: c}); err != nil {
				t.Fatal(err)
			}
			d, err := Decrypt(sealed.Bytes(), []KeyPair{{Cert: u.EncCert, Key: u.EncKey}})
			if err != nil {
				t.Fatalf("%s %s: %v", kt, c, err)
			}
			var opened bytes.Buffer
			if err := Compose(&opened, d.Header, d.Entity); err != nil {
				t.Fatal(err)
			}
			res, err := Verify(opened.Bytes(), VerifyOptions{Roots: pki.Roots()})
			if err != nil {
				t.Fatalf("%s %s: verify: %v", kt, c, err)
			}
			if !res.Valid || !res.FromMatches || !bytes.Contains(res.Entity, []byte("signed, then sealed")) {
				t.Fatalf("%s %s: valid=%v from=%v reasons=%v", kt, c, res.Valid, res.FromMatches, res.Reasons)
			}
		}
	}
}

func TestDropMIMEVersion(t *testing.T) {
	cases := map[string]string{
		"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nbody\r\n":                             "Content-Type: text/plain\r\n\r\nbody\r\n",
		"Content-Type: text/plain\r\nmime-version: 1.0\r\n (comment)\r\n\r\nMIME-Version: body\r\n": "Content-Type: text/plain\r\n\r\nMIME-Version: body\r\n",
		"Content-Type: text/plain\r\n\r\nbody\r\n":                                                  "Content-Type: text/plain\r\n\r\nbody\r\n",
	}
	for in, want := range cases {
		if got := string(dropMIMEVersion([]byte(in))); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

// TestStreamedEncryptSizes: the message Encrypt streams is the base64 of a
// DER that decrypts, with 76-character lines, at sizes around the chunk
// boundaries of the CBC stream; a failing writer stops it with its error.
func TestStreamedEncryptSizes(t *testing.T) {
	keys := testKeys(t)
	for _, size := range []int{cbcChunk - 1, cbcChunk, cbcChunk*3 + 7, 1 << 20} {
		body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789\r\n"), size/60+1)[:size]
		msg := append([]byte("Subject: stream\r\nContent-Type: application/octet-stream\r\n\r\n"), body...)
		var out bytes.Buffer
		if err := Encrypt(&out, msg, []Recipient{{Cert: keys["rsa"].cert}}, EncryptOptions{}); err != nil {
			t.Fatal(err)
		}
		_, b64, _ := strings.Cut(out.String(), "\r\n\r\n")
		lines := strings.Split(strings.TrimSuffix(b64, "\r\n"), "\r\n")
		for i, l := range lines {
			if len(l) > 76 || (i < len(lines)-1 && len(l) != 76) {
				t.Fatalf("size %d: line %d has %d characters", size, i, len(l))
			}
		}
		d, err := Decrypt(out.Bytes(), []KeyPair{keys["rsa"].pair()})
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.HasSuffix(d.Entity, body) || len(d.Entity) != len(body)+len("Content-Type: application/octet-stream\r\n\r\n") {
			t.Fatalf("size %d: content differs", size)
		}
		for _, limit := range []int{10, out.Len() / 2} {
			err := Encrypt(&failingWriter{left: limit}, msg, []Recipient{{Cert: keys["rsa"].cert}}, EncryptOptions{})
			if !errors.Is(err, errWriterFull) {
				t.Fatalf("size %d, writer failing after %d bytes: %v", size, limit, err)
			}
		}
	}
}

var errWriterFull = errors.New("writer full")

type failingWriter struct{ left int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n := f.left
		f.left = 0
		return n, errWriterFull
	}
	f.left -= len(p)
	return len(p), nil
}

func TestDecodeBase64Body(t *testing.T) {
	data := bytes.Repeat([]byte("any carnal pleasure."), 20)
	std := base64.StdEncoding.EncodeToString(data)
	wrap := func(s string, n int, eol string) string {
		var b strings.Builder
		for len(s) > n {
			b.WriteString(s[:n] + eol)
			s = s[n:]
		}
		b.WriteString(s + eol)
		return b.String()
	}
	good := map[string]string{
		"76 CRLF":          wrap(std, 76, "\r\n"),
		"64 LF":            wrap(std, 64, "\n"),
		"odd width 73":     wrap(std, 73, "\r\n"),
		"one line":         std,
		"trailing blanks":  wrap(std, 76, "\r\n") + "\r\n\r\n",
		"spaces in a line": wrap(std[:40]+" "+std[40:], 77, "\r\n"),
	}
	for name, in := range good {
		got, err := decodeBase64Body([]byte(in))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, in := range map[string]string{
		"garbage":            "!!!!\r\n",
		"data after padding": "QQ==\r\nQUJD\r\n",
	} {
		if _, err := decodeBase64Body([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: want ErrMalformed, got %v", name, err)
		}
	}
}
