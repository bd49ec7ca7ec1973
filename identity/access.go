package identity

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"smimeproxy/crypto/seal"
	"smimeproxy/crypto/smime"
)

// UnlockRequest asks to keep a Digital ID unlocked for a while.
type UnlockRequest struct {
	Email    string
	Password Secret
	// Remember: how long to keep it unlocked (0: the default period;
	// capped at the maximum).
	Remember   time.Duration
	ClientAddr string // for the per-address back-off
}

// rememberFor clamps a requested period to (0, max], 0 meaning the default.
func (s *Service) rememberFor(d time.Duration) time.Duration {
	if d <= 0 {
		return s.remember
	}
	return min(d, s.maxRem)
}

// unlockFor puts a copy of mk into the cache and says until when it stays.
func (s *Service) unlockFor(id, email string, mk *seal.MasterKey, remember time.Duration) time.Time {
	s.cache.put(id, email, mk.Bytes(), s.rememberFor(remember))
	until, _ := s.cache.until(id)
	return until
}

// Unlock opens a Digital ID with its password and keeps only its master
// key in memory for the remembered period. Wrong passwords slow down
// further tries for this ID and this client address (*RetryError).
func (s *Service) Unlock(ctx context.Context, req UnlockRequest) (time.Time, error) {
	email, err := NormalizeEmail(req.Email)
	if err != nil {
		return time.Time{}, err
	}
	r, err := s.liveIdentity(ctx, email)
	if err != nil {
		return time.Time{}, err
	}
	keys := []string{"id:" + r.ID}
	if req.ClientAddr != "" {
		keys = append(keys, "addr:"+req.ClientAddr)
	}
	if w := s.backoff.wait(keys...); w > 0 {
		return time.Time{}, &RetryError{After: w}
	}
	mk, err := s.unwrapMaster(ctx, r, req.Password)
	if errors.Is(err, seal.ErrWrongPassword) {
		s.backoff.fail(keys...)
		s.log.Warn("wrong Digital ID password", "email", email, "client", req.ClientAddr)
		return time.Time{}, ErrWrongPassword
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("unlock Digital ID of %s: %w", email, err)
	}
	defer mk.Wipe()
	s.backoff.reset(keys...)
	until := s.unlockFor(r.ID, email, mk, req.Remember)
	s.log.Info("Digital ID unlocked", "email", email, "until", until)
	return until, nil
}

// Lock wipes a mailbox's unlocked key at once.
func (s *Service) Lock(ctx context.Context, email string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	r, err := s.liveIdentity(ctx, email)
	if err != nil {
		return err
	}
	if s.cache.lock(r.ID) {
		s.log.Info("Digital ID locked", "email", email)
	}
	s.keys.drop(email) // told by the lock above when it was unlocked; this covers the rest
	return nil
}

// usable returns the active ID of email with its keys and a master key
// (the caller wipes it): ErrNoIdentity, ErrPendingTrust or ErrLocked.
func (s *Service) usable(ctx context.Context, email string) (idRecord, []keyRecord, *seal.MasterKey, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return idRecord{}, nil, nil, err
	}
	r, err := s.liveIdentity(ctx, email)
	if err != nil {
		return idRecord{}, nil, nil, err
	}
	if r.State != StateActive {
		return idRecord{}, nil, nil, ErrPendingTrust
	}
	raw, err := s.cache.get(r.ID)
	if err != nil {
		return idRecord{}, nil, nil, err
	}
	defer clear(raw)
	mk, err := seal.MasterKeyFromBytes(raw)
	if err != nil {
		return idRecord{}, nil, nil, err
	}
	keys, err := s.rec.Keys(ctx, r.ID)
	if err != nil {
		mk.Wipe()
		return idRecord{}, nil, nil, fmt.Errorf("load keys of %s: %w", email, err)
	}
	return r, keys, mk, nil
}

