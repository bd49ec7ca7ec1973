package legacy

import (
	"bytes"
	"slices"
	"testing"
)

// berize re-encodes DER the way BER writers do: every constructed
// element with indefinite length, and OCTET STRINGs (also [0] IMPLICIT
// ones) longer than 64 bytes split into constructed 64-byte chunks. It
// does not look inside primitive contents.
func berize(t *testing.T, der []byte) []byte {
	t.Helper()
	var out []byte
	for len(der) > 0 {
		tag := der[0]
		// elementContent returns everything after the header; cut at the length.
		hdr := len(der) - len(elementContent(der))
		l := contentLength(t, der)
		content := der[hdr : hdr+l]
		der = der[hdr+l:]
		switch {
		case tag&0x20 != 0:
			out = append(out, tag, 0x80)
			out = append(out, berize(t, content)...)
			out = append(out, 0, 0)
		case (tag == 0x04 || tag == 0x80) && len(content) > 64:
			out = append(out, tag|0x20, 0x80)
			for c := range slices.Chunk(content, 64) {
				out = appendElement(out, []byte{0x04}, c)
			}
			out = append(out, 0, 0)
		default:
			out = appendElement(out, []byte{tag}, content)
		}
	}
	return out
}

func contentLength(t *testing.T, der []byte) int {
	t.Helper()
	if der[0]&0x1f == 0x1f {
		t.Fatal("high tag numbers are not used in these files")
	}
	if der[1] < 0x80 {
		return int(der[1])
	}
	n := 0
	for _, b := range der[2 : 2+int(der[1]&0x7f)] {
		n = n<<8 | int(b)
	}
	return n
}

func TestBERToDERRoundTrip(t *testing.T) {
	p := newPKI(t)
	p.run("crl2pkcs7", "-nocrl", "-certfile", "alice-sign.crt", "-certfile", "ca.crt", "-outform", "DER", "-out", "ber-src.p7b")
	der := p.read("ber-src.p7b")
	ber := berize(t, der)
	if bytes.Equal(ber, der) || !bytes.Contains(ber, []byte{0x30, 0x80}) {
		t.Fatal("berize changed nothing")
	}
	back, err := berToDER(ber)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, der) {
		t.Error("BER to DER does not restore the DER original")
	}
	b, err := Read(ber, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Certs) != 2 || !b.Certs[0].Equal(p.cert("alice-sign.crt")) {
		t.Errorf("BER PKCS#7: %d certificates", len(b.Certs))
	}
	for _, bad := range [][]byte{
		{0x30, 0x80, 0x02, 0x01, 0x01},             // no end-of-contents
		{0x04, 0x80, 0x00, 0x00},                   // indefinite primitive
		{0x24, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00}, // chunk of the wrong type
		{0x30, 0x85, 1, 0, 0, 0, 0},                // length of five bytes
		{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff},       // length beyond the data
	} {
		if _, err := berToDER(bad); err == nil {
			t.Errorf("berToDER(%x) accepted", bad)
		}
	}
}

// TestBERPKCS12 reads PKCS#12 files in BER as Java, EJBCA and PKI.js
// write them: indefinite lengths outside, and also inside the
// authenticated safe with the encrypted content split into chunks (the
// MAC then covers the BER bytes). openssl reads both, which shows the
// test files are valid.
func TestBERPKCS12(t *testing.T) {
	p := newPKI(t)
	alice := p.cert("alice-sign.crt")
	for _, legacyAlgs := range []bool{false, true} {
		args := []string{"pkcs12", "-export", "-inkey", "alice-sign.key", "-in", "alice-sign.crt", "-certfile", "ca.crt", "-passout", "pass:pw", "-out", "ber-src.p12"}
		if legacyAlgs {
			args = append(args, "-legacy")
		}
		p.run(args...)
		src := p.read("ber-src.p12")

		var pfx pfxPDU
		if err := unmarshalAll(src, &pfx); err != nil {
			t.Fatal(err)
		}
		var authSafe []byte
		if err := unmarshalAll(pfx.AuthSafe.Content.Bytes, &authSafe); err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{
			"outer": berize(t, src),
			"deep":  berize(t, pfxWithMAC(t, berize(t, authSafe), bmpPassword("pw"))),
		}
		for name, data := range files {
			if err := writeFile(p.path("ber.p12"), data); err != nil {
				t.Fatal(err)
			}
			opensslArgs := []string{"pkcs12", "-in", "ber.p12", "-passin", "pass:pw", "-nodes"}
			if legacyAlgs {
				opensslArgs = append(opensslArgs, "-legacy")
			}
			p.run(opensslArgs...)
			b, err := Read(data, "pw")
			if err != nil {
				t.Errorf("legacy=%v %s: %v", legacyAlgs, name, err)
				continue
			}
			if len(b.Keys) != 1 || len(b.Certs) != 2 || !samePublicKey(b.Keys[0].Public(), alice.PublicKey) {
				t.Errorf("legacy=%v %s: %d keys %d certificates", legacyAlgs, name, len(b.Keys), len(b.Certs))
			}
			if _, err := Read(data, "wrong"); err == nil {
				t.Errorf("legacy=%v %s: wrong password accepted", legacyAlgs, name)
			}
		}
	}
}
