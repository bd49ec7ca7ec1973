package mailtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"
)

// KeyType is the key algorithm of a test user's certificates.
type KeyType int

const (
	RSA  KeyType = iota // RSA-2048
	P256                // ECDSA / ECDH on NIST P-256
	P384                // ECDSA / ECDH on NIST P-384
)

func (k KeyType) String() string {
	switch k {
	case RSA:
		return "rsa"
	case P256:
		return "p256"
	case P384:
		return "p384"
	}
	return fmt.Sprintf("keytype(%d)", int(k))
}

// UserOption changes the certificates a user gets; the options make the
// misfits negative tests need.
type UserOption string

const (
	DualUse  UserOption = "dual"     // one key and one certificate for signing and encryption
	Expired  UserOption = "expired"  // certificates expired 30 days ago
	NoEKU    UserOption = "noeku"    // no extendedKeyUsage extension at all
	WrongEKU UserOption = "wrongeku" // extendedKeyUsage serverAuth only
	NoEmail  UserOption = "noemail"  // neither rfc822Name nor emailAddress in the DN
)

// PKI is a test certificate hierarchy: a root CA, an intermediate CA that
// issues every user certificate, and the users made so far. All keys are
// throwaway and generated at run time.
type PKI struct {
	Org             string
	Root            *x509.Certificate
	RootKey         crypto.Signer
	Intermediate    *x509.Certificate
	IntermediateKey crypto.Signer

	mu    sync.Mutex
	users map[string]*userSlot
}

type userSlot struct {
	once sync.Once
	u    *User
	err  error
}

// User is one mailbox's test identity. SignCert/SignKey sign (keyUsage
// digitalSignature+nonRepudiation); EncCert/EncKey receive encrypted mail
// (keyEncipherment for RSA, keyAgreement+keyEncipherment for EC). With
// DualUse both pairs are the same. EncKey is *rsa.PrivateKey or
// *ecdsa.PrivateKey, both crypto.Signer; RSA ones are crypto.Decrypter too.
type User struct {
	Email    string
	Name     string // file-name stem: local part, key type and options, e.g. "alice-rsa"
	Type     KeyType
	SignCert *x509.Certificate
	SignKey  crypto.Signer
	EncCert  *x509.Certificate
	EncKey   crypto.Signer
	Chain    []*x509.Certificate // intermediate, then root
}

// The shared hierarchies are made once per test binary: RSA key generation
// takes long enough (much longer under -race) to dominate small tests.
var shared, other struct {
	once sync.Once
	pki  *PKI
	err  error
}

// NewPKI returns the test binary's shared PKI, generating it on first use.
// Users made from it are shared as well (same address, type and options
// give the same certificates), so tests must not modify them.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	shared.once.Do(func() { shared.pki, shared.err = GeneratePKI("smimeproxy test") })
	if shared.err != nil {
		t.Fatalf("test PKI: %v", shared.err)
	}
	return shared.pki
}

// OtherPKI returns a second shared PKI, unrelated to NewPKI's: its root is
// the "wrong roots" of negative tests.
func OtherPKI(t testing.TB) *PKI {
	t.Helper()
	other.once.Do(func() { other.pki, other.err = GeneratePKI("unrelated test") })
	if other.err != nil {
		t.Fatalf("other test PKI: %v", other.err)
	}
	return other.pki
}

// GeneratePKI makes a fresh, unshared hierarchy (RSA-2048 root and
// intermediate, valid from an hour ago for 30 days) named after org.
func GeneratePKI(org string) (*PKI, error) {
	keys, err := genKeys(RSA, 2)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	p := &PKI{Org: org, RootKey: keys[0], IntermediateKey: keys[1], users: map[string]*userSlot{}}
	root := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{org}, CommonName: "Test Root CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if p.Root, err = issue(root, root, keys[0], keys[0]); err != nil {
		return nil, fmt.Errorf("root CA: %w", err)
	}
	inter := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{org}, CommonName: "Test Intermediate CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(29 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	if p.Intermediate, err = issue(inter, p.Root, keys[1], keys[0]); err != nil {
		return nil, fmt.Errorf("intermediate CA: %w", err)
	}
	return p, nil
}

// Roots is a pool holding only the root.
func (p *PKI) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Root)
	return pool
}

// Chain is the intermediate then the root, what a signer sends along.
func (p *PKI) Chain() []*x509.Certificate { return []*x509.Certificate{p.Intermediate, p.Root} }