// SigningKey returns what the SMTP proxy signs with: the current signing
// certificate and key, the chain up to (not including) the root, and the
// encryption certificate to announce (SMIMEEncryptionKeyPreference).
// Errors: ErrNoIdentity, ErrPendingTrust, ErrLocked.
//
// The key is opened once per unlock and then kept in memory (keyCache).
// The certificates and the key are shared between callers and must not
// be modified; the chain slice is the caller's own.
func (s *Service) SigningKey(ctx context.Context, email string) (*x509.Certificate, crypto.Signer, []*x509.Certificate, *x509.Certificate, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if e, ok := s.cachedKeys(ctx, email); ok && e.sign != nil {
		k := e.sign
		return k.cert, k.signer, slices.Clone(k.chain), k.enc, nil
	}
	gen, checked := s.keys.generation(), s.clock.Now()
	r, keys, mk, err := s.usable(ctx, email)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	defer mk.Wipe()
	k, err := openSigning(r, keys, mk)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	s.keys.update(gen, email, r.ID, checked, func(e *openedKeys) {
		if e.sign == nil {
			e.sign = k
		}
	})
	return k.cert, k.signer, slices.Clone(k.chain), k.enc, nil
}

// openSigning unseals and parses what SigningKey returns.
func openSigning(r idRecord, keys []keyRecord, mk *seal.MasterKey) (*signingKeys, error) {
	var signRec *keyRecord
	var encCert *x509.Certificate
	var err error
	for i, k := range keys {
		if k.Status != KeyCurrent {
			continue
		}
		if k.Use.signs() {
			signRec = &keys[i]
		}
		if k.Use.decrypts() {
			if encCert, err = x509.ParseCertificate(k.CertDER); err != nil {
				return nil, fmt.Errorf("encryption certificate of %s: %w", r.Email, err)
			}
		}
	}
	if signRec == nil {
		return nil, fmt.Errorf("the Digital ID %s has no signing key: %w", r.ID, ErrNoIdentity)
	}
	cert, err := x509.ParseCertificate(signRec.CertDER)
	if err != nil {
		return nil, fmt.Errorf("signing certificate of %s: %w", r.Email, err)
	}
	key, err := openKey(mk, *signRec)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key of %s is a %T, not a signer", r.Email, key)
	}
	var chain []*x509.Certificate
	for _, der := range r.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("chain of %s: %w", r.Email, err)
		}
		chain = append(chain, c)
	}
	return &signingKeys{cert: cert, signer: signer, chain: chain, enc: encCert}, nil
}

// DecryptionKeys returns every encryption key of a mailbox's Digital ID,
// current first, then the restored history newest first, so old mail
// still decrypts. Errors: ErrNoIdentity, ErrPendingTrust, ErrLocked.
//
// The keys are opened once per unlock and then kept in memory (keyCache).
// The certificates and keys are shared between callers and must not be
// modified; the slice is the caller's own.
func (s *Service) DecryptionKeys(ctx context.Context, email string) ([]smime.KeyPair, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if e, ok := s.cachedKeys(ctx, email); ok && e.decOpen {
		return slices.Clone(e.dec), nil
	}
	gen, checked := s.keys.generation(), s.clock.Now()
	r, keys, mk, err := s.usable(ctx, email)
	if err != nil {
		return nil, err
	}
	defer mk.Wipe()
	dec, err := openDecryption(keys, mk)
	if err != nil {
		return nil, err
	}
	s.keys.update(gen, email, r.ID, checked, func(e *openedKeys) {
		if !e.decOpen {
			e.dec, e.decOpen = dec, true
		}
	})
	return slices.Clone(dec), nil
}

// openDecryption unseals and parses what DecryptionKeys returns.
func openDecryption(keys []keyRecord, mk *seal.MasterKey) ([]smime.KeyPair, error) {
	var cur, hist []smime.KeyPair
	for _, k := range keys {
		if !k.Use.decrypts() {
			continue
		}
		cert, err := x509.ParseCertificate(k.CertDER)
		if err != nil {
			return nil, fmt.Errorf("encryption certificate %s: %w", k.ID, err)
		}
		key, err := openKey(mk, k)
		if err != nil {
			return nil, err
		}
		kp := smime.KeyPair{Cert: cert, Key: key}
		if k.Status == KeyCurrent {
			cur = append(cur, kp)
		} else {
			hist = append([]smime.KeyPair{kp}, hist...)
		}
	}
	return append(cur, hist...), nil
}
