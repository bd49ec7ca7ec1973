package smime

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"testing"
)

const testEntity = "Content-Type: text/plain; charset=us-ascii\r\n\r\nHello S/MIME envelope\r\n"

func TestRoundTripEveryCipherAndKeyType(t *testing.T) {
	keys := testKeys(t)
	type kt struct {
		key  string
		oaep bool
		km   string
	}
	kinds := []kt{
		{"rsa", false, "rsa-pkcs1v15"},
		{"rsa", true, "rsa-oaep-sha256"},
		{"p256", false, "ecdh-sha256kdf"},
		{"p384", false, "ecdh-sha256kdf"},
	}
	for _, c := range OutboundCiphers() {
		for _, k := range kinds {
			for _, size := range []int{0, 1, 15, 16, 17, 4096} {
				name := fmt.Sprintf("%s/%s-oaep=%v/%d", c, k.key, k.oaep, size)
				t.Run(name, func(t *testing.T) {
					content := bytes.Repeat([]byte("x"), size)
					copy(content, testEntity)
					der, err := EncryptEntity(content, []Recipient{{Cert: keys[k.key].cert, OAEP: k.oaep}}, EncryptOptions{Cipher: c})
					if err != nil {
						t.Fatal(err)
					}
					if bytes.Contains(der, []byte("Hello S/MIME")) && size > 30 {
						t.Fatal("plaintext visible in the envelope")
					}
					d, err := DecryptDER(der, []KeyPair{keys[k.key].pair()})
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(d.Entity, content) {
						t.Fatalf("content differs: got %d bytes, want %d", len(d.Entity), len(content))
					}
					if d.Cipher != c || d.Authenticated != c.AEAD() || d.KeyManagement != k.km || d.Recipient != keys[k.key].cert {
						t.Fatalf("result %+v", d)
					}
				})
			}
		}
	}
}

func TestSeveralRecipientsEachDecrypts(t *testing.T) {
	keys := testKeys(t)
	to := []Recipient{
		{Cert: keys["rsa"].cert},
		{Cert: keys["rsa2"].cert, OAEP: true},
		{Cert: keys["p256"].cert},
		{Cert: keys["p384"].cert},
	}
	for _, c := range OutboundCiphers() {
		for _, ski := range []bool{false, true} {
			der, err := EncryptEntity([]byte(testEntity), to, EncryptOptions{Cipher: c, SubjectKeyID: ski})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"rsa", "rsa2", "p256", "p384"} {
				d, err := DecryptDER(der, []KeyPair{keys[name].pair()})
				if err != nil {
					t.Fatalf("%s ski=%v %s: %v", c, ski, name, err)
				}
				if string(d.Entity) != testEntity || d.Recipient != keys[name].cert {
					t.Fatalf("%s ski=%v %s: wrong result", c, ski, name)
				}
			}
		}
	}
}

func TestWrongKey(t *testing.T) {
	keys := testKeys(t)
	for _, c := range OutboundCiphers() {
		der, err := EncryptEntity([]byte(testEntity), []Recipient{{Cert: keys["rsa"].cert}, {Cert: keys["p256"].cert}}, EncryptOptions{Cipher: c})
		if err != nil {
			t.Fatal(err)
		}
		// A certificate that is not among the recipients.
		if _, err := DecryptDER(der, []KeyPair{keys["rsa2"].pair(), keys["p384"].pair()}); !errors.Is(err, ErrNoMatchingRecipient) {
			t.Fatalf("%s: other certificate: %v", c, err)
		}
		// The right certificate with the wrong private key: the RSA step
		// must not fail visibly; the content fails with the one error.
		// CBC has no integrity check: a random key gives valid padding
		// about once in 256 tries, and then garbage, never the content.
		d, err := DecryptDER(der, []KeyPair{{Cert: keys["rsa"].cert, Key: keys["rsa2"].key}})
		switch {
		case errors.Is(err, ErrDecryptFailed):
		case err == nil && !c.AEAD() && string(d.Entity) != testEntity:
		default:
			t.Fatalf("%s: wrong RSA key: %v", c, err)
		}
		wrongEC := keys["p256"].key.(*ecdsa.PrivateKey)
		other, _ := ecdsa.GenerateKey(wrongEC.Curve, nil)
		if other == nil {
			other = wrongEC
		}
		if _, err := DecryptDER(der, []KeyPair{{Cert: keys["p256"].cert, Key: other}}); !errors.Is(err, ErrDecryptFailed) {
			t.Fatalf("%s: wrong EC key: %v", c, err)
		}
	}
}

func TestUnusableRecipientCertificates(t *testing.T) {
	keys := testKeys(t)
	signOnly := *keys["rsa"].cert
	signOnly.KeyUsage = x509.KeyUsageDigitalSignature
	ecNoAgreement := *keys["p256"].cert
	ecNoAgreement.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	serverOnly := *keys["rsa"].cert
	serverOnly.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for name, c := range map[string]*x509.Certificate{"signing-only RSA": &signOnly, "EC without keyAgreement": &ecNoAgreement, "serverAuth only": &serverOnly} {
		_, err := EncryptEntity([]byte(testEntity), []Recipient{{Cert: keys["rsa2"].cert}, {Cert: c}}, EncryptOptions{})
		if !errors.Is(err, ErrUnusableRecipient) {
			t.Errorf("%s: want ErrUnusableRecipient, got %v", name, err)
		}
	}
	otherPurpose := *keys["rsa"].cert
	otherPurpose.ExtKeyUsage, otherPurpose.UnknownExtKeyUsage = nil, []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 311, 21, 5}}
	if _, err := EncryptEntity([]byte(testEntity), []Recipient{{Cert: &otherPurpose}}, EncryptOptions{}); !errors.Is(err, ErrUnusableRecipient) {
		t.Errorf("unknown purpose only: want ErrUnusableRecipient, got %v", err)
	}
	if _, err := EncryptEntity([]byte(testEntity), nil, EncryptOptions{}); !errors.Is(err, ErrNoRecipients) {
		t.Errorf("no recipients: %v", err)
	}
	if _, err := EncryptEntity([]byte(testEntity), []Recipient{{Cert: keys["rsa"].cert}}, EncryptOptions{Cipher: DES3CBC}); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("3DES outbound: %v", err)
	}
}

// TestKeyRecoveryAgentMayBeEncryptedTo: a certificate whose only purpose
// is Key Recovery Agent (the escrow certificate) is a valid recipient, and
// the escrowed content opens with its key.
func TestKeyRecoveryAgentMayBeEncryptedTo(t *testing.T) {
	keys := testKeys(t)
	for _, name := range []string{"rsa", "p256"} {
		kra := *keys[name].cert
		kra.ExtKeyUsage, kra.UnknownExtKeyUsage = nil, []asn1.ObjectIdentifier{OIDKeyRecoveryAgent}
		der, err := EncryptEntity([]byte(testEntity), []Recipient{{Cert: &kra}}, EncryptOptions{Cipher: AES256CBC})
		if err != nil {
			t.Fatalf("%s: encrypt to a Key Recovery Agent certificate: %v", name, err)
		}
		d, err := DecryptDER(der, []KeyPair{{Cert: keys[name].cert, Key: keys[name].key}})
		if err != nil || string(d.Entity) != testEntity {
			t.Fatalf("%s: decrypt escrow copy: %v", name, err)
		}
	}
}
