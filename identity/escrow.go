package identity

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
)

// Escrow is what an administrator takes away for offline key recovery:
// every escrowed encryption key of a mailbox, each a CMS EnvelopedData
// encrypted to the key-recovery certificate. Nothing in it is usable
// without the key-recovery private key (ca.EscrowKeyFile).
type Escrow struct {
	Email string
	// RecoveryCert is the key-recovery certificate the keys are encrypted
	// to (openssl cms -decrypt -recip).
	RecoveryCert *x509.Certificate
	Keys         []EscrowedKey // oldest certificate first
}

// EscrowedKey is one escrowed encryption key.
type EscrowedKey struct {
	IdentityID string // the Digital ID the key was first escrowed with
	KeyID      string
	// Cert is the encryption certificate whose private key is inside.
	Cert *x509.Certificate
	// Current: the encryption key of the mailbox's live Digital ID.
	Current bool
	// Envelope is the DER CMS EnvelopedData (RFC 5652 §6) whose content
	// is the PKCS#8 private key.
	Envelope []byte
}

// EscrowedKeys returns the escrowed encryption keys of every Digital ID the
// mailbox ever had (revoked and superseded ones too, each key once), for an
// administrator's offline recovery. Errors: ErrNoIdentity when the mailbox
// never had one, ErrNoEscrow when none of its keys is escrowed (imports).
// The export is audited.
func (s *Service) EscrowedKeys(ctx context.Context, email string) (*Escrow, error) {
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
	out := &Escrow{Email: email, RecoveryCert: s.ca.EscrowCertificate()}
	byCert := map[string]int{}
	for _, r := range ids {
		keys, err := s.rec.Keys(ctx, r.ID)
		if err != nil {
			return nil, fmt.Errorf("load keys of Digital ID %s: %w", r.ID, err)
		}
		for _, k := range keys {
			if len(k.Escrow) == 0 {
				continue
			}
			current := r.State.live() && k.Status == KeyCurrent
			// A recovered key appears again in each later ID; list it once.
			if i, ok := byCert[string(k.CertDER)]; ok {
				out.Keys[i].Current = out.Keys[i].Current || current
				continue
			}
			cert, err := x509.ParseCertificate(k.CertDER)
			if err != nil {
				return nil, fmt.Errorf("certificate of key %s: %w", k.ID, err)
			}
			byCert[string(k.CertDER)] = len(out.Keys)
			out.Keys = append(out.Keys, EscrowedKey{IdentityID: r.ID, KeyID: k.ID, Cert: cert, Current: current,
				Envelope: slices.Clone(k.Escrow)})
		}
	}
	if len(out.Keys) == 0 {
		return nil, ErrNoEscrow
	}
	slices.SortStableFunc(out.Keys, func(a, b EscrowedKey) int { return a.Cert.NotBefore.Compare(b.Cert.NotBefore) })
	if err := s.rec.Audit(ctx, "admin", "escrow.export", email, s.clock.Now()); err != nil {
		s.log.Warn("audit escrow export", "err", err)
	}
	s.log.Info("escrowed keys exported", "email", email, "keys", len(out.Keys))
	return out, nil
}
