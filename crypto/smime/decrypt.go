package smime

import (
	"bytes"
	"cmp"
	"crypto"
	"crypto/ecdh"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
)

// Errors callers branch on. Every failure is wrapped with detail, so test
// with errors.Is.
var (
	// ErrNotEncrypted: the input is not an EnvelopedData or AuthEnvelopedData
	// (for example a signed or plain message).
	ErrNotEncrypted = errors.New("smime: not an encrypted S/MIME message")
	// ErrNoMatchingRecipient: none of the recipients in the message is one
	// of the given certificates.
	ErrNoMatchingRecipient = errors.New("smime: the message is not encrypted to any of the given certificates")
	// ErrUnsupportedAlgorithm: an algorithm or option we do not implement.
	ErrUnsupportedAlgorithm = errors.New("smime: unsupported algorithm")
	// ErrMalformed: broken ASN.1, base64 or structure.
	ErrMalformed = errors.New("smime: malformed message")
	// ErrDecryptFailed: the content did not decrypt (wrong key, corrupted
	// ciphertext, bad padding or a failed GCM tag). Deliberately one error
	// for all of these, so the cause cannot be told apart from outside.
	ErrDecryptFailed = errors.New("smime: decryption failed (wrong key or corrupted message)")
)

// KeyPair is a certificate and its private key. Key is a crypto.Decrypter
// for RSA (for example *rsa.PrivateKey or a sealed-key handle), or for EC an
// *ecdsa.PrivateKey, *ecdh.PrivateKey or anything implementing ECDHKey.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.PrivateKey
}

// ECDHKey is an EC private key that performs ECDH without exposing the
// scalar; *ecdh.PrivateKey implements it.
type ECDHKey interface {
	Public() crypto.PublicKey
	ECDH(peer *ecdh.PublicKey) ([]byte, error)
}

// Decrypted is the result of a successful decryption.
type Decrypted struct {
	Entity        []byte            // the inner MIME entity (DecryptDER: the raw content)
	Cipher        Cipher            // content-encryption algorithm
	Authenticated bool              // AuthEnvelopedData: content integrity was checked (AES-GCM)
	Recipient     *x509.Certificate // the certificate whose key opened the message
	KeyManagement string            // e.g. "rsa-pkcs1v15", "rsa-oaep-sha256", "ecdh-sha1kdf"
	// Header holds the outer header fields of the encrypted message (From,
	// To, Subject, …); Compose(w, Header, Entity) gives the whole
	// decrypted message. Nil from DecryptDER.
	Header Header
}

// Decrypt decrypts a whole S/MIME message (application/pkcs7-mime
// enveloped-data or authEnveloped-data at the top level, CRLF or LF) with
// the first of keys the message is addressed to, and returns the inner MIME
// entity with CRLF line ends plus the outer header fields.
func Decrypt(msg []byte, keys []KeyPair) (*Decrypted, error) {
	outer, der, owned, err := envelopeBody(msg)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	d, err := decryptCMS(der, keys, owned)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	if bareLFs(d.Entity) > 0 { // a fast scan; ToCRLF's loop is byte by byte
		d.Entity = ToCRLF(d.Entity)
	}
	d.Entity = dropMIMEVersion(d.Entity)
	d.Header = outer
	return d, nil
}

// DecryptDER decrypts a CMS EnvelopedData or AuthEnvelopedData (DER or
// BER) with the first of keys whose certificate the message names. der is
// not modified.
func DecryptDER(der []byte, keys []KeyPair) (*Decrypted, error) {
	return decryptCMS(der, keys, false)
}

