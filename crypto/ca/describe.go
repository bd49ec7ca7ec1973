package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// Fingerprint returns the SHA-256 fingerprint of a certificate as shown
// to users: uppercase hex pairs joined by colons, as Windows' and
// OpenSSL's certificate dialogs print them.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	var b strings.Builder
	for i, v := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", v)
	}
	return b.String()
}

// Description is what a user is shown of a certificate before accepting
// it, as in Outlook's Root Store prompt.
type Description struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	Fingerprint string    `json:"fingerprint_sha256"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
}

// Describe returns the subject, issuer, validity and SHA-256 fingerprint
// of cert.
func Describe(cert *x509.Certificate) Description {
	return Description{
		Subject:     cert.Subject.String(),
		Issuer:      cert.Issuer.String(),
		Fingerprint: Fingerprint(cert),
		NotBefore:   cert.NotBefore.UTC(),
		NotAfter:    cert.NotAfter.UTC(),
	}
}

// String renders the description on one line.
func (d Description) String() string {
	return fmt.Sprintf("%s (SHA-256 fingerprint %s)", d.Subject, d.Fingerprint)
}
