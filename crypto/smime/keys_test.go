package smime

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"io"
	"strings"
	"testing"
)

// opaqueDecrypter exposes only crypto.Decrypter, as a sealed or hardware
// key would: no *rsa.PrivateKey for the code to reach into.
type opaqueDecrypter struct {
	inner crypto.Decrypter
	calls int
	fail  bool
}

func (o *opaqueDecrypter) Public() crypto.PublicKey { return o.inner.Public() }
func (o *opaqueDecrypter) Decrypt(r io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	o.calls++
	if o.fail {
		return nil, errors.New("token removed")
	}
	return o.inner.Decrypt(r, msg, opts)
}

// opaqueECDH exposes only the ECDHKey interface.
type opaqueECDH struct{ k *ecdh.PrivateKey }

func (o opaqueECDH) Public() crypto.PublicKey                  { return o.k.PublicKey() }
func (o opaqueECDH) ECDH(peer *ecdh.PublicKey) ([]byte, error) { return o.k.ECDH(peer) }

func TestKeysThroughInterfaces(t *testing.T) {
	keys := testKeys(t)
	ecKey, err := keys["p256"].key.(*ecdsa.PrivateKey).ECDH()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range OutboundCiphers() {
		der, err := EncryptEntity([]byte(testEntity), []Recipient{{Cert: keys["rsa"].cert}, {Cert: keys["rsa2"].cert, OAEP: true}, {Cert: keys["p256"].cert}}, EncryptOptions{Cipher: c})
		if err != nil {
			t.Fatal(err)
		}
		for name, kp := range map[string]KeyPair{
			"rsa decrypter":     {Cert: keys["rsa"].cert, Key: &opaqueDecrypter{inner: keys["rsa"].key.(*rsa.PrivateKey)}},
			"oaep decrypter":    {Cert: keys["rsa2"].cert, Key: &opaqueDecrypter{inner: keys["rsa2"].key.(*rsa.PrivateKey)}},
			"*ecdh.PrivateKey":  {Cert: keys["p256"].cert, Key: ecKey},
			"ECDHKey interface": {Cert: keys["p256"].cert, Key: opaqueECDH{ecKey}},
			"*ecdsa.PrivateKey": keys["p256"].pair(),
		} {
			d, err := DecryptDER(der, []KeyPair{kp})
			if err != nil || string(d.Entity) != testEntity {
				t.Fatalf("%s %s: %v", c, name, err)
			}
		}
	}
}

// TestRSAFailureIsNotObservable guards against a Bleichenbacher-style
// oracle: a broken encrypted key, a key that is not the certificate's and
// a Decrypter that errors all end in the same error, after content
// decryption was attempted with a random key.
func TestRSAFailureIsNotObservable(t *testing.T) {
	keys := testKeys(t)
	der, err := EncryptEntity([]byte(testEntity), []Recipient{{Cert: keys["rsa"].cert}}, EncryptOptions{Cipher: AES256GCM})
	if err != nil {
		t.Fatal(err)
	}
	// The encryptedKey OCTET STRING of a 2048-bit key: 04 82 01 00 + 256 bytes.
	i := strings.Index(string(der), "\x04\x82\x01\x00")
	if i < 0 {
		t.Fatal("encryptedKey not found")
	}
	broken := []byte(string(der))
	broken[i+4+10] ^= 0x55
	failing := &opaqueDecrypter{inner: keys["rsa"].key.(*rsa.PrivateKey), fail: true}
	cases := map[string]struct {
		der []byte
		kp  KeyPair
	}{
		"corrupted encryptedKey": {broken, keys["rsa"].pair()},
		"key of another cert":    {der, KeyPair{Cert: keys["rsa"].cert, Key: keys["rsa2"].key}},
		"decrypter error":        {der, KeyPair{Cert: keys["rsa"].cert, Key: failing}},
	}
	var first string
	for name, tc := range cases {
		_, err := DecryptDER(tc.der, []KeyPair{tc.kp})
		if !errors.Is(err, ErrDecryptFailed) {
			t.Fatalf("%s: %v", name, err)
		}
		if first == "" {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("%s: error %q differs from %q", name, err, first)
		}
	}
	if failing.calls != 1 {
		t.Fatalf("decrypter called %d times", failing.calls)
	}
}

// countingECDH counts the private-key operations a message causes.
type countingECDH struct {
	opaqueECDH
	calls *int
}

func (c countingECDH) ECDH(peer *ecdh.PublicKey) ([]byte, error) {
	*c.calls++
	return c.opaqueECDH.ECDH(peer)
}

// TestManyMatchingRecipientEntriesBounded: an envelope naming our
// certificate in 200 entries, none of which opens, costs at most
// maxKeyAttempts key operations and ends in ErrDecryptFailed.
func TestManyMatchingRecipientEntriesBounded(t *testing.T) {
	keys := testKeys(t)
	ecKey, _ := keys["p256"].key.(*ecdsa.PrivateKey).ECDH()
	pub, _ := ecdhPublicKey(keys["p256"].cert)
	cek := make([]byte, 32)
	var ris [][]byte
	for i := 0; i < 200; i++ {
		ri, err := buildKARI(Recipient{Cert: keys["p256"].cert}, pub, cek, false)
		if err != nil {
			t.Fatal(err)
		}
		ri[len(ri)-1] ^= 1 // the wrapped key ends the entry: break its integrity check
		ris = append(ris, ri)
	}
	plain := content{head: []byte(testEntity)}
	der, err := sealEnveloped(AES256CBC, cek, make([]byte, 16), ris, 2, plain)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err = DecryptDER(der, []KeyPair{{Cert: keys["p256"].cert, Key: countingECDH{opaqueECDH{ecKey}, &calls}}})
	if !errors.Is(err, ErrDecryptFailed) || calls > maxKeyAttempts || calls == 0 {
		t.Fatalf("err %v after %d key operations", err, calls)
	}
}