// decryptCMS does the work of DecryptDER; with owned the input buffer
// belongs to us and is decrypted in place.
func decryptCMS(in []byte, keys []KeyPair, owned bool) (*Decrypted, error) {
	der, err := berToDER(in)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if &der[0] != &in[0] {
		owned = true
	}
	env, err := parseEnvelope(der)
	if err != nil {
		return nil, err
	}
	ci, _ := env.cipher.info()
	cek, kp, km, err := env.contentKey(keys, ci.keyLen)
	if err != nil {
		return nil, err
	}
	defer clear(cek)
	ct := env.ciphertext
	inPlace := owned
	if env.chunked {
		if ct, err = joinChunks(ct, owned); err != nil {
			return nil, err
		}
		inPlace = true // a fresh copy when not owned
	}
	var plain []byte
	if env.auth {
		plain, err = openGCM(cek, env.params, ct, env.mac, inPlace)
	} else {
		plain, err = decryptCBC(env.cipher, cek, env.params, ct, inPlace)
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt %s content: %w", env.cipher, err)
	}
	return &Decrypted{Entity: plain, Cipher: env.cipher, Authenticated: env.auth, Recipient: kp.Cert, KeyManagement: km}, nil
}

// contentKey finds a RecipientInfo addressed to one of keys and recovers
// the content key. RecipientInfo types we do not handle (kekri, pwri, ori)
// and unparseable ones are skipped as long as another one matches.
func (env *envelope) contentKey(keys []KeyPair, keyLen int) ([]byte, KeyPair, string, error) {
	var skipped error // the first unreadable RecipientInfo, for the error message
	var failed error  // the first matching RecipientInfo that did not open
	nSkipped, attempts := 0, 0
	skip := func(err error) {
		if nSkipped++; skipped == nil {
			skipped = err
		}
	}
	for _, ri := range env.recipients {
		switch ri[0] {
		case 0x30: // ktri
			k, err := parseKTRI(ri)
			if err != nil {
				skip(err)
				continue
			}
			for _, kp := range keys {
				dec, ok := kp.Key.(crypto.Decrypter)
				if _, isRSA := certKey(kp).(*rsa.PublicKey); !ok || !isRSA || !matches(kp.Cert, k.issuer, k.serial, k.ski) {
					continue
				}
				if attempts++; attempts > maxKeyAttempts {
					break
				}
				// Errors here are only unsupported parameters: an RSA
				// failure gives a random key, never an error.
				cek, km, err := unwrapKTRI(k, dec, keyLen)
				if err == nil {
					return cek, kp, km, nil
				}
				failed = cmp.Or(failed, err)
			}
		case 0xa1: // kari
			k, err := parseKARI(ri)
			if err != nil {
				skip(err)
				continue
			}
			for _, rek := range k.keys {
				for _, kp := range keys {
					ek, ok := ecdhKeyOf(kp.Key)
					if !ok || !matches(kp.Cert, rek.issuer, rek.serial, rek.ski) {
						continue
					}
					if attempts++; attempts > maxKeyAttempts {
						break
					}
					cek, km, err := unwrapKARI(k, rek.encKey, ek, keyLen)
					if err == nil {
						return cek, kp, km, nil
					}
					failed = cmp.Or(failed, err)
				}
			}
		}
	}
	switch {
	case failed != nil:
		return nil, KeyPair{}, "", failed
	case skipped != nil:
		return nil, KeyPair{}, "", fmt.Errorf("%w (%d unreadable recipient entries, the first: %v)", ErrNoMatchingRecipient, nSkipped, skipped)
	}
	return nil, KeyPair{}, "", ErrNoMatchingRecipient
}

// maxKeyAttempts bounds the private-key operations one message can cause:
// a hostile envelope may name our certificate in thousands of entries.
const maxKeyAttempts = 8

func certKey(kp KeyPair) crypto.PublicKey {
	if kp.Cert == nil {
		return nil
	}
	return kp.Cert.PublicKey
}

// matches reports whether cert is the one a RecipientIdentifier names.
func matches(cert *x509.Certificate, issuer []byte, serial *big.Int, ski []byte) bool {
	if cert == nil {
		return false
	}
	if ski != nil {
		return len(cert.SubjectKeyId) > 0 && bytes.Equal(cert.SubjectKeyId, ski)
	}
	return serial != nil && bytes.Equal(cert.RawIssuer, issuer) && cert.SerialNumber.Cmp(serial) == 0
}
