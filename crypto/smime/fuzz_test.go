package smime

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addSampleSeeds(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".p7m") {
			b, err := os.ReadFile(filepath.Join("testdata", e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// FuzzDecryptDER: hostile CMS input gives a sentinel error or a result,
// never a panic, and never modifies the caller's buffer.
func FuzzDecryptDER(f *testing.F) {
	addSampleSeeds(f)
	rsaPair, ecPair := sampleKeys(f)
	keys := []KeyPair{rsaPair, ecPair}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		d, err := DecryptDER(in, keys)
		if !bytes.Equal(in, orig) {
			t.Fatal("input modified")
		}
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		if d.Recipient == nil {
			t.Fatal("success without recipient")
		}
	})
}

// FuzzBERToDER: the converter's output is DER-framed, converting it again
// changes nothing, and it never grows beyond a small overhead per element.
func FuzzBERToDER(f *testing.F) {
	addSampleSeeds(f)
	f.Add([]byte{0x30, 0x80, 0x24, 0x80, 0x04, 0x01, 0x61, 0x04, 0x01, 0x62, 0x00, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := berToDER(in)
		if err != nil {
			return
		}
		if !isDERFraming(out, 0) {
			t.Fatalf("output is not DER-framed: %x", out)
		}
		again, err := berToDER(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %v", err)
		}
		if len(out) > 2*len(in)+8 {
			t.Fatalf("output %d bytes for %d input bytes", len(out), len(in))
		}
	})
}

func TestBERToDERJoinsChunks(t *testing.T) {
	// SEQUENCE(indef){ OCTET STRING(constructed, indef){"ab", "c"}, [0](indef){ OCTET STRING "d" } }
	in := []byte{0x30, 0x80, 0x24, 0x80, 0x04, 0x02, 'a', 'b', 0x04, 0x01, 'c', 0x00, 0x00,
		0xa0, 0x80, 0x04, 0x01, 'd', 0x00, 0x00, 0x00, 0x00}
	want := []byte{0x30, 0x0a, 0x04, 0x03, 'a', 'b', 'c', 0xa0, 0x03, 0x04, 0x01, 'd'}
	got, err := berToDER(in)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %x, %v; want %x", got, err, want)
	}
	// Non-minimal definite lengths are rewritten too.
	got, err = berToDER([]byte{0x04, 0x82, 0x00, 0x01, 'x'})
	if err != nil || !bytes.Equal(got, []byte{0x04, 0x01, 'x'}) {
		t.Fatalf("non-minimal length: %x, %v", got, err)
	}
	// DER input comes back as the same slice, not a copy.
	der := []byte{0x30, 0x03, 0x02, 0x01, 0x05}
	if got, _ := berToDER(der); &got[0] != &der[0] {
		t.Fatal("DER input was copied")
	}
}

// FuzzDecrypt: a whole hostile message gives a sentinel error or an
// entity with CRLF line ends, never a panic.
func FuzzDecrypt(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".eml") {
			b, err := os.ReadFile(filepath.Join("testdata", e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIA=\r\n"))
	f.Add([]byte("Content-Type: application/octet-stream; name=smime.p7m\nContent-Transfer-Encoding: binary\n\n0\x80"))
	rsaPair, ecPair := sampleKeys(f)
	keys := []KeyPair{rsaPair, ecPair}
	f.Fuzz(func(t *testing.T, msg []byte) {
		d, err := Decrypt(msg, keys)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		if bareLFs(d.Entity) != 0 {
			t.Fatal("entity with bare LF")
		}
	})
}
