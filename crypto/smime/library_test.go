package smime

import (
	"crypto/x509"
	"testing"

	"github.com/smallstep/pkcs7"
)

// TestLibraryCrossCheck uses smallstep/pkcs7 as a second implementation:
// after ConfigureLibrary it writes AES-256-CBC with RSA PKCS#1 v1.5, which
// we read, and it reads what we write in that configuration.
func TestLibraryCrossCheck(t *testing.T) {
	ConfigureLibrary()
	ConfigureLibrary() // a second call changes nothing
	if pkcs7.ContentEncryptionAlgorithm != pkcs7.EncryptionAlgorithmAES256CBC || !pkcs7.KeyEncryptionAlgorithm.Equal(pkcs7.OIDEncryptionAlgorithmRSA) {
		t.Fatal("ConfigureLibrary did not set the pkcs7 globals")
	}
	keys := testKeys(t)
	theirs, err := pkcs7.Encrypt([]byte(testEntity), []*x509.Certificate{keys["rsa"].cert})
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecryptDER(theirs, []KeyPair{keys["rsa"].pair()})
	if err != nil || string(d.Entity) != testEntity || d.Cipher != AES256CBC {
		t.Fatalf("reading pkcs7 output: %v", err)
	}
	ours, err := EncryptEntity([]byte(testEntity), []Recipient{{Cert: keys["rsa"].cert}, {Cert: keys["rsa2"].cert, OAEP: true}}, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rsa", "rsa2"} {
		p7, err := pkcs7.Parse(ours)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p7.Decrypt(keys[name].cert, keys[name].key)
		if err != nil || string(got) != testEntity {
			t.Fatalf("pkcs7 reading ours as %s: %v", name, err)
		}
	}
}
