package smtp

import (
	"bytes"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

// checkBytesRef is checkBytes one byte at a time: the definition the
// word-at-a-time version must agree with.
func checkBytesRef(b []byte, eightBitOK bool) *gosmtp.SMTPError {
	for i := range b {
		if r := checkByte(b, i, eightBitOK); r != nil {
			return r
		}
	}
	return nil
}

// TestCheckBytesAgreesWithReference puts each troublesome byte at every
// offset of a buffer longer than two words, and checks the first refusal
// (or none) is the reference's.
func TestCheckBytesAgreesWithReference(t *testing.T) {
	base := []byte("abcdefghijklmnop\r\nqrstuvwxyz012345\r\n")
	inserts := [][]byte{{0}, {'\n'}, {'\r'}, {0x80}, {0xff}, {'\r', '\n'}, {'\n', '\r'}, {'\r', '\r', '\n'}, {0xc3, 0xa9}}
	refusals := 0
	for _, ins := range inserts {
		for off := 0; off <= len(base); off++ {
			for _, eight := range []bool{false, true} {
				in := append(append(append([]byte{}, base[:off]...), ins...), base[off:]...)
				got, want := checkBytes(in, eight), checkBytesRef(in, eight)
				if got != want {
					t.Fatalf("%q (8-bit %v): got %v, want %v", in, eight, got, want)
				}
				if want != nil {
					refusals++
				}
			}
		}
	}
	if refusals == 0 {
		t.Fatal("no input refused: the table tests nothing")
	}
	clean := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog\r\n"), 100)
	if r := checkBytes(clean, false); r != nil {
		t.Fatalf("clean text refused: %v", r)
	}
}

func FuzzCheckBytes(f *testing.F) {
	f.Add([]byte("From: a\r\n\r\nbody\r\n"), false)
	f.Add([]byte("01234567\r\n.\n01234567"), true)
	f.Add([]byte("0123456\r\r\n\x80\x00"), false)
	f.Fuzz(func(t *testing.T, b []byte, eightBitOK bool) {
		if got, want := checkBytes(b, eightBitOK), checkBytesRef(b, eightBitOK); got != want {
			t.Fatalf("%q (8-bit %v): got %v, want %v", b, eightBitOK, got, want)
		}
	})
}

func BenchmarkCheckBytes(b *testing.B) {
	msg := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUV\r\n"), 1300)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if checkBytes(msg, false) != nil {
			b.Fatal("refused")
		}
	}
}
