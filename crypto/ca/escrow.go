package ca

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"
)

// OIDKeyRecoveryAgent is the extended key usage of the escrow certificate:
// Microsoft's Key Recovery Agent purpose, the one Exchange KMS and AD CS
// key archival use. It keeps the certificate out of e-mail use, since it
// carries no emailProtection purpose.
var OIDKeyRecoveryAgent = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 21, 6}

// escrowRenewBefore is how close to expiry the escrow certificate is
// re-certified (same key) at start-up.
const escrowRenewBefore = 90 * 24 * time.Hour

// EscrowCertificate returns the key-recovery certificate. Package identity
// encrypts each user's encryption private key to it as CMS EnvelopedData;
// the matching private key (EscrowKeyFile in Dir) is needed only to
// recover such a key (see the package documentation for the offline
// openssl command).
func (c *CA) EscrowCertificate() *x509.Certificate { return c.escrow }

// loadOrCreateEscrow loads escrow.crt, re-certifying it when it was not
// issued by the current CA or nears expiry and escrow.key is at hand. When
// escrow.crt is missing it certifies escrow.key, or makes a new RSA-3072
// key first.
func (c *CA) loadOrCreateEscrow() error {
	keyPath, certPath := c.path(EscrowKeyFile), c.path(EscrowCertFile)
	haveCert, err := exists(certPath)
	if err != nil {
		return err
	}
	haveKey, err := exists(keyPath)
	if err != nil {
		return err
	}
	if haveCert {
		certs, err := readCerts(certPath)
		if err != nil {
			return err
		}
		cert := certs[0]
		stale := cert.CheckSignatureFrom(c.cert) != nil || c.now().Add(escrowRenewBefore).After(cert.NotAfter)
		if !stale || !haveKey {
			// Without the key (moved offline, as it should be) the
			// certificate is used as it is.
			c.escrow = cert
			return nil
		}
		key, err := readKey(keyPath)
		if err != nil {
			return err
		}
		if !samePublicKey(key.Public(), cert.PublicKey) {
			return fmt.Errorf("%s: %w %s", keyPath, ErrKeyMismatch, certPath)
		}
		renewed, err := c.issueEscrow(key.Public())
		if err != nil {
			return err
		}
		if err := replaceFile(certPath, certPEM(renewed), certMode); err != nil {
			return err
		}
		c.escrow = renewed
		return nil
	}
	key, err := loadOrCreateKey(keyPath, KeyRSA3072)
	if err != nil {
		return err
	}
	cert, err := c.issueEscrow(key.Public())
	if err != nil {
		return err
	}
	if _, err := createFile(certPath, certPEM(cert), certMode); err != nil {
		return err
	}
	certs, err := readCerts(certPath)
	if err != nil {
		return err
	}
	if !samePublicKey(key.Public(), certs[0].PublicKey) {
		return fmt.Errorf("%s: %w %s", keyPath, ErrKeyMismatch, certPath)
	}
	c.escrow = certs[0]
	return nil
}

func (c *CA) issueEscrow(pub crypto.PublicKey) (*x509.Certificate, error) {
	nb, na := c.window(rootValidity)
	return c.sign(&x509.Certificate{
		Subject:            pkix.Name{Organization: []string{c.org}, CommonName: c.org + " smimeproxy Key Recovery Agent"},
		NotBefore:          nb,
		NotAfter:           na,
		KeyUsage:           x509.KeyUsageKeyEncipherment,
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{OIDKeyRecoveryAgent},
	}, pub)
}
