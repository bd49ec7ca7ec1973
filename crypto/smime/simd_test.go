package smime

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestEncodeLinesMatchesEncoding: the line encoder (AVX2 where the CPU
// has it) gives encoding/base64's lines for every line count around the
// AVX2 loop's edges, leaves the bytes after the last line alone, and
// agrees with the portable encodeLine.
func TestEncodeLinesMatchesEncoding(t *testing.T) {
	src := randomData(100*b64LineIn + 64)
	for i := range 256 { // every byte value, so every 6-bit value, appears
		src[i] = byte(i)
	}
	for lines := 0; lines <= 100; lines++ {
		dst := bytes.Repeat([]byte{0xee}, lines*b64LineOut+16)
		encodeLines(dst, src, lines)
		if want := stdLines(src[:lines*b64LineIn]); string(dst[:lines*b64LineOut]) != want {
			t.Fatalf("%d lines: output differs from encoding/base64", lines)
		}
		if tail := dst[lines*b64LineOut:]; !bytes.Equal(tail, bytes.Repeat([]byte{0xee}, len(tail))) {
			t.Fatalf("%d lines: wrote past the last line: %q", lines, tail)
		}
		generic := make([]byte, lines*b64LineOut)
		for i := range lines {
			encodeLine(generic[i*b64LineOut:], src[i*b64LineIn:])
		}
		if !bytes.Equal(generic, dst[:lines*b64LineOut]) {
			t.Fatalf("%d lines: encodeLine differs", lines)
		}
	}
}

// bareLFsNaive is the definition bareLFs implements.
func bareLFsNaive(b []byte) int {
	n := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			n++
		}
	}
	return n
}

// TestBareLFsMatchesDefinition: on data dense in CR and LF, of every
// length around the 32-byte steps, bareLFs counts what the definition
// counts.
func TestBareLFsMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("\r\n\r\nab")
	for n := 0; n < 300; n++ {
		for range 20 {
			b := make([]byte, n)
			for i := range b {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
			if got, want := bareLFs(b), bareLFsNaive(b); got != want {
				t.Fatalf("%q: bareLFs %d, want %d", b, got, want)
			}
		}
	}
	for _, s := range []string{"\n", "\r\n", "\n\n", repeat99("\n"), "\r" + repeat99("\n")} {
		if got, want := bareLFs([]byte(s)), bareLFsNaive([]byte(s)); got != want {
			t.Errorf("%q: bareLFs %d, want %d", s, got, want)
		}
	}
}

func repeat99(s string) string { return string(bytes.Repeat([]byte(s), 99)) }

func FuzzBareLFs(f *testing.F) {
	f.Add([]byte("a\r\nb\nc\r\r\n\n"))
	f.Add(bytes.Repeat([]byte("\r\n\n"), 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := bareLFs(b), bareLFsNaive(b); got != want {
			t.Fatalf("bareLFs %d, want %d", got, want)
		}
	})
}
