package smime

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update rewrites golden files: go test ./crypto/smime -run Golden -update
var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestCanonicalizeGolden: each testdata/canon/*.in canonicalises to its
// .golden; the result is 7-bit clean with CRLF line ends, decodes to the
// same content, and canonicalising again changes nothing.
func TestCanonicalizeGolden(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join("testdata", "canon", "*.in"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Canonicalize(src)
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(in, ".in") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Canonicalize(%s) =\n%q\nwant\n%q", in, got, want)
			}
			if !is7bitTree(t, got) {
				t.Error("result is not 7-bit clean")
			}
			again, err := Canonicalize(got)
			if err != nil || !bytes.Equal(again, got) {
				t.Errorf("canonicalising twice changed the entity: %v", err)
			}
			if !bytes.Equal(leafContent(t, got), leafContent(t, ToCRLF(src))) {
				t.Error("decoded content differs from the input's")
			}
			if strings.Contains(name, "unchanged") && !bytes.Equal(got, src) {
				t.Error("a 7-bit clean entity was changed")
			}
		})
	}
}

// leafContent concatenates the decoded bodies of all leaves.
func leafContent(t *testing.T, entity []byte) []byte {
	t.Helper()
	e, err := ParseEntity(entity)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	var walk func(e *Entity)
	walk = func(e *Entity) {
		if e.IsMultipart() {
			for _, p := range e.Parts {
				walk(p)
			}
			return
		}
		if e.MediaType == "message/rfc822" {
			walk(mustParse(t, e.RawBody))
			return
		}
		b, err := e.Body()
		if err != nil {
			t.Fatal(err)
		}
		// Quoted-printable turns line ends into CRLF; compare modulo that.
		out = append(out, ToCRLF(b)...)
	}
	walk(e)
	return out
}

func mustParse(t *testing.T, b []byte) *Entity {
	e, err := ParseEntity(b)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCanonicalizeLimits(t *testing.T) {
	if _, err := Canonicalize([]byte(nested(MaxDepth + 1))); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("err = %v, want ErrTooDeep", err)
	}
	if _, err := Canonicalize([]byte("Content-Type: multipart/mixed\r\n\r\nx")); !errors.Is(err, ErrMalformedMIME) {
		t.Fatalf("err = %v, want ErrMalformedMIME", err)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		ct   string
		want Kind
	}{
		{"text/plain", Plain},
		{"", Plain},
		{`multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=x`, Signed},
		{`Multipart/Signed; Protocol="application/x-pkcs7-signature"; boundary=x`, Signed},
		{`multipart/signed; protocol="application/pgp-signature"; boundary=x`, Plain},
		{`application/pkcs7-mime; smime-type=signed-data; name=smime.p7m`, SignedOpaque},
		{`application/x-pkcs7-mime; smime-type=signed-data`, SignedOpaque},
		{`APPLICATION/PKCS7-MIME; SMIME-TYPE=Enveloped-Data`, Enveloped},
		{`application/pkcs7-mime; smime-type=authEnveloped-data; name="smime.p7m"`, AuthEnveloped},
		{`application/pkcs7-mime; smime-type=certs-only; name=smime.p7c`, CertsOnly},
		{`application/pkcs7-mime; name="smime.p7m"`, Enveloped},
		{`application/x-pkcs7-mime; name="SMIME.P7C"`, CertsOnly},
		{`application/pkcs7-mime; smime-type=compressed-data`, Unknown},
		{`application/pkcs7-mime; name=letter.pdf`, Unknown},
		{`application/pkcs7-signature`, Unknown},
		{`application/pkcs7-mime; smime-type=signed-data; name=`, SignedOpaque}, // bad parameter list
	}
	for _, tt := range tests {
		if got := Classify(tt.ct); got != tt.want {
			t.Errorf("Classify(%q) = %v, want %v", tt.ct, got, tt.want)
		}
	}
}

func FuzzClassify(f *testing.F) {
	f.Add(`application/pkcs7-mime; smime-type=signed-data; name=smime.p7m`)
	f.Add(`multipart/signed; protocol="application/pkcs7-signature"; boundary=x`)
	f.Add(`application/x-pkcs7-mime; name="smime.p7c"`)
	f.Fuzz(func(t *testing.T, ct string) {
		k := Classify(ct)
		if k < Unknown || k > CertsOnly {
			t.Fatalf("Classify(%q) = %d, outside the Kind range", ct, k)
		}
		// Only the two S/MIME media types (and multipart/signed) can be S/MIME.
		l := strings.ToLower(ct)
		if k != Plain && !strings.Contains(l, "pkcs7") && !strings.Contains(l, "multipart/signed") {
			t.Fatalf("Classify(%q) = %v for a non-S/MIME type", ct, k)
		}
	})
}

func TestIs7bit(t *testing.T) {
	for in, want := range map[string]bool{
		"":                                     true,
		"abc\r\ndef\r\n":                       true,
		"abc\r\ndef":                           true,
		"abc\ndef":                             false,
		"abc\rdef\r\n":                         false,
		"trailing cr\r":                        false,
		"nul\x00\r\n":                          false,
		"high \xc3\xa4 octets\r\n":             false,
		strings.Repeat("a", 998):               true,
		strings.Repeat("a", 999):               false,
		strings.Repeat("abcdefgh", 9) + "\x80": false,
	} {
		if got := is7bit([]byte(in)); got != want {
			t.Errorf("is7bit(%.20q…) = %v, want %v", in, got, want)
		}
	}
}

// FuzzCanonicalize: outgoing messages come from mail clients, so the
// canonicaliser is a parser of outside input too. Its output must be
// stable (canonicalising again changes nothing) and CRLF-only.
func FuzzCanonicalize(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "canon", "*.in"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Canonicalize(in)
		if err != nil {
			return
		}
		if !bytes.Equal(out, ToCRLF(out)) {
			t.Fatal("bare LF in canonical output")
		}
		again, err := Canonicalize(out)
		if err != nil {
			t.Fatalf("canonical output does not canonicalise: %v", err)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("not stable:\n%q\n%q", out, again)
		}
	})
}
