package identity

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"smimeproxy/crypto/smime"
)

// Recipient is a certificate to encrypt to, with what its owner can
// decrypt (RFC 8551 §2.5.2 SMIMECapabilities; empty when never announced,
// in which case only the defaults — AES-CBC, RSA PKCS#1 v1.5 — are safe).
type Recipient struct {
	Cert         *x509.Certificate
	Capabilities []smime.Capability
	Source       CertSource
}

// RecipientCertificate finds the certificate to encrypt to email, as seen
// by owner (the sending mailbox): a Digital ID of this gateway first, then
// what owner harvested, then org-wide imports; within each the newest
// valid one. ErrNoCertificate when none is usable.
func (s *Service) RecipientCertificate(ctx context.Context, owner, email string) (*Recipient, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if owner != "" {
		if owner, err = NormalizeEmail(owner); err != nil {
			return nil, err
		}
	}
	now := s.clock.Now()
	if r, err := s.liveIdentity(ctx, email); err == nil && r.State == StateActive {
		d, err := s.describe(ctx, r)
		if err != nil {
			return nil, err
		}
		if c := d.EncryptionCert; c != nil && validAt(c, now) {
			return &Recipient{Cert: c, Capabilities: smime.DefaultCapabilities(), Source: CertOurs}, nil
		}
	}
	entries, err := s.rec.Certificates(ctx, email, owner)
	if err != nil {
		return nil, fmt.Errorf("look up certificates of %s: %w", email, err)
	}
	var best *Recipient
	bestRank := 99
	for _, e := range entries {
		rank := 1
		switch {
		case e.Owner == owner && owner != "":
			rank = 0
		case e.Owner != "":
			continue // harvested by someone else: their business
		}
		c, err := x509.ParseCertificate(e.CertDER)
		if err != nil || !validAt(c, now) || !canEncrypt(c) {
			continue
		}
		if rank < bestRank || (rank == bestRank && c.NotBefore.After(best.Cert.NotBefore)) {
			caps, _ := parseStoredCapabilities(e.Caps) // stored by us; unreadable → none
			best, bestRank = &Recipient{Cert: c, Capabilities: caps, Source: e.Source}, rank
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoCertificate, email)
	}
	return best, nil
}

func validAt(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && !now.After(c.NotAfter)
}

// canEncrypt reports whether a certificate may be encrypted to: its key
// usage (when present) allows key transport or agreement, and its extended
// key usage (when present) includes e-mail protection.
func canEncrypt(c *x509.Certificate) bool {
	if c.KeyUsage != 0 && c.KeyUsage&(x509.KeyUsageKeyEncipherment|x509.KeyUsageKeyAgreement) == 0 {
		return false
	}
	if len(c.ExtKeyUsage) > 0 && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageEmailProtection) &&
		!slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return false
	}
	return true
}

// Harvest keeps the encryption certificate of a validly signed message for
// owner (the mailbox that received it), with the sender's capabilities:
// the certificate the signer named (SMIMEEncryptionKeyPreference), else the
// signing certificate when it can also encrypt. Invalid signatures teach
// nothing. It returns the addresses a certificate was stored for.
func (s *Service) Harvest(ctx context.Context, owner string, v *smime.VerifyResult) ([]string, error) {
	if v == nil || !v.Valid || v.Signer == nil {
		return nil, nil
	}
	owner, err := NormalizeEmail(owner)
	if err != nil {
		return nil, err
	}
	cert := v.EncryptionCert
	if cert == nil && canEncrypt(v.Signer) {
		cert = v.Signer
	}
	if cert == nil || !canEncrypt(cert) || !validAt(cert, s.clock.Now()) {
		return nil, nil
	}
	// Only for addresses the signer's own certificate vouches for, so a
	// signer cannot plant a certificate for someone else's address.
	var stored []string
	caps, err := smime.MarshalCapabilities(v.Capabilities)
	if err != nil {
		caps = nil
	}
	for _, a := range cert.EmailAddresses {
		email, err := NormalizeEmail(a)
		if err != nil || !slices.ContainsFunc(v.Signer.EmailAddresses, func(x string) bool {
			n, err := NormalizeEmail(x)
			return err == nil && n == email
		}) {
			continue
		}
		rec := certRecord{Owner: owner, Email: email, CertDER: cert.Raw, Caps: caps, Source: CertHarvested, Updated: s.clock.Now()}
		if err := s.rec.PutCertificate(ctx, rec); err != nil {
			return stored, fmt.Errorf("store harvested certificate for %s: %w", email, err)
		}
		stored = append(stored, email)
	}
	return stored, nil
}

// ImportCertificate adds a recipient certificate org-wide (admin), for
// every address it carries.
func (s *Service) ImportCertificate(ctx context.Context, cert *x509.Certificate, caps []smime.Capability) ([]string, error) {
	if cert == nil || !canEncrypt(cert) || len(cert.EmailAddresses) == 0 {
		return nil, fmt.Errorf("%w: the certificate names no address or cannot be encrypted to", ErrNoCertificate)
	}
	der, err := smime.MarshalCapabilities(caps)
	if err != nil {
		return nil, fmt.Errorf("import certificate: %w", err)
	}
	var stored []string
	for _, a := range cert.EmailAddresses {
		email, err := NormalizeEmail(a)
		if err != nil {
			continue
		}
		rec := certRecord{Email: email, CertDER: cert.Raw, Caps: der, Source: CertImported, Updated: s.clock.Now()}
		if err := s.rec.PutCertificate(ctx, rec); err != nil {
			return stored, fmt.Errorf("store certificate for %s: %w", email, err)
		}
		stored = append(stored, email)
	}
	return stored, nil
}

// PublicCertificates returns the current certificates of a mailbox's
// active Digital ID (signing first, then encryption when different), for
// senders who want to encrypt to it (GET /api/v1/certificates).
func (s *Service) PublicCertificates(ctx context.Context, email string) ([]*x509.Certificate, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	r, err := s.liveIdentity(ctx, email)
	if err != nil {
		return nil, err
	}
	if r.State != StateActive {
		return nil, ErrPendingTrust
	}
	d, err := s.describe(ctx, r)
	if err != nil {
		return nil, err
	}
	out := []*x509.Certificate{d.SigningCert}
	if d.EncryptionCert != nil && !d.EncryptionCert.Equal(d.SigningCert) {
		out = append(out, d.EncryptionCert)
	}
	return out, nil
}

// parseStoredCapabilities reads the SMIMECapabilities kept with a
// certificate; none were stored when the sender announced none.
func parseStoredCapabilities(der []byte) ([]smime.Capability, error) {
	if len(der) == 0 {
		return nil, nil
	}
	return smime.ParseCapabilities(der)
}
