package legacy

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
)

// Sentinel errors callers branch on.
var (
	// ErrWrongPassword: the file is protected and the password does not
	// open it (or none was given).
	ErrWrongPassword = errors.New("wrong password for the key file")
	// ErrUnrecognized: the data is no key or certificate file this
	// package knows.
	ErrUnrecognized = errors.New("not a recognised key or certificate file (expected PKCS#12/PFX, PEM or DER)")
	// ErrUnsupported: a recognised file uses an algorithm or feature not
	// implemented here.
	ErrUnsupported = errors.New("unsupported")
)

// Format names the kind of file Read found.
type Format string

// Formats Read recognises.
const (
	FormatPKCS12 Format = "pkcs12"
	FormatPEM    Format = "pem"
	FormatDER    Format = "der"
)

// Bundle is what a key file holds: private keys and certificates, in file
// order, without duplicates.
type Bundle struct {
	Format Format
	Keys   []crypto.Signer
	Certs  []*x509.Certificate

	keyNames  []string // friendly names, parallel to Keys
	certNames []string // parallel to Certs
}

// Read recognises data by its content (PKCS#12, PEM or DER; see the
// package documentation) and returns the keys and certificates in it.
// password opens PKCS#12 files and encrypted private keys; it is ignored
// for unencrypted content. A password that does not fit gives
// ErrWrongPassword; damaged or truncated input a descriptive error.
func Read(data []byte, password string) (*Bundle, error) {
	return read(data, passphrase{text: password, maxIterations: maxIterations})
}

// passphrase carries the password and the most key-derivation iterations
// a file may demand, which bounds the work a hostile file can cause.
type passphrase struct {
	text          string
	maxIterations int
	// emptyBMP: the file's MAC was made with the empty password as zero
	// bytes rather than as an empty BMPString with its terminator; the
	// PKCS#12 PBE schemes of the same file then use that form too.
	emptyBMP bool
}

func read(data []byte, pw passphrase) (*Bundle, error) {
	b := &Bundle{}
	var err error
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return nil, fmt.Errorf("empty file: %w", ErrUnrecognized)
	case bytes.Contains(data, []byte("-----BEGIN ")):
		b.Format = FormatPEM
		err = readPEM(data, pw, b)
	case isPFX(data):
		b.Format = FormatPKCS12
		err = readPKCS12(data, pw, b)
	default:
		b.Format = FormatDER
		err = readDER(data, pw, b)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s key file: %w", b.Format, err)
	}
	if len(b.Keys) == 0 && len(b.Certs) == 0 {
		return nil, fmt.Errorf("read %s file: no keys or certificates in it: %w", b.Format, ErrUnrecognized)
	}
	return b, nil
}

func readPEM(data []byte, pw passphrase, b *Bundle) error {
	found := false
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		found = true
		if err := readPEMBlock(block, pw, b); err != nil {
			return fmt.Errorf("PEM block %q: %w", block.Type, err)
		}
	}
	if !found {
		return fmt.Errorf("damaged PEM (no complete BEGIN/END block): %w", ErrUnrecognized)
	}
	return nil
}

func readPEMBlock(block *pem.Block, pw passphrase, b *Bundle) error {
	der := block.Bytes
	if _, encrypted := block.Headers["Proc-Type"]; encrypted {
		// OpenSSL's traditional encrypted PEM (RFC 1421 headers, MD5
		// key derivation): weak, but it is what old key files use.
		//lint:ignore SA1019 reading legacy files is this package's purpose
		plain, err := x509.DecryptPEMBlock(block, []byte(pw.text)) //nolint:staticcheck
		if errors.Is(err, x509.IncorrectPasswordError) {
			return ErrWrongPassword
		} else if err != nil {
			return fmt.Errorf("encrypted PEM: %w", err)
		}
		if err := b.addKeyDER(block.Type, plain, ""); err != nil {
			// A wrong password passes the padding check now and then.
			return ErrWrongPassword
		}
		return nil
	}
	switch block.Type {
	case "CERTIFICATE", "X509 CERTIFICATE":
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		b.addCert(c, "")
	case "TRUSTED CERTIFICATE":
		// OpenSSL appends its trust settings after the certificate.
		var raw asn1.RawValue
		if _, err := asn1.Unmarshal(der, &raw); err != nil {
			return err
		}
		c, err := x509.ParseCertificate(raw.FullBytes)
		if err != nil {
			return err
		}
		b.addCert(c, "")
	case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY":
		return b.addKeyDER(block.Type, der, "")
	case "ENCRYPTED PRIVATE KEY":
		plain, err := decryptPKCS8(der, pw)
		if err != nil {
			return err
		}
		if err := b.addPKCS8(plain, ""); err != nil {
			return ErrWrongPassword
		}
	case "PKCS7", "CMS":
		return readPKCS7(der, b)
	case "PKCS12":
		return readPKCS12(der, pw, b)
	}
	// Other blocks (EC PARAMETERS, CRLs, public keys) hold nothing for us.
	return nil
}

// readDER tries, in turn, the DER structures a key or certificate file
// may hold.
func readDER(der []byte, pw passphrase, b *Bundle) error {
	if _, err := berToDER(der); err != nil {
		return fmt.Errorf("%w (%v)", ErrUnrecognized, err)
	}
	if c, err := x509.ParseCertificate(der); err == nil {
		b.addCert(c, "")
		return nil
	}
	for _, t := range []string{"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"} {
		if err := b.addKeyDER(t, der, ""); err == nil {
			return nil
		}
	}
	var epki encryptedPrivateKeyInfo
	if unmarshalAll(der, &epki) == nil && len(epki.Algorithm.Algorithm) > 0 {
		plain, err := decryptPKCS8(der, pw)
		if err != nil {
			return err
		}
		if err := b.addPKCS8(plain, ""); err != nil {
			return ErrWrongPassword
		}
		return nil
	}
	if err := readPKCS7(der, b); err == nil {
		return nil
	}
	return ErrUnrecognized
}

// addKeyDER parses a private key of the PEM type given.
func (b *Bundle) addKeyDER(pemType string, der []byte, name string) error {
	var (
		key any
		err error
	)
	switch pemType {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(der)
	case "PRIVATE KEY":
		return b.addPKCS8(der, name)
	default:
		return fmt.Errorf("%s keys: %w", pemType, ErrUnsupported)
	}
	if err != nil {
		return err
	}
	return b.addKey(key, name)
}

func (b *Bundle) addPKCS8(der []byte, name string) error {
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return fmt.Errorf("PKCS#8 private key: %w", err)
	}
	return b.addKey(key, name)
}

func (b *Bundle) addKey(key any, name string) error {
	s, ok := key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("private key of type %T: %w", key, ErrUnsupported)
	}
	for i, k := range b.Keys {
		if samePublicKey(k.Public(), s.Public()) {
			if b.keyNames[i] == "" {
				b.keyNames[i] = name
			}
			return nil
		}
	}
	b.Keys = append(b.Keys, s)
	b.keyNames = append(b.keyNames, name)
	return nil
}

func (b *Bundle) addCert(c *x509.Certificate, name string) {
	for i, have := range b.Certs {
		if have.Equal(c) {
			if b.certNames[i] == "" {
				b.certNames[i] = name
			}
			return
		}
	}
	b.Certs = append(b.Certs, c)
	b.certNames = append(b.certNames, name)
}

func samePublicKey(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}
