package smime

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// stdLines is the reference: encoding/base64 of data, cut into
// 76-character lines each ended by CRLF.
func stdLines(data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 0 {
		n := min(76, len(enc))
		b.WriteString(enc[:n] + "\r\n")
		enc = enc[n:]
	}
	return b.String()
}

// TestBase64WriterMatchesEncoding: whatever the sizes of the writes, the
// output is encoding/base64's in 76-character CRLF lines, and Len predicts
// its length.
func TestBase64WriterMatchesEncoding(t *testing.T) {
	data := randomData(3*b64Block*b64LineIn + 1000)
	for _, n := range []int{0, 1, 2, 3, 56, 57, 58, 114, 1000, b64Block * b64LineIn, b64Block*b64LineIn + 1, len(data)} {
		for _, step := range []int{1, 7, 57, 100, 4096, n + 1} {
			var out bytes.Buffer
			w := newBase64Writer(&out)
			for p := data[:n]; len(p) > 0; {
				k := min(step, len(p))
				if m, err := w.Write(p[:k]); m != k || err != nil {
					t.Fatalf("write: %d, %v", m, err)
				}
				p = p[k:]
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if want := stdLines(data[:n]); out.String() != want {
				t.Fatalf("%d bytes in writes of %d: output differs from encoding/base64", n, step)
			}
			if int64(out.Len()) != base64Len(int64(n)) || w.n != int64(out.Len()) {
				t.Fatalf("%d bytes: wrote %d, base64Len %d, counted %d", n, out.Len(), base64Len(int64(n)), w.n)
			}
			if got := string(appendBase64Lines([]byte("x"), data[:n])); got != "x"+stdLines(data[:n]) {
				t.Fatalf("appendBase64Lines of %d bytes differs", n)
			}
		}
	}
}

// TestBase64WriterKeepsError: after the destination fails, every call
// returns its error and nothing more is written.
func TestBase64WriterKeepsError(t *testing.T) {
	fw := &failingWriter{left: 100}
	w := newBase64Writer(fw)
	data := randomData(b64Block * b64LineIn * 2)
	if _, err := w.Write(data); !errors.Is(err, errWriterFull) {
		t.Fatalf("first write: %v", err)
	}
	if _, err := w.Write(data[:10]); !errors.Is(err, errWriterFull) {
		t.Fatalf("second write: %v", err)
	}
	if err := w.Close(); !errors.Is(err, errWriterFull) {
		t.Fatalf("close: %v", err)
	}
	if w.n != 100 {
		t.Fatalf("counted %d bytes written", w.n)
	}
}

func FuzzBase64Lines(f *testing.F) {
	f.Add([]byte{}, uint8(1))
	f.Add(bytes.Repeat([]byte{0xff}, 57), uint8(57))
	f.Add([]byte("any carnal pleasure."), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		var out bytes.Buffer
		w := newBase64Writer(&out)
		for p := data; len(p) > 0; {
			k := min(int(step)+1, len(p))
			w.Write(p[:k])
			p = p[k:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		want := stdLines(data)
		if out.String() != want {
			t.Fatalf("writer output differs from encoding/base64 for %x", data)
		}
		if got := appendBase64Lines(nil, data); string(got) != want {
			t.Fatalf("appendBase64Lines differs from encoding/base64 for %x", data)
		}
		dec, err := decodeBase64Body(out.Bytes())
		if err != nil || !bytes.Equal(dec, data) {
			t.Fatalf("does not decode back: %v", err)
		}
	})
}

func randomData(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
