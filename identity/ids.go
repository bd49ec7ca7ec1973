package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"smimeproxy/crypto/ca"
)

// DigitalID is what is shown of a Digital ID: never any key material.
type DigitalID struct {
	ID      string
	Email   string
	Name    string
	State   State
	Source  Source
	Created time.Time
	Updated time.Time
	// SigningCert and EncryptionCert are the current certificates (the
	// same one for an imported dual-use certificate).
	SigningCert    *x509.Certificate
	EncryptionCert *x509.Certificate
	// EncryptionHistory holds older encryption certificates whose keys are
	// kept so old mail still decrypts, oldest first.
	EncryptionHistory []*x509.Certificate
	// Chain: intermediates between the user certificates and Root.
	Chain []*x509.Certificate
	// Root to accept; nil when the issuer's root is not known.
	Root *RootInfo
	// Escrowed: the encryption keys can be recovered with a recovery token.
	Escrowed bool
	// UnlockedUntil is when an unlocked ID locks by itself; zero: locked.
	UnlockedUntil time.Time
}

// Details of one mailbox: its current Digital ID and the ones before it.
type Details struct {
	Current *DigitalID  // nil when the mailbox has no live ID
	Earlier []DigitalID // superseded and revoked IDs, oldest first
}

// liveIdentity returns the mailbox's pending or active ID, or ErrNoIdentity.
func (s *Service) liveIdentity(ctx context.Context, email string) (idRecord, error) {
	ids, err := s.rec.IdentitiesByEmail(ctx, email)
	if err != nil {
		return idRecord{}, fmt.Errorf("look up Digital ID of %s: %w", email, err)
	}
	for _, r := range ids {
		if r.State.live() {
			return r, nil
		}
	}
	return idRecord{}, ErrNoIdentity
}

// describe turns a record and its keys into a DigitalID.
func (s *Service) describe(ctx context.Context, r idRecord) (*DigitalID, error) {
	keys, err := s.rec.Keys(ctx, r.ID)
	if err != nil {
		return nil, fmt.Errorf("load keys of Digital ID %s: %w", r.ID, err)
	}
	d := &DigitalID{ID: r.ID, Email: r.Email, Name: r.Name, State: r.State, Source: r.Source, Created: r.Created, Updated: r.Updated}
	for _, k := range keys {
		cert, err := x509.ParseCertificate(k.CertDER)
		if err != nil {
			return nil, fmt.Errorf("certificate of key %s: %w", k.ID, err)
		}
		switch {
		case k.Status == KeyHistory:
			d.EncryptionHistory = append(d.EncryptionHistory, cert)
		default:
			if k.Use.signs() {
				d.SigningCert = cert
			}
			if k.Use.decrypts() {
				d.EncryptionCert = cert
			}
		}
		if len(k.Escrow) > 0 {
			d.Escrowed = true
		}
	}
	for _, der := range r.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("chain of Digital ID %s: %w", r.ID, err)
		}
		d.Chain = append(d.Chain, c)
	}
	if len(r.RootDER) > 0 {
		root, err := x509.ParseCertificate(r.RootDER)
		if err != nil {
			return nil, fmt.Errorf("root of Digital ID %s: %w", r.ID, err)
		}
		d.Root = &RootInfo{Description: ca.Describe(root), Cert: root}
	}
	if until, ok := s.cache.until(r.ID); ok {
		d.UnlockedUntil = until
	}
	return d, nil
}

// List returns every mailbox's current Digital ID (pending or active).
func (s *Service) List(ctx context.Context) ([]DigitalID, error) {
	ids, err := s.rec.Identities(ctx)
	if err != nil {
		return nil, fmt.Errorf("list Digital IDs: %w", err)
	}
	var out []DigitalID
	for _, r := range ids {
		if !r.State.live() {
			continue
		}
		d, err := s.describe(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, nil
}

// Show returns a mailbox's current Digital ID and the ones before it;
// ErrNoIdentity when there was never one.
func (s *Service) Show(ctx context.Context, email string) (*Details, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	ids, err := s.rec.IdentitiesByEmail(ctx, email)
	if err != nil {
		return nil, fmt.Errorf("look up Digital IDs of %s: %w", email, err)
	}
	if len(ids) == 0 {
		return nil, ErrNoIdentity
	}
	var out Details
	for _, r := range ids {
		d, err := s.describe(ctx, r)
		if err != nil {
			return nil, err
		}
		if r.State.live() {
			out.Current = d
		} else {
			out.Earlier = append(out.Earlier, *d)
		}
	}
	return &out, nil
}

// Revoke withdraws a mailbox's current Digital ID and wipes its unlocked
// key. Its escrowed encryption keys stay recoverable: a recovery token
// brings them back into a new ID so old mail stays readable.
func (s *Service) Revoke(ctx context.Context, email string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	r, err := s.liveIdentity(ctx, email)
	if err != nil {
		return err
	}
	s.cache.lock(r.ID)
	err = s.rec.Tx(ctx, func(tx recordsTx) error {
		if err := tx.SetIdentityState(ctx, r.ID, []State{StatePending, StateActive}, StateRevoked, s.clock.Now()); err != nil {
			return err
		}
		return tx.Audit(ctx, "admin", "identity.revoke", r.ID, s.clock.Now())
	})
	s.keys.drop(email) // after the write: an opening that read the ID before it is discarded
	if errors.Is(err, errConflict) {
		return ErrNoIdentity // revoked or superseded meanwhile
	}
	if err != nil {
		return fmt.Errorf("revoke Digital ID of %s: %w", email, err)
	}
	s.cache.lock(r.ID) // an unlock that raced the revocation
	s.log.Info("Digital ID revoked", "email", email, "id", r.ID)
	return nil
}
