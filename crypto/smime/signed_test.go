package smime

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"smimeproxy/internal/mailtest"
)

// TestSignedEntityWrittenTwice: one signature, written twice, gives the
// same bytes, exactly Len of them, and they verify to the canonical
// entity; SignEntity writes the same form.
func TestSignedEntityWrittenTwice(t *testing.T) {
	pki := mailtest.NewPKI(t)
	for _, kt := range []mailtest.KeyType{mailtest.RSA, mailtest.P256} {
		u := pki.User(t, "alice@example.test", kt)
		_, entity, err := SplitMessage([]byte(msgNested))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Canonicalize(entity)
		for _, opaque := range []bool{false, true} {
			s, err := NewSignedEntity(entity, signOpts(u, opaque))
			if err != nil {
				t.Fatal(err)
			}
			var a, b bytes.Buffer
			na, erra := s.WriteTo(&a)
			nb, errb := s.WriteTo(&b)
			if erra != nil || errb != nil || !bytes.Equal(a.Bytes(), b.Bytes()) || na != s.Len() || nb != s.Len() || int64(a.Len()) != s.Len() {
				t.Fatalf("%v opaque=%v: writes of %d and %d bytes differ or miss Len %d", kt, opaque, na, nb, s.Len())
			}
			res, err := VerifyEntity(a.Bytes(), "alice@example.test", VerifyOptions{Roots: pki.Roots()})
			if err != nil || !res.Valid || res.Opaque != opaque || !bytes.Equal(res.Entity, want) {
				t.Fatalf("%v opaque=%v: verify %v %+v", kt, opaque, err, res)
			}
			once, err := SignEntity(entity, signOpts(u, opaque))
			if err != nil {
				t.Fatal(err)
			}
			// The same length for RSA (ECDSA signatures vary by a few bytes).
			res2, err := VerifyEntity(once, "alice@example.test", VerifyOptions{Roots: pki.Roots()})
			if err != nil || !res2.Valid || res2.Opaque != opaque || (kt == mailtest.RSA && len(once) != a.Len()) {
				t.Fatalf("SignEntity wrote %d bytes (%v), the SignedEntity %d", len(once), err, a.Len())
			}
		}
	}
}

// TestSignedEntityWriteErrors: the destination's error comes back from
// WriteTo wherever it fails, detached or opaque.
func TestSignedEntityWriteErrors(t *testing.T) {
	pki := mailtest.NewPKI(t)
	u := pki.User(t, "alice@example.test", mailtest.RSA)
	entity := []byte("Content-Type: text/plain\r\n\r\n" + strings.Repeat("line of text\r\n", 5000))
	for _, opaque := range []bool{false, true} {
		s, err := NewSignedEntity(entity, signOpts(u, opaque))
		if err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{0, 50, int(s.Len()) / 2, int(s.Len()) - 1} {
			if _, err := s.WriteTo(&failingWriter{left: limit}); !errors.Is(err, errWriterFull) {
				t.Fatalf("opaque=%v, writer failing after %d bytes: %v", opaque, limit, err)
			}
		}
	}
}

