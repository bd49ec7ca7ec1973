package smime

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"testing"
)

// TestDecryptCBCBlocks: the two-half decryption gives the same plaintext
// as one serial pass, in place and into a separate buffer, on both sides
// of the size threshold.
func TestDecryptCBCBlocks(t *testing.T) {
	key, iv := make([]byte, 32), make([]byte, 16)
	rand.Read(key)
	rand.Read(iv)
	block, _ := aes.NewCipher(key)
	for _, n := range []int{16, parallelMin - 16, parallelMin, parallelMin + 16, 1<<20 + 48} {
		plain := make([]byte, n)
		rand.Read(plain)
		ct := make([]byte, n)
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, plain)
		out := make([]byte, n)
		decryptCBCBlocks(block, iv, out, ct)
		if !bytes.Equal(out, plain) {
			t.Fatalf("%d bytes into a new buffer: plaintext differs", n)
		}
		decryptCBCBlocks(block, iv, ct, ct)
		if !bytes.Equal(ct, plain) {
			t.Fatalf("%d bytes in place: plaintext differs", n)
		}
	}
}

// TestDecodeLinesParallel: split decoding agrees with the serial decoder,
// and a padded line in the first half followed by more data still fails
// the fast path, as it does serially.
func TestDecodeLinesParallel(t *testing.T) {
	lines := func(raw []byte, width int) []byte {
		enc := base64.StdEncoding.EncodeToString(raw)
		var b bytes.Buffer
		for len(enc) > 0 {
			k := min(width, len(enc))
			b.WriteString(enc[:k] + "\r\n")
			enc = enc[k:]
		}
		return b.Bytes()
	}
	raw := make([]byte, 1<<20+1) // ends in padding
	rand.Read(raw)
	for _, width := range []int{76, 64, 4} {
		body := lines(raw, width)
		out := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
		n, ok := decodeLinesParallel(out, body)
		if !ok || !bytes.Equal(out[:n], raw) {
			t.Fatalf("width %d: ok=%v, %d bytes, equal=%v", width, ok, n, bytes.Equal(out[:n], raw))
		}
	}
	// Two encodings back to back, the second one quantum shorter, so the
	// split falls right after the padded last line of the first: only the
	// other half shows that data follows padding.
	half := make([]byte, 300<<10+1)
	rand.Read(half)
	c1 := lines(half, 76)
	c2 := append(bytes.Clone(c1[:len(c1)-6]), "\r\n"...)
	body := append(bytes.Clone(c1), c2...)
	if cut := bytes.IndexByte(body[len(body)/2:], '\n') + len(body)/2 + 1; cut != len(c1) {
		t.Fatalf("split at %d, want %d", cut, len(c1))
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
	if _, ok := decodeLinesParallel(out, body); ok {
		t.Fatal("data after padding accepted by the split decoder")
	}
	if _, ok := decodeLines(out, body, nil); ok {
		t.Fatal("data after padding accepted by the serial decoder")
	}
	// A line of the wrong length in the second half fails as well.
	bad := append(lines(raw[:len(raw)-1], 76), "QUJD\r\nQUI\r\n"...)
	out = make([]byte, base64.StdEncoding.DecodedLen(len(bad)))
	if _, ok := decodeLinesParallel(out, bad); ok {
		t.Fatal("a 3-character line accepted")
	}
}

// TestAppendBase64Lines: the table encoder gives what encoding/base64 plus
// a line break every 76 characters gives, for every length around whole
// lines and a long input.
func TestAppendBase64Lines(t *testing.T) {
	src := make([]byte, 3*b64LineIn*b64Block+7)
	rand.Read(src)
	for _, n := range []int{0, 1, 2, 3, 56, 57, 58, 113, 114, 115, 1000, len(src)} {
		enc := base64.StdEncoding.EncodeToString(src[:n])
		var want []byte
		for len(enc) > 0 {
			k := min(76, len(enc))
			want = append(append(want, enc[:k]...), '\r', '\n')
			enc = enc[k:]
		}
		prefix := []byte("x")
		got := appendBase64Lines(prefix, src[:n])
		if !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("%d bytes: encodings differ", n)
		}
	}
}

// TestDecodeFullLine: the eight-character decoder agrees with
// encoding/base64 on whole lines and refuses every line with a character
// outside the alphabet, wherever it sits.
func TestDecodeFullLine(t *testing.T) {
	raw := make([]byte, b64LineIn)
	for range 200 {
		rand.Read(raw)
		line := []byte(base64.StdEncoding.EncodeToString(raw))
		got := make([]byte, b64LineIn)
		if !decodeFullLine(got, line) || !bytes.Equal(got, raw) {
			t.Fatalf("line %q: decoded differently", line)
		}
	}
	line := []byte(base64.StdEncoding.EncodeToString(raw))
	for i := range line {
		for _, c := range []byte{'=', '\r', ' ', '-', '_', 0x80, 0} {
			bad := bytes.Clone(line)
			bad[i] = c
			if decodeFullLine(make([]byte, b64LineIn), bad) {
				t.Fatalf("%q at %d accepted", c, i)
			}
		}
	}
}
