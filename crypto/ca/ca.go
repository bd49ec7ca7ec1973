package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Validity limits for users' certificates.
const (
	DefaultValidity = 365 * 24 * time.Hour
	MaxValidity     = 825 * 24 * time.Hour
	rootValidity    = 10 * 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so that a client whose clock runs a
	// little behind does not reject a certificate issued a moment ago.
	clockSkew = 5 * time.Minute
)

// ErrNotCA reports that an operator's certificate cannot act as a CA.
var ErrNotCA = errors.New("certificate is not a CA certificate")

// ErrKeyMismatch reports a private key that does not belong to its certificate.
var ErrKeyMismatch = errors.New("private key does not match certificate")

// Options configure Open.
type Options struct {
	// Org names the organisation in the subjects of the built-in root,
	// the escrow and the TLS certificates. Required when the built-in
	// root is created.
	Org string
	// KeyFile and CertFile, both or neither, name an operator's existing
	// CA private key and certificate (PEM) used instead of the built-in
	// root. Certificates after the first in CertFile are its chain.
	KeyFile, CertFile string
	// Validity of users' certificates: 0 means DefaultValidity; more than
	// MaxValidity is refused.
	Validity time.Duration
	// RootKeyType is the key type of a newly created built-in root;
	// empty means KeyRSA3072.
	RootKeyType KeyType
	// Now replaces the clock (tests); nil means time.Now.
	Now func() time.Time
}

// CA issues certificates under a root (or an operator's CA) kept in a
// directory. It is safe for concurrent use.
type CA struct {
	dir      string
	org      string
	cert     *x509.Certificate
	key      crypto.Signer
	chain    []*x509.Certificate
	escrow   *x509.Certificate
	validity time.Duration
	now      func() time.Time
	tlsMu    sync.Mutex // serialises TLSCertificate's file updates
}

// Open loads the CA kept in dir, creating the directory, the built-in root
// and the escrow pair on first start. With opts.KeyFile and opts.CertFile
// set it uses that CA instead of the built-in root. A dir readable by
// others is narrowed to 0700, since it holds private keys.
func Open(dir string, opts Options) (*CA, error) {
	if dir == "" {
		return nil, errors.New("open CA: no directory given")
	}
	c := &CA{dir: dir, org: opts.Org, validity: opts.Validity, now: opts.Now}
	if c.now == nil {
		c.now = time.Now
	}
	if c.validity == 0 {
		c.validity = DefaultValidity
	}
	if c.validity < 0 || c.validity > MaxValidity {
		return nil, fmt.Errorf("open CA: certificate validity %v is outside 1s..%v (825 days)", c.validity, MaxValidity)
	}
	if (opts.KeyFile == "") != (opts.CertFile == "") {
		return nil, errors.New("open CA: give both the CA key file and the CA certificate file, or neither")
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("open CA: create directory: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("open CA: %w", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		// The directory holds private keys: nobody but the owner may list it.
		if err := os.Chmod(dir, dirMode); err != nil {
			return nil, fmt.Errorf("open CA: restrict directory: %w", err)
		}
	}
	var err error
	if opts.KeyFile != "" {
		err = c.loadExternal(opts.KeyFile, opts.CertFile)
	} else {
		err = c.loadOrCreateRoot(opts.RootKeyType)
	}
	if err != nil {
		return nil, fmt.Errorf("open CA: %w", err)
	}
	if c.org == "" && len(c.cert.Subject.Organization) > 0 {
		c.org = c.cert.Subject.Organization[0]
	}
	if err := c.loadOrCreateEscrow(); err != nil {
		return nil, fmt.Errorf("open CA: key-recovery certificate: %w", err)
	}
	return c, nil
}

func (c *CA) path(name string) string { return filepath.Join(c.dir, name) }

// loadOrCreateRoot loads root.key and root.crt, making whichever is
// missing. What is on disk wins over what this process made, so that
// concurrent first starts end with one root.
func (c *CA) loadOrCreateRoot(kind KeyType) error {
	if kind == "" {
		kind = KeyRSA3072
	}
	keyPath, certPath := c.path(RootKeyFile), c.path(RootCertFile)
	key, err := loadOrCreateKey(keyPath, kind)
	if err != nil {
		return fmt.Errorf("root key: %w", err)
	}
	if ok, err := exists(certPath); err != nil {
		return err
	} else if !ok {
		if c.org == "" {
			return errors.New("no organisation name given for the new root ([ca].org)")
		}
		cert, err := c.selfSignRoot(key)
		if err != nil {
			return err
		}
		if _, err := createFile(certPath, certPEM(cert), certMode); err != nil {
			return err
		}
	}
	certs, err := readCerts(certPath)
	if err != nil {
		return fmt.Errorf("root certificate: %w", err)
	}
	if err := checkCA(certs[0], key, c.now()); err != nil {
		return fmt.Errorf("%s: %w", certPath, err)
	}
	c.cert, c.key = certs[0], key
	return nil
}

func (c *CA) selfSignRoot(key crypto.Signer) (*x509.Certificate, error) {
	ski, err := keyID(key.Public())
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{c.org}, CommonName: c.org + " smimeproxy Root CA"},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(rootValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The root signs end-entity certificates only.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		SubjectKeyId:   ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign root: %w", err)
	}
	return x509.ParseCertificate(der)
}

