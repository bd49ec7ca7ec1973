package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
)

// KeyType names a kind of key pair GenerateKey makes.
type KeyType string

// Key types. RSA-2048 is the default for users' keys because every mail
// client reads it; EC P-256 is the configurable alternative.
const (
	KeyRSA2048 KeyType = "rsa2048"
	KeyRSA3072 KeyType = "rsa3072"
	KeyP256    KeyType = "p256"
	KeyP384    KeyType = "p384"
)

// DefaultKeyType is the key type used when none is configured.
const DefaultKeyType = KeyRSA2048

// ErrUnsupportedKey reports a key type or public key the CA does not handle.
var ErrUnsupportedKey = errors.New("unsupported key")

// KeyTypes lists every key type GenerateKey makes, the values the
// configuration may name.
func KeyTypes() []KeyType {
	return []KeyType{KeyRSA2048, KeyRSA3072, KeyP256, KeyP384}
}

// ParseKeyType turns a configuration value (one of KeyTypes; empty means
// the default) into a KeyType.
func ParseKeyType(s string) (KeyType, error) {
	k := KeyType(s)
	switch {
	case k == "":
		return DefaultKeyType, nil
	case slices.Contains(KeyTypes(), k):
		return k, nil
	}
	return "", fmt.Errorf("key type %q: %w (use rsa2048, rsa3072, p256 or p384)", s, ErrUnsupportedKey)
}

// GenerateKey makes a new private key of the given type; the empty type
// means DefaultKeyType.
func GenerateKey(kind KeyType) (crypto.Signer, error) {
	var (
		k   crypto.Signer
		err error
	)
	switch kind {
	case "", KeyRSA2048:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		k, err = rsa.GenerateKey(rand.Reader, 3072)
	case KeyP256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyP384:
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		return nil, fmt.Errorf("generate key %q: %w", kind, ErrUnsupportedKey)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", kind, err)
	}
	return k, nil
}

// MarshalPrivateKeyPEM encodes a private key as PEM PKCS#8, the form
// OpenSSL and every other tool read.
func MarshalPrivateKeyPEM(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM reads the first private key in PEM data: PKCS#1 RSA
// ("RSA PRIVATE KEY"), SEC1 EC ("EC PRIVATE KEY") or PKCS#8 ("PRIVATE
// KEY") holding RSA, ECDSA or Ed25519. Encrypted keys are refused; other
// blocks (such as "EC PARAMETERS") are skipped.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		if _, enc := block.Headers["Proc-Type"]; enc || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("private key is encrypted; give the CA key unencrypted (file mode 0600)")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("private key of type %T: %w", key, ErrUnsupportedKey)
		}
		return signer, nil
	}
}

// samePublicKey reports whether a and b are the same public key.
func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

// keyKind says how a public key can be used for mail.
type keyKind int

const (
	kindRSA     keyKind = iota + 1 // sign, key transport
	kindEC                         // sign, key agreement
	kindEd25519                    // sign only
)

// checkUserKey refuses public keys too weak or of a kind no mail client
// reads, and tells which kind the key is.
func checkUserKey(pub crypto.PublicKey) (keyKind, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return 0, fmt.Errorf("RSA key of %d bits: %w (at least 2048 bits)", k.N.BitLen(), ErrUnsupportedKey)
		}
		return kindRSA, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return kindEC, nil
		}
		return 0, fmt.Errorf("EC key on curve %s: %w", k.Curve.Params().Name, ErrUnsupportedKey)
	case ed25519.PublicKey:
		return kindEd25519, nil
	}
	return 0, fmt.Errorf("public key of type %T: %w", pub, ErrUnsupportedKey)
}

// keyID computes a subject key identifier: the leftmost 160 bits of the
// SHA-256 hash of the subjectPublicKey bits (RFC 7093 section 2, method 1).
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}
