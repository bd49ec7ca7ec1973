package smime

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// isSentinel reports whether err is one of the errors callers branch on.
func isSentinel(err error) bool {
	for _, s := range []error{ErrMalformed, ErrNotEncrypted, ErrUnsupportedAlgorithm, ErrNoMatchingRecipient, ErrDecryptFailed} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func TestTruncatedDER(t *testing.T) {
	rsaPair, ecPair := sampleKeys(t)
	for _, name := range []string{"enc-aes256gcm-openssl.p7m", "enc-aes256cbc-ber-stream-openssl.p7m", "enc-ecdh-sha1kdf-openssl.p7m"} {
		der := readSample(t, name)
		for n := 0; n < len(der); n++ {
			_, err := DecryptDER(der[:n], []KeyPair{rsaPair, ecPair})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s cut at %d: want ErrMalformed, got %v", name, n, err)
			}
		}
	}
}

// TestGarbledGCMNeverYieldsWrongPlaintext flips every byte of an
// AuthEnvelopedData: each result is a sentinel error or the original
// content (bytes outside the authenticated part, such as the version).
func TestGarbledGCMNeverYieldsWrongPlaintext(t *testing.T) {
	rsaPair, ecPair := sampleKeys(t)
	want := readSample(t, "sample-entity.txt")
	for _, name := range []string{"enc-aes256gcm-openssl.p7m", "enc-ecdh-gcm-openssl.p7m"} {
		der := readSample(t, name)
		for i := range der {
			g := bytes.Clone(der)
			g[i] ^= 0xff
			d, err := DecryptDER(g, []KeyPair{rsaPair, ecPair})
			if err == nil && !bytes.Equal(d.Entity, want) {
				t.Fatalf("%s byte %d: decrypted to different content", name, i)
			}
			if err != nil && !isSentinel(err) {
				t.Fatalf("%s byte %d: error without sentinel: %v", name, i, err)
			}
		}
	}
}

func TestTamperedGCM(t *testing.T) {
	rsaPair, _ := sampleKeys(t)
	der := readSample(t, "enc-aes256gcm-openssl.p7m")
	// The mac is the last element: its final byte is the last of the input.
	tag := bytes.Clone(der)
	tag[len(tag)-1] ^= 1
	// A ciphertext byte: the mac (2+16 bytes) follows the ciphertext.
	ct := bytes.Clone(der)
	ct[len(ct)-19] ^= 1
	for name, g := range map[string][]byte{"tag": tag, "ciphertext": ct} {
		if _, err := DecryptDER(g, []KeyPair{rsaPair}); !errors.Is(err, ErrDecryptFailed) {
			t.Errorf("tampered %s: want ErrDecryptFailed, got %v", name, err)
		}
	}
}

func TestBadCBCPadding(t *testing.T) {
	rsaPair, _ := sampleKeys(t)
	der := readSample(t, "enc-aes256cbc-openssl.p7m")
	// The ciphertext ends the message; flipping the last byte of the
	// next-to-last block flips the padding-length byte of the plaintext
	// (0x03 here) to 0xfc, which is never valid padding.
	g := bytes.Clone(der)
	g[len(g)-17] ^= 0xff
	if _, err := DecryptDER(g, []KeyPair{rsaPair}); !errors.Is(err, ErrDecryptFailed) {
		t.Fatalf("want ErrDecryptFailed, got %v", err)
	}
}

func TestUnknownAlgorithms(t *testing.T) {
	rsaPair, ecPair := sampleKeys(t)
	cases := []struct {
		sample, from, to string
	}{
		// aes256-CBC → 2.16.840.1.101.3.4.1.127
		{"enc-aes256cbc-openssl.p7m", "\x06\x09\x60\x86\x48\x01\x65\x03\x04\x01\x2a", "\x06\x09\x60\x86\x48\x01\x65\x03\x04\x01\x7f"},
		// rsaEncryption → sha1WithRSAEncryption as key transport
		{"enc-aes256cbc-openssl.p7m", "\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01", "\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x05"},
		// dhSinglePass-stdDH-sha1kdf → an unknown arc
		{"enc-ecdh-sha1kdf-openssl.p7m", "\x06\x09\x2b\x81\x05\x10\x86\x48\x3f\x00\x02", "\x06\x09\x2b\x81\x05\x10\x86\x48\x3f\x00\x09"},
		// id-aes256-wrap → an unknown wrap
		{"enc-ecdh-sha1kdf-openssl.p7m", "\x06\x09\x60\x86\x48\x01\x65\x03\x04\x01\x2d", "\x06\x09\x60\x86\x48\x01\x65\x03\x04\x01\x7e"},
		// aes256-GCM in an AuthEnvelopedData → aes256-CBC (not an AEAD)
		{"enc-aes256gcm-openssl.p7m", "\x06\x09\x60\x86\x48\x01\x65\x03\x04\x01\x2e", "\x06\x09\x60\x86\x48\x01\x65\x03\x04\x01\x2a"},
	}
	for i, c := range cases {
		der := readSample(t, c.sample)
		if strings.Count(string(der), c.from) != 1 {
			t.Fatalf("case %d: pattern not found once", i)
		}
		g := bytes.Replace(der, []byte(c.from), []byte(c.to), 1)
		_, err := DecryptDER(g, []KeyPair{rsaPair, ecPair})
		if !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Errorf("case %d: want ErrUnsupportedAlgorithm, got %v", i, err)
		}
	}
}

func TestAbsurdLengthsAndNesting(t *testing.T) {
	rsaPair, _ := sampleKeys(t)
	deep := append(bytes.Repeat([]byte{0x30, 0x80}, 500), bytes.Repeat([]byte{0, 0}, 500)...)
	// 100,000 empty OCTET STRINGs in an indefinite SEQUENCE: a tree of
	// them would cost far more memory than the input.
	tiny := append(append([]byte{0x30, 0x80}, bytes.Repeat([]byte{0x04, 0x00}, 100000)...), 0, 0)
	cases := map[string][]byte{
		"empty":               {},
		"length 2^31-1":       {0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x06, 0x00},
		"length 2^32+":        {0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00, 0x06},
		"8-byte length":       {0x30, 0x88, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"inner too long":      {0x30, 0x80, 0x04, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x00, 0x00},
		"no end-of-contents":  {0x30, 0x80, 0x30, 0x80, 0x02, 0x01, 0x00},
		"primitive indefinte": {0x04, 0x80, 0x00, 0x00},
		"nested 500 deep":     deep,
		"tiny elements":       tiny,
		"trailing garbage":    append(readSample(t, "enc-aes256cbc-openssl.p7m"), 0x00),
		"huge tag number":     {0x1f, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00},
	}
	for name, in := range cases {
		if _, err := DecryptDER(in, []KeyPair{rsaPair}); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: want ErrMalformed, got %v", name, err)
		}
	}
}

func TestNotEncrypted(t *testing.T) {
	// ContentInfo{signedData, [0] SEQUENCE{}}
	signed := []byte{0x30, 0x0f, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x02, 0x30, 0x00}
	if _, err := DecryptDER(signed, nil); !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("want ErrNotEncrypted, got %v", err)
	}
}