// loadExternal loads an operator's CA key and certificate.
func (c *CA) loadExternal(keyFile, certFile string) error {
	key, err := readKey(keyFile)
	if err != nil {
		return fmt.Errorf("CA key: %w", err)
	}
	certs, err := readCerts(certFile)
	if err != nil {
		return fmt.Errorf("CA certificate: %w", err)
	}
	if err := checkCA(certs[0], key, c.now()); err != nil {
		return fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
	}
	c.cert, c.key, c.chain = certs[0], key, certs[1:]
	return nil
}

// checkCA makes sure cert is a usable CA certificate for key.
func checkCA(cert *x509.Certificate, key crypto.Signer, now time.Time) error {
	if !samePublicKey(key.Public(), cert.PublicKey) {
		return ErrKeyMismatch
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return fmt.Errorf("%w: basicConstraints CA:TRUE is missing (subject %s)", ErrNotCA, cert.Subject)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%w: key usage lacks keyCertSign (subject %s)", ErrNotCA, cert.Subject)
	}
	if now.After(cert.NotAfter) {
		return fmt.Errorf("CA certificate %s expired on %s", cert.Subject, cert.NotAfter.UTC().Format(time.DateOnly))
	}
	return nil
}

// newSerial returns a random positive 128-bit serial number (RFC 5280
// allows up to 20 octets; randomness keeps serials unpredictable).
func newSerial() (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b); n.Sign() > 0 {
			return n, nil
		}
	}
}

// window returns NotBefore and NotAfter for a certificate valid for d
// from now, never outliving the issuing CA certificate.
func (c *CA) window(d time.Duration) (time.Time, time.Time) {
	now := c.now()
	notAfter := now.Add(d)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	return now.Add(-clockSkew), notAfter
}

// sign issues tmpl for pub under the CA, filling in serial and key ids.
func (c *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	ski, err := keyID(pub)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.SubjectKeyId = ski
	tmpl.AuthorityKeyId = c.cert.SubjectKeyId
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse issued certificate: %w", err)
	}
	return cert, nil
}

// Root returns the issuing CA certificate: the built-in root, or the
// operator's CA certificate.
func (c *CA) Root() *x509.Certificate { return c.cert }

// RootPEM returns Root as PEM, as served at /ca.pem.
func (c *CA) RootPEM() []byte { return certPEM(c.cert) }

// Chain returns the certificates above issued certificates that a peer
// may need to build a path: the issuing CA certificate followed by the
// rest of an operator's chain.
func (c *CA) Chain() []*x509.Certificate {
	return append([]*x509.Certificate{c.cert}, c.chain...)
}

// Dir returns the CA directory, where escrow.key (EscrowKeyFile) is looked
// for when a key is recovered.
func (c *CA) Dir() string { return c.dir }

// Validity returns how long users' certificates are issued for.
func (c *CA) Validity() time.Duration { return c.validity }
