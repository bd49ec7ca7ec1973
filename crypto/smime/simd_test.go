package smime

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"strings"
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

// TestDecodeLinesArchStopsAtBadCharacter: the line decoder (AVX2 where
// the CPU has it) decodes whole lines as encoding/base64 does and stops
// at a line with any byte outside the alphabet, wherever in the line it
// is; the portable build decodes nothing and leaves every line to
// decodeLines.
func TestDecodeLinesArchStopsAtBadCharacter(t *testing.T) {
	data := randomData(3 * b64LineIn)
	body := []byte(stdLines(data) + "QUJD\r\n")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	if k := decodeLinesArch(make([]byte, 200), body); k != 3 && k != 0 {
		t.Fatalf("clean lines: decoded %d of 3", k)
	} else if k == 0 {
		t.Skip("no AVX2 line decoder in this build")
	}
	for c := range 256 {
		for _, pos := range []int{0, 5, 31, 32, 50, 63, 64, 70, 75} {
			b := bytes.Clone(body)
			b[b64LineOut+pos] = byte(c) // in the second line
			out := make([]byte, 200)
			k := decodeLinesArch(out, b)
			valid := bytes.IndexByte([]byte(alphabet), byte(c)) >= 0
			want, lines := 1, b64LineIn
			if valid {
				want, lines = 3, 3*b64LineIn
			}
			if k != want {
				t.Fatalf("byte %#x at %d: decoded %d lines, want %d", c, pos, k, want)
			}
			ref, err := base64.StdEncoding.DecodeString(string(bytes.ReplaceAll(b[:want*b64LineOut], []byte("\r\n"), nil)))
			if err != nil || !bytes.Equal(out[:lines], ref) {
				t.Fatalf("byte %#x at %d: output differs from encoding/base64 (%v)", c, pos, err)
			}
		}
	}
	// Lines of another length are not taken.
	short := []byte(strings.Repeat(strings.Repeat("A", 64)+"\r\n", 4))
	if k := decodeLinesArch(make([]byte, 300), short); k != 0 {
		t.Fatalf("64-character lines: decoded %d", k)
	}
}
