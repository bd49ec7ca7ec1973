package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/seal"
)

// EnrollRequest is what a user gives to enrol (or, with a recovery token,
// to enrol again).
type EnrollRequest struct {
	Email    string
	Token    Secret
	Name     string // the Digital ID's name, as in Outlook ("My S/MIME ID")
	Password Secret // protects the Digital ID from now on
	// Remember keeps the ID unlocked this long after enrolment (0: the
	// default period; capped at the maximum).
	Remember   time.Duration
	ClientAddr string
	// Purpose the token must have; empty accepts either, and the token's
	// own purpose decides between enrolment and recovery.
	Purpose Purpose
}

// RootInfo is the root a user is asked to accept (as Outlook's Root Store
// prompt): subject, issuer, validity and SHA-256 fingerprint.
type RootInfo struct {
	ca.Description
	Cert *x509.Certificate `json:"-"`
}

// EnrollResult tells the user what was made and what to accept.
type EnrollResult struct {
	Identity DigitalID
	Root     RootInfo
	// RootAccepted: the root was already trusted (org-wide, or accepted
	// before), so the ID is active at once.
	RootAccepted bool
	// UnlockedUntil: the ID stays unlocked until then unless idle.
	UnlockedUntil time.Time
}

// enrolment is a Digital ID made but not yet stored.
type enrolment struct {
	id   idRecord
	keys []keyRecord
	mk   *seal.MasterKey
}

// Enroll redeems a token: with an enroll token it makes a new Digital ID
// (Recover describes a recovery token). Keys are generated, certificates
// issued, private keys sealed, the encryption key escrowed, and then the
// token is consumed and everything stored in one transaction: a failure or
// crash before the commit leaves no Digital ID and the token redeemable.
func (s *Service) Enroll(ctx context.Context, req EnrollRequest) (*EnrollResult, error) {
	email, err := NormalizeEmail(req.Email)
	if err != nil {
		return nil, err
	}
	name, err := s.checkNewID(req.Name, req.Password)
	if err != nil {
		return nil, err
	}
	// Guessing tokens from one address is slowed down like guessing
	// passwords (a token has 120 bits; this protects the store, mostly).
	var guessKey []string
	if req.ClientAddr != "" {
		guessKey = []string{"token:" + req.ClientAddr}
		if w := s.backoff.wait(guessKey...); w > 0 {
			return nil, &RetryError{After: w}
		}
	}
	hash, info, err := s.redeemable(ctx, req.Token, email, req.Purpose)
	if errors.Is(err, ErrTokenUnknown) {
		s.backoff.fail(guessKey...)
	}
	if err != nil {
		return nil, err
	}
	if info.Purpose == PurposeRecover {
		return s.recoverWith(ctx, req, email, name, hash)
	}
	if _, err := s.liveIdentity(ctx, email); err == nil {
		return nil, ErrAlreadyEnrolled
	} else if !errors.Is(err, ErrNoIdentity) {
		return nil, err
	}
	e, err := s.makeIdentity(ctx, email, name, req.Password, nil)
	if err != nil {
		return nil, err
	}
	defer e.mk.Wipe()
	return s.commitEnrolment(ctx, e, hash, PurposeEnroll, "", req.Remember)
}

// checkNewID validates the name and password of a new Digital ID.
func (s *Service) checkNewID(name string, password Secret) (string, error) {
	if n := utf8.RuneCountInString(name); n == 0 || n > 64 || !utf8.ValidString(name) ||
		slices.ContainsFunc([]rune(name), func(r rune) bool { return !unicode.IsPrint(r) }) {
		return "", ErrBadName
	}
	if utf8.RuneCountInString(string(password)) < s.minPW {
		return "", fmt.Errorf("%w: use at least %d characters", ErrWeakPassword, s.minPW)
	}
	return name, nil
}

// restoredKey is an escrowed encryption key brought back by recovery.
type restoredKey struct {
	cert   *x509.Certificate
	pkcs8  []byte
	escrow []byte
}

