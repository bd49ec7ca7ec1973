package ca

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// tlsValidity caps TLS server certificates at what browsers accept.
const tlsValidity = 397 * 24 * time.Hour

// ErrBadName reports an unusable address, subject name or host name.
var ErrBadName = errors.New("invalid name")

var (
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
)

// IssueSigning issues a user's signing certificate for pub: digitalSignature
// and nonRepudiation, extended key usage emailProtection, the address as
// rfc822Name subjectAltName (RFC 8550 section 3) and, for older clients,
// as emailAddress in the subject next to CN=name.
func (c *CA) IssueSigning(pub crypto.PublicKey, email, name string) (*x509.Certificate, error) {
	if _, err := checkUserKey(pub); err != nil {
		return nil, fmt.Errorf("issue signing certificate: %w", err)
	}
	return c.issueUser(pub, email, name, x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment, "signing")
}

// IssueEncryption issues a user's encryption certificate for pub:
// keyEncipherment for RSA keys (key transport), keyAgreement for EC keys
// (ECDH, RFC 5753), extended key usage emailProtection, rfc822Name
// subjectAltName.
func (c *CA) IssueEncryption(pub crypto.PublicKey, email, name string) (*x509.Certificate, error) {
	kind, err := checkUserKey(pub)
	if err != nil {
		return nil, fmt.Errorf("issue encryption certificate: %w", err)
	}
	var usage x509.KeyUsage
	switch kind {
	case kindRSA:
		usage = x509.KeyUsageKeyEncipherment
	case kindEC:
		usage = x509.KeyUsageKeyAgreement
	default:
		return nil, fmt.Errorf("issue encryption certificate: a %T key cannot encrypt: %w", pub, ErrUnsupportedKey)
	}
	return c.issueUser(pub, email, name, usage, "encryption")
}

func (c *CA) issueUser(pub crypto.PublicKey, email, name string, usage x509.KeyUsage, what string) (*x509.Certificate, error) {
	subject, err := userSubject(email, name)
	if err != nil {
		return nil, fmt.Errorf("issue %s certificate: %w", what, err)
	}
	nb, na := c.window(c.validity)
	cert, err := c.sign(&x509.Certificate{
		RawSubject:     subject,
		NotBefore:      nb,
		NotAfter:       na,
		KeyUsage:       usage,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: []string{email},
	}, pub)
	if err != nil {
		return nil, fmt.Errorf("issue %s certificate for %s: %w", what, email, err)
	}
	return cert, nil
}

// userSubject builds CN=name, emailAddress=email by hand, because
// pkix.Name would encode emailAddress as UTF8String where PKCS#9 requires
// IA5String.
func userSubject(email, name string) ([]byte, error) {
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return nil, fmt.Errorf("%w: %q is not a plain e-mail address", ErrBadName, email)
	}
	for _, r := range email {
		if r >= utf8.RuneSelf {
			return nil, fmt.Errorf("%w: %q is not ASCII (rfc822Name must be)", ErrBadName, email)
		}
	}
	name = strings.TrimSpace(name)
	if name == "" {
		name = email
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > 64 || strings.ContainsFunc(name, isControl) {
		return nil, fmt.Errorf("%w: the name must be 1 to 64 printable characters", ErrBadName)
	}
	rdn := pkix.RDNSequence{
		{{Type: oidCommonName, Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(name)}}},
		{{Type: oidEmailAddress, Value: asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(email)}}},
	}
	der, err := asn1.Marshal(rdn)
	if err != nil {
		return nil, fmt.Errorf("encode subject: %w", err)
	}
	return der, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// IssueTLSServer issues an end-entity (CA:FALSE) serverAuth certificate
// for the proxy's listeners. Its subjectAltName always holds localhost,
// 127.0.0.1 and ::1 plus names (host names or IP addresses). IPv4
// addresses also go in as DNS names, because some clients (mbsync 1.4)
// compare the host they dialled only with DNS names.
func (c *CA) IssueTLSServer(pub crypto.PublicKey, names []string) (*x509.Certificate, error) {
	kind, err := checkUserKey(pub)
	if err != nil {
		return nil, fmt.Errorf("issue TLS certificate: %w", err)
	}
	dns, ips, err := tlsSANs(names)
	if err != nil {
		return nil, fmt.Errorf("issue TLS certificate: %w", err)
	}
	usage := x509.KeyUsageDigitalSignature
	if kind == kindRSA {
		usage |= x509.KeyUsageKeyEncipherment
	}
	nb, na := c.window(min(c.validity, tlsValidity))
	cert, err := c.sign(&x509.Certificate{
		Subject:     pkix.Name{Organization: []string{c.org}, CommonName: dns[0]},
		NotBefore:   nb,
		NotAfter:    na,
		KeyUsage:    usage,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dns,
		IPAddresses: ips,
	}, pub)
	if err != nil {
		return nil, fmt.Errorf("issue TLS certificate: %w", err)
	}
	return cert, nil
}

// tlsSANs returns the DNS names and IP addresses of a TLS certificate for
// names, always including the loopback names, without duplicates, in a
// stable order.
func tlsSANs(names []string) ([]string, []net.IP, error) {
	dns := []string{"localhost", "127.0.0.1"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if ip := net.ParseIP(strings.Trim(n, "[]")); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
				if !slices.Contains(dns, v4.String()) {
					dns = append(dns, v4.String())
				}
			}
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if !validHostname(n) {
			return nil, nil, fmt.Errorf("%w: %q is not a host name or IP address", ErrBadName, n)
		}
		if !slices.Contains(dns, n) {
			dns = append(dns, n)
		}
	}
	return dns, ips, nil
}

// validHostname accepts LDH labels, with a leading "*." wildcard.
func validHostname(n string) bool {
	n = strings.TrimPrefix(n, "*.")
	if n == "" || len(n) > 253 {
		return false
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
