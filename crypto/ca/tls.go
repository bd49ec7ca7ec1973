package ca

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// tlsRenewBefore is how long before expiry TLSCertificate reissues.
const tlsRenewBefore = 30 * 24 * time.Hour

// TLSCertificate returns the listeners' certificate and key from tls.crt
// and tls.key in the CA directory, issuing a new certificate (RSA-2048,
// which every client accepts, reusing the key) when none is there, when
// its names differ from names (plus the loopback names), when it was not
// issued by this CA, or when it expires within 30 days.
func (c *CA) TLSCertificate(names []string) (tls.Certificate, error) {
	c.tlsMu.Lock()
	defer c.tlsMu.Unlock()
	dns, ips, err := tlsSANs(names)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("TLS certificate: %w", err)
	}
	keyPath, certPath := c.path(TLSKeyFile), c.path(TLSCertFile)
	key, _ := readKey(keyPath) // unreadable or missing: make a new one
	if key != nil {
		if certs, err := readCerts(certPath); err == nil && c.tlsCurrent(certs[0], key, dns, ips) {
			return c.tlsPair(certs[0], key), nil
		}
	} else {
		if key, err = GenerateKey(KeyRSA2048); err != nil {
			return tls.Certificate{}, fmt.Errorf("TLS certificate: %w", err)
		}
		data, err := MarshalPrivateKeyPEM(key)
		if err != nil {
			return tls.Certificate{}, err
		}
		if err := replaceFile(keyPath, data, keyMode); err != nil {
			return tls.Certificate{}, fmt.Errorf("TLS certificate: %w", err)
		}
	}
	cert, err := c.IssueTLSServer(key.Public(), names)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := replaceFile(certPath, certPEM(cert), certMode); err != nil {
		return tls.Certificate{}, fmt.Errorf("TLS certificate: %w", err)
	}
	return c.tlsPair(cert, key), nil
}

// tlsCurrent reports whether cert can go on being served for these names.
func (c *CA) tlsCurrent(cert *x509.Certificate, key crypto.Signer, dns []string, ips []net.IP) bool {
	now := c.now()
	return samePublicKey(key.Public(), cert.PublicKey) &&
		cert.CheckSignatureFrom(c.cert) == nil &&
		!now.Before(cert.NotBefore) && now.Add(tlsRenewBefore).Before(cert.NotAfter) &&
		sameSet(cert.DNSNames, dns, strings.Compare) &&
		sameSet(cert.IPAddresses, ips, func(a, b net.IP) int { return bytes.Compare(a.To16(), b.To16()) })
}

// tlsPair builds the tls.Certificate, sending the operator's CA chain
// along (but no self-signed root, which clients must already trust).
func (c *CA) tlsPair(cert *x509.Certificate, key crypto.Signer) tls.Certificate {
	chain := [][]byte{cert.Raw}
	for _, ca := range c.Chain() {
		if ca.CheckSignatureFrom(ca) != nil {
			chain = append(chain, ca.Raw)
		}
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: cert}
}

func sameSet[T any](a, b []T, cmp func(T, T) int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.EqualFunc(slices.CompactFunc(a, func(x, y T) bool { return cmp(x, y) == 0 }),
		slices.CompactFunc(b, func(x, y T) bool { return cmp(x, y) == 0 }),
		func(x, y T) bool { return cmp(x, y) == 0 })
}