// makeIdentity builds a Digital ID in memory: master key wrapped under
// password, a new signing key and certificate, and either a new encryption
// key (escrowed) or, for recovery, the restored encryption keys (newest
// current, the rest history).
func (s *Service) makeIdentity(ctx context.Context, email, name string, password Secret, restored []restoredKey) (*enrolment, error) {
	id, err := newRecordID(s.rand)
	if err != nil {
		return nil, err
	}
	mk, err := seal.NewMasterKey()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			mk.Wipe()
		}
	}()
	wrapped, err := s.wrapMaster(ctx, mk, id, password)
	if err != nil {
		return nil, err
	}
	chain := s.ca.Chain()
	root := rootOf(chain)
	now := s.clock.Now()
	e := &enrolment{mk: mk, id: idRecord{
		ID: id, Email: email, Name: name, State: StatePending, Source: SourceCA,
		Created: now, Updated: now, Master: wrapped, RootDER: root.Raw,
	}}
	for _, c := range chain {
		if c != root {
			e.id.Chain = append(e.id.Chain, c.Raw)
		}
	}

	signKey, signDER, err := s.generateKeyPair()
	if err != nil {
		return nil, err
	}
	signCert, err := s.ca.IssueSigning(signKey.Public(), email, name)
	if err != nil {
		clear(signDER)
		return nil, fmt.Errorf("issue signing certificate for %s: %w", email, err)
	}
	k, err := s.newKeyRecord(mk, id, UseSign, KeyCurrent, signCert, signDER, nil)
	if err != nil {
		return nil, err
	}
	e.keys = append(e.keys, k)

	escrowCert := s.ca.EscrowCertificate()
	if restored == nil {
		encKey, encDER, err := s.generateKeyPair()
		if err != nil {
			return nil, err
		}
		encCert, err := s.ca.IssueEncryption(encKey.Public(), email, name)
		if err != nil {
			clear(encDER)
			return nil, fmt.Errorf("issue encryption certificate for %s: %w", email, err)
		}
		k, err := s.newKeyRecord(mk, id, UseEncrypt, KeyCurrent, encCert, encDER, escrowCert)
		if err != nil {
			return nil, err
		}
		e.keys = append(e.keys, k)
	}
	for i, r := range restored {
		status := KeyHistory
		if i == len(restored)-1 {
			status = KeyCurrent
		}
		// The escrow copy made at first enrolment stays valid: same key.
		k, err := s.newKeyRecord(mk, id, UseEncrypt, status, r.cert, r.pkcs8, nil)
		if err != nil {
			return nil, err
		}
		k.Escrow = r.escrow
		e.keys = append(e.keys, k)
	}
	ok = true
	return e, nil
}

// rootOf picks the certificate a user is asked to trust from a chain
// (issuing CA first): the self-signed one at the top, else the topmost.
func rootOf(chain []*x509.Certificate) *x509.Certificate {
	for _, c := range slices.Backward(chain) {
		if c.CheckSignatureFrom(c) == nil {
			return c
		}
	}
	return chain[len(chain)-1]
}

// commitEnrolment stores a made ID and consumes its token in one
// transaction; for recovery it also retires the superseded ID. Then it
// unlocks the new ID for the remembered period.
func (s *Service) commitEnrolment(ctx context.Context, e *enrolment, hash []byte, purpose Purpose, supersede string, remember time.Duration) (*EnrollResult, error) {
	email := e.id.Email
	trusted, err := s.rootTrusted(ctx, email, e.id.RootDER)
	if err != nil {
		return nil, err
	}
	if trusted {
		e.id.State = StateActive
	}
	err = s.rec.Tx(ctx, func(tx recordsTx) error {
		if err := s.step("consume token"); err != nil {
			return err
		}
		if hash != nil { // imports redeem no token
			if err := tx.ConsumeToken(ctx, hash, email, purpose, e.id.ID, s.clock.Now()); err != nil {
				return err
			}
		}
		if supersede != "" {
			if err := s.step("supersede"); err != nil {
				return err
			}
			if err := tx.SetIdentityState(ctx, supersede, []State{StatePending, StateActive}, StateSuperseded, s.clock.Now()); err != nil {
				return fmt.Errorf("retire superseded Digital ID: %w", err)
			}
		}
		if err := s.step("insert identity"); err != nil {
			return err
		}
		if err := tx.InsertIdentity(ctx, e.id); err != nil {
			return err
		}
		for _, k := range e.keys {
			if err := s.step("insert key"); err != nil {
				return err
			}
			if err := tx.InsertKey(ctx, k); err != nil {
				return fmt.Errorf("store %s key: %w", k.Use, err)
			}
		}
		action := map[Purpose]string{PurposeEnroll: "identity.enroll", PurposeRecover: "identity.recover", "": "identity.import"}[purpose]
		if err := tx.Audit(ctx, email, action, e.id.ID, s.clock.Now()); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return s.step("commit")
	})
	// A new live ID for the mailbox (and for recovery a superseded one):
	// opened keys of the mailbox, and openings that read the old state,
	// must go.
	s.keys.drop(email)
	switch {
	case errors.Is(err, errTokenGone):
		return nil, s.whyGone(ctx, hash, email, purpose)
	case errors.Is(err, errConflict):
		return nil, ErrAlreadyEnrolled
	case err != nil:
		return nil, fmt.Errorf("store Digital ID for %s: %w", email, err)
	}
	if supersede != "" {
		s.cache.lock(supersede) // its key is of no use any more
	}
	until := s.unlockFor(e.id.ID, email, e.mk, remember)
	s.log.Info("Digital ID enrolled", "email", email, "id", e.id.ID, "purpose", string(purpose), "state", string(e.id.State))
	d, err := s.describe(ctx, e.id)
	if err != nil {
		return nil, err
	}
	return &EnrollResult{Identity: *d, Root: *d.Root, RootAccepted: trusted, UnlockedUntil: until}, nil
}

// step runs the test hook for one enrolment step.
func (s *Service) step(name string) error {
	if s.hook == nil {
		return nil
	}
	return s.hook(name)
}
