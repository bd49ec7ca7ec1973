package mailtest

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"software.sslmate.com/src/go-pkcs12"
)

// PKIFiles names the PEM files PKI.WriteFiles wrote.
type PKIFiles struct {
	Root         string // root.pem
	Intermediate string // intermediate.pem
	Chain        string // chain.pem: intermediate then root
}

// WriteFiles writes the CA certificates as PEM into dir.
func (p *PKI) WriteFiles(dir string) (PKIFiles, error) {
	f := PKIFiles{
		Root:         filepath.Join(dir, "root.pem"),
		Intermediate: filepath.Join(dir, "intermediate.pem"),
		Chain:        filepath.Join(dir, "chain.pem"),
	}
	err := writeAll([]fileData{
		{f.Root, CertPEM(p.Root)},
		{f.Intermediate, CertPEM(p.Intermediate)},
		{f.Chain, CertPEM(p.Chain()...)},
	})
	return f, err
}

// UserFiles names the PEM files User.WriteFiles wrote; keys are
// unencrypted PKCS#8.
type UserFiles struct {
	SignCert, SignKey string // <name>-sign.crt, <name>-sign.key
	EncCert, EncKey   string // <name>-enc.crt, <name>-enc.key
	Chain             string // <name>-chain.pem: intermediate then root
	SignFull          string // <name>-sign-full.pem: signing cert, intermediate, root
}

// WriteFiles writes the user's certificates and keys as PEM into dir.
func (u *User) WriteFiles(dir string) (UserFiles, error) {
	base := filepath.Join(dir, u.Name)
	f := UserFiles{
		SignCert: base + "-sign.crt", SignKey: base + "-sign.key",
		EncCert: base + "-enc.crt", EncKey: base + "-enc.key",
		Chain: base + "-chain.pem", SignFull: base + "-sign-full.pem",
	}
	signKey, err := KeyPEM(u.SignKey)
	if err != nil {
		return f, err
	}
	encKey, err := KeyPEM(u.EncKey)
	if err != nil {
		return f, err
	}
	return f, writeAll([]fileData{
		{f.SignCert, CertPEM(u.SignCert)}, {f.SignKey, signKey},
		{f.EncCert, CertPEM(u.EncCert)}, {f.EncKey, encKey},
		{f.Chain, CertPEM(u.Chain...)},
		{f.SignFull, CertPEM(append([]*x509.Certificate{u.SignCert}, u.Chain...)...)},
	})
}

// Use selects one of a user's two key pairs.
type Use int

const (
	Signing Use = iota
	Encryption
)

// WriteP12Legacy writes one key pair with the CA chain as a PKCS#12 file
// in the legacy encryption (pbeWithSHA1And3-KeyTripleDES-CBC bags, SHA-1 MAC)
// that gpgsm 2.2 and old Windows import; OpenSSL 3's default PBES2 form
// is refused by gpgsm 2.2.
func (u *User) WriteP12Legacy(path, password string, use Use) error {
	cert, key := u.SignCert, u.SignKey
	if use == Encryption {
		cert, key = u.EncCert, u.EncKey
	}
	data, err := pkcs12.Legacy.Encode(key, cert, u.Chain, password)
	if err != nil {
		return fmt.Errorf("encode PKCS#12 for %s: %w", u.Email, err)
	}
	return os.WriteFile(path, data, 0o600)
}

// CertPEM encodes certificates as concatenated PEM CERTIFICATE blocks.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM encodes a private key as an unencrypted PKCS#8 PEM block.
func KeyPEM(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

type fileData struct {
	path string
	data []byte
}

func writeAll(files []fileData) error {
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return fmt.Errorf("write test PKI file: %w", err)
		}
	}
	return nil
}
