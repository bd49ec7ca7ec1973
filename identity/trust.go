package identity

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"smimeproxy/crypto/ca"
)

// TrustedRoot is an entry of the trust store.
type TrustedRoot struct {
	RootInfo
	// Owner: "" for org-wide roots, else the mailbox whose user accepted it.
	Owner string
	// FromConfig: an org-wide root from the configuration (not removable
	// through the API).
	FromConfig bool
}

// normalizeFingerprint accepts a SHA-256 fingerprint with or without
// colons or spaces, in any case, and returns ca.Fingerprint's form.
func normalizeFingerprint(fp string) string {
	var hex strings.Builder
	for _, r := range strings.ToUpper(fp) {
		if (r >= '0' && r <= '9') || (r >= 'A' && r <= 'F') {
			hex.WriteRune(r)
		}
	}
	h := hex.String()
	var b strings.Builder
	for i := 0; i+1 < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// rootTrusted reports whether root (DER) is trusted for email already:
// org-wide (config or store) or accepted by that user.
func (s *Service) rootTrusted(ctx context.Context, email string, root []byte) (bool, error) {
	if len(root) == 0 {
		return true, nil // nothing to accept (imports whose root is unknown)
	}
	for _, c := range s.orgRoots {
		if bytes.Equal(c.Raw, root) {
			return true, nil
		}
	}
	for _, owner := range []string{"", email} {
		rs, err := s.rec.TrustedRoots(ctx, owner)
		if err != nil {
			return false, fmt.Errorf("load trusted roots: %w", err)
		}
		for _, r := range rs {
			if bytes.Equal(r.CertDER, root) {
				return true, nil
			}
		}
	}
	return false, nil
}

// AcceptRoot records that the mailbox's user accepted the root of the
// pending Digital ID, whose SHA-256 fingerprint the user confirms, and
// makes the ID active. Declining is not calling it: the ID stays pending
// and this can be called later. Accepting an active ID's root again is a
// no-op.
func (s *Service) AcceptRoot(ctx context.Context, email, fingerprint string) (*DigitalID, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	r, err := s.liveIdentity(ctx, email)
	if err != nil {
		return nil, err
	}
	if len(r.RootDER) == 0 {
		return nil, fmt.Errorf("%w: this Digital ID has no root to accept", ErrFingerprint)
	}
	root, err := x509.ParseCertificate(r.RootDER)
	if err != nil {
		return nil, fmt.Errorf("root of Digital ID %s: %w", r.ID, err)
	}
	fp := ca.Fingerprint(root)
	if normalizeFingerprint(fingerprint) != fp {
		return nil, ErrFingerprint
	}
	if r.State == StatePending {
		err = s.rec.Tx(ctx, func(tx recordsTx) error {
			if err := tx.PutTrustedRoot(ctx, trustRecord{Owner: email, Fingerprint: fp, CertDER: root.Raw, Added: s.clock.Now()}); err != nil {
				return err
			}
			if err := tx.SetIdentityState(ctx, r.ID, []State{StatePending}, StateActive, s.clock.Now()); err != nil {
				return err
			}
			return tx.Audit(ctx, email, "trust.accept", fp, s.clock.Now())
		})
		s.keys.drop(email) // the ID's state changed
		if errors.Is(err, errConflict) {
			return nil, ErrNoIdentity // revoked meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("accept root for %s: %w", email, err)
		}
		s.log.Info("root accepted", "email", email, "fingerprint", fp)
		r.State = StateActive
	}
	return s.describe(ctx, r)
}

// TrustPool returns the roots a signature to email's user is verified
// against: org-wide roots (configuration and store) and the roots that user
// accepted.
func (s *Service) TrustPool(ctx context.Context, email string) (*x509.CertPool, error) {
	roots, err := s.trusted(ctx, email)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r.Cert)
	}
	return pool, nil
}

// trusted lists org-wide roots and, when email is set, that user's.
func (s *Service) trusted(ctx context.Context, email string) ([]TrustedRoot, error) {
	var out []TrustedRoot
	for _, c := range s.orgRoots {
		out = append(out, TrustedRoot{RootInfo: RootInfo{Description: ca.Describe(c), Cert: c}, FromConfig: true})
	}
	owners := []string{""}
	if email != "" {
		e, err := NormalizeEmail(email)
		if err != nil {
			return nil, err
		}
		owners = append(owners, e)
	}
	for _, owner := range owners {
		rs, err := s.rec.TrustedRoots(ctx, owner)
		if err != nil {
			return nil, fmt.Errorf("load trusted roots: %w", err)
		}
		for _, r := range rs {
			c, err := x509.ParseCertificate(r.CertDER)
			if err != nil {
				return nil, fmt.Errorf("trusted root %s: %w", r.Fingerprint, err)
			}
			out = append(out, TrustedRoot{RootInfo: RootInfo{Description: ca.Describe(c), Cert: c}, Owner: owner})
		}
	}
	return out, nil
}

// TrustList lists the org-wide roots (owner "") or those plus one user's.
func (s *Service) TrustList(ctx context.Context, email string) ([]TrustedRoot, error) {
	return s.trusted(ctx, email)
}

// TrustAdd makes cert an org-wide trusted root (admin).
func (s *Service) TrustAdd(ctx context.Context, cert *x509.Certificate) (*TrustedRoot, error) {
	if cert == nil || !cert.IsCA {
		return nil, fmt.Errorf("trust add: %w", ca.ErrNotCA)
	}
	fp := ca.Fingerprint(cert)
	err := s.rec.Tx(ctx, func(tx recordsTx) error {
		if err := tx.PutTrustedRoot(ctx, trustRecord{Fingerprint: fp, CertDER: cert.Raw, Added: s.clock.Now()}); err != nil {
			return err
		}
		return tx.Audit(ctx, "admin", "trust.add", fp, s.clock.Now())
	})
	s.keys.dropAll(false) // as in TrustRemove
	if err != nil {
		return nil, fmt.Errorf("trust add %s: %w", fp, err)
	}
	s.log.Info("org-wide root added", "fingerprint", fp, "subject", cert.Subject.String())
	return &TrustedRoot{RootInfo: RootInfo{Description: ca.Describe(cert), Cert: cert}}, nil
}

// ErrNotTrusted is returned for a fingerprint that names no removable
// trusted root.
var ErrNotTrusted = errors.New("no such trusted root (roots from the configuration are removed there)")

// TrustRemove removes an org-wide root added with TrustAdd (admin).
func (s *Service) TrustRemove(ctx context.Context, fingerprint string) error {
	fp := normalizeFingerprint(fingerprint)
	err := s.rec.RemoveTrustedRoot(ctx, "", fp)
	// The opened keys do not depend on the trust store today; dropping
	// them on its (rare, admin) changes costs one opening per unlocked ID
	// and keeps a trust check ever added to SigningKey from being skipped
	// by the cache.
	s.keys.dropAll(false)
	if errors.Is(err, errNotFound) {
		return ErrNotTrusted
	}
	if err != nil {
		return fmt.Errorf("trust remove %s: %w", fp, err)
	}
	if err := s.rec.Audit(ctx, "admin", "trust.remove", fp, s.clock.Now()); err != nil {
		s.log.Warn("audit trust removal", "err", err)
	}
	s.log.Info("org-wide root removed", "fingerprint", fp)
	return nil
}