// User returns the user for email with keys of type kt, made once per PKI
// and option set; it fails the test when generation fails.
func (p *PKI) User(t testing.TB, email string, kt KeyType, opts ...UserOption) *User {
	t.Helper()
	u, err := p.NewUser(email, kt, opts...)
	if err != nil {
		t.Fatalf("test user %s: %v", email, err)
	}
	return u
}

// NewUser is User without a testing.TB, for the demo.
func (p *PKI) NewUser(email string, kt KeyType, opts ...UserOption) (*User, error) {
	name := strings.SplitN(email, "@", 2)[0] + "-" + kt.String()
	for _, o := range opts {
		name += "-" + string(o)
	}
	key := email + "/" + name
	p.mu.Lock()
	slot := p.users[key]
	if slot == nil {
		slot = &userSlot{}
		p.users[key] = slot
	}
	p.mu.Unlock()
	slot.once.Do(func() { slot.u, slot.err = p.makeUser(email, name, kt, opts) })
	return slot.u, slot.err
}

func (p *PKI) makeUser(email, name string, kt KeyType, opts []UserOption) (*User, error) {
	has := map[UserOption]bool{}
	for _, o := range opts {
		has[o] = true
	}
	n := 2
	if has[DualUse] {
		n = 1
	}
	keys, err := genKeys(kt, n)
	if err != nil {
		return nil, err
	}
	u := &User{Email: email, Name: name, Type: kt, SignKey: keys[0], EncKey: keys[n-1], Chain: p.Chain()}
	signKU := x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	encKU := x509.KeyUsageKeyEncipherment
	if kt != RSA {
		// keyEncipherment beside keyAgreement: OpenSSL's smimeencrypt
		// purpose and gpgsm want it even for ECDH recipients.
		encKU |= x509.KeyUsageKeyAgreement
	}
	if has[DualUse] {
		u.SignCert, err = p.issueUser(email, "", signKU|encKU, keys[0], has)
		u.EncCert = u.SignCert
		return u, err
	}
	if u.SignCert, err = p.issueUser(email, " (signing)", signKU, keys[0], has); err != nil {
		return nil, err
	}
	if u.EncCert, err = p.issueUser(email, " (encryption)", encKU, keys[1], has); err != nil {
		return nil, err
	}
	return u, nil
}

var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

func (p *PKI) issueUser(email, role string, ku x509.KeyUsage, key crypto.Signer, has map[UserOption]bool) (*x509.Certificate, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{p.Org}, CommonName: strings.SplitN(email, "@", 2)[0] + role},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(28 * 24 * time.Hour),
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		BasicConstraintsValid: true,
	}
	if !has[NoEmail] {
		tmpl.EmailAddresses = []string{email}
		tmpl.Subject.ExtraNames = []pkix.AttributeTypeAndValue{{
			Type:  oidEmailAddress,
			Value: asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(email)},
		}}
	}
	if has[Expired] {
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-60*24*time.Hour), now.Add(-30*24*time.Hour)
	}
	if has[NoEKU] {
		tmpl.ExtKeyUsage = nil
	}
	if has[WrongEKU] {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	return issue(tmpl, p.Intermediate, key, p.IntermediateKey)
}

// issue signs tmpl with a random serial and a subjectKeyIdentifier (SHA-1
// of the public key, RFC 5280 §4.2.1.2 method 1), so recipients can be
// named by SKI as well as by issuer and serial.
func issue(tmpl, parent *x509.Certificate, key, parentKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	tmpl.SerialNumber = serial
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	var info struct {
		Alg pkix.AlgorithmIdentifier
		Key asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	ski := sha1.Sum(info.Key.Bytes)
	tmpl.SubjectKeyId = ski[:]
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// genKeys makes n keys of type kt in parallel (RSA generation is slow).
func genKeys(kt KeyType, n int) ([]crypto.Signer, error) {
	keys := make([]crypto.Signer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			switch kt {
			case RSA:
				keys[i], errs[i] = rsa.GenerateKey(rand.Reader, 2048)
			case P256:
				keys[i], errs[i] = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			case P384:
				keys[i], errs[i] = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			default:
				errs[i] = fmt.Errorf("unknown key type %v", kt)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("generate %v key: %w", kt, err)
		}
	}
	return keys, nil
}