// TestStreamedSignThenEncrypt: a SignedEntity encrypted by NewEnvelope,
// at content sizes around block and chunk boundaries, for CBC and GCM and
// an RSA and an EC recipient in the same envelope, opens with either key
// to two layers — envelope, then a valid signature over the canonical
// entity.
func TestStreamedSignThenEncrypt(t *testing.T) {
	pki := mailtest.NewPKI(t)
	alice := pki.User(t, "alice@example.test", mailtest.RSA)
	bob := pki.User(t, "bob@example.test", mailtest.RSA)
	carol := pki.User(t, "carol@example.test", mailtest.P256)
	outer := Header{NewField("From", "alice@example.test"), NewField("To", "bob@example.test, carol@example.test")}
	for _, c := range []Cipher{AES256CBC, AES256GCM} {
		for _, n := range []int{0, 1, 15, 16, 17, cbcChunk - 1, cbcChunk + 1} {
			for _, opaque := range []bool{false, true} {
				entity := []byte("Content-Type: text/plain\r\n\r\n" + strings.Repeat("x", n))
				want, _ := Canonicalize(entity) // long lines become quoted-printable
				s, err := NewSignedEntity(entity, signOpts(alice, opaque))
				if err != nil {
					t.Fatal(err)
				}
				env, err := NewEnvelope(s, []Recipient{{Cert: bob.EncCert}, {Cert: carol.EncCert}}, EncryptOptions{Cipher: c})
				if err != nil {
					t.Fatal(err)
				}
				var msg bytes.Buffer
				if err := ComposeContent(&msg, outer, env); err != nil {
					t.Fatal(err)
				}
				for _, u := range []*mailtest.User{bob, carol} {
					o, err := Open(msg.Bytes(), []KeyPair{{Cert: u.EncCert, Key: u.EncKey}}, VerifyOptions{Roots: pki.Roots()})
					name := fmt.Sprintf("%s/%d/opaque=%v/%s", c, n, opaque, u.Name)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if len(o.Layers) != 2 || o.Layers[0].Decrypted == nil || !o.AllValid() || !bytes.Equal(o.Entity, want) {
						t.Fatalf("%s: layers %v, valid %v, entity of %d bytes, want %d", name, layerKinds(o), o.AllValid(), len(o.Entity), len(want))
					}
				}
			}
		}
	}
}

// TestOpenSSLReadsStreamedSignThenEncrypt: openssl cms -decrypt opens the
// streamed envelope (CBC and GCM, each of an RSA and an EC recipient) and
// openssl cms -verify accepts the signed entity inside and returns the
// canonical entity.
func TestOpenSSLReadsStreamedSignThenEncrypt(t *testing.T) {
	bin := mailtest.LookTool(t, "openssl", "openssl")
	pki := mailtest.NewPKI(t)
	alice := pki.User(t, "alice@example.test", mailtest.RSA)
	bob := pki.User(t, "bob@example.test", mailtest.RSA)
	carol := pki.User(t, "carol@example.test", mailtest.P256)
	files := map[*mailtest.User]sigFiles{bob: writeSigFiles(t, pki, bob), carol: writeSigFiles(t, pki, carol)}
	// 8-bit text that canonicalisation re-encodes, a few chunks long.
	entity := []byte("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		strings.Repeat("gr\xc3\xbc\xc3\x9fe aus der Stadt, eine Zeile von etwa sechzig Zeichen\r\n", 700))
	want, _ := Canonicalize(entity)
	outer := Header{NewField("From", "alice@example.test"), NewField("Subject", "interop")}
	for _, c := range []Cipher{AES256CBC, AES128GCM, AES256GCM} {
		for _, opaque := range []bool{false, true} {
			s, err := NewSignedEntity(entity, signOpts(alice, opaque))
			if err != nil {
				t.Fatal(err)
			}
			env, err := NewEnvelope(s, []Recipient{{Cert: bob.EncCert}, {Cert: carol.EncCert, OAEP: true}}, EncryptOptions{Cipher: c})
			if err != nil {
				t.Fatal(err)
			}
			var msg bytes.Buffer
			if err := ComposeContent(&msg, outer, env); err != nil {
				t.Fatal(err)
			}
			for _, u := range []*mailtest.User{bob, carol} {
				name := fmt.Sprintf("%s/opaque=%v/%s", c, opaque, u.Name)
				f := files[u]
				signedMsg, err := sigOpenSSL(t, bin, msg.Bytes(), "cms", "-decrypt", "-recip", f.user.EncCert, "-inkey", f.user.EncKey)
				if err != nil {
					t.Fatalf("%s: openssl could not decrypt", name)
				}
				out, err := sigOpenSSL(t, bin, signedMsg, "cms", "-verify", "-CAfile", f.root, "-purpose", "smimesign")
				if err != nil {
					t.Fatalf("%s: openssl refused the signature", name)
				}
				if !bytes.Equal(out, want) {
					t.Fatalf("%s: openssl content differs (%d bytes, want %d)", name, len(out), len(want))
				}
			}
		}
	}
}
