package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/smime"
)

// Recover redeems a recovery token: the user enrols again with a new
// password (the old one may be forgotten). Every escrowed encryption key
// the mailbox ever had comes back, sealed under the new password, so old
// mail still decrypts; the newest stays the current encryption key. A new
// signing key and certificate are issued, and the previous Digital ID is
// marked superseded (its signing certificate retires with it).
//
// The escrowed keys are opened with the CA's key-recovery key, read from
// the CA directory (ca.EscrowKeyFile) only for the duration of this call.
// An operator may keep that file offline and put it there only while
// recoveries run; without it Recover fails with ErrEscrowKey and the token
// stays redeemable.
func (s *Service) Recover(ctx context.Context, req EnrollRequest) (*EnrollResult, error) {
	req.Purpose = PurposeRecover
	return s.Enroll(ctx, req)
}

// recoverWith continues Enroll for a recovery token.
func (s *Service) recoverWith(ctx context.Context, req EnrollRequest, email, name string, hash []byte) (*EnrollResult, error) {
	ids, err := s.rec.IdentitiesByEmail(ctx, email)
	if err != nil {
		return nil, fmt.Errorf("look up Digital IDs of %s: %w", email, err)
	}
	var supersede string
	var escrowed []keyRecord
	seen := map[string]bool{}
	for _, r := range ids {
		if r.State.live() {
			supersede = r.ID
		}
		keys, err := s.rec.Keys(ctx, r.ID)
		if err != nil {
			return nil, fmt.Errorf("load keys of Digital ID %s: %w", r.ID, err)
		}
		for _, k := range keys {
			// A recovered key appears again in each later ID; keep one copy.
			if len(k.Escrow) > 0 && !seen[string(k.CertDER)] {
				seen[string(k.CertDER)] = true
				escrowed = append(escrowed, k)
			}
		}
	}
	if len(escrowed) == 0 {
		return nil, ErrNoEscrow
	}
	// Oldest first, by certificate, so the newest key becomes current
	// whatever order the store lists them in.
	slices.SortStableFunc(escrowed, func(a, b keyRecord) int { return certAge(a).Compare(certAge(b)) })
	restored, err := s.openEscrow(escrowed)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, r := range restored {
			clear(r.pkcs8)
		}
	}()
	e, err := s.makeIdentity(ctx, email, name, req.Password, restored)
	if err != nil {
		return nil, err
	}
	defer e.mk.Wipe()
	res, err := s.commitEnrolment(ctx, e, hash, PurposeRecover, supersede, req.Remember)
	if err != nil {
		return nil, err
	}
	s.log.Info("Digital ID recovered", "email", email, "restored_keys", len(restored), "superseded", supersede)
	return res, nil
}

// openEscrow decrypts escrowed keys (oldest first) with the key-recovery
// key and checks each one matches its certificate.
func (s *Service) openEscrow(escrowed []keyRecord) ([]restoredKey, error) {
	cert, key, err := s.escrowKeyPair()
	if err != nil {
		return nil, err
	}
	var out []restoredKey
	for _, k := range escrowed {
		c, err := x509.ParseCertificate(k.CertDER)
		if err != nil {
			return nil, fmt.Errorf("escrowed key %s: certificate: %w", k.ID, err)
		}
		dec, err := smime.DecryptDER(k.Escrow, []smime.KeyPair{{Cert: cert, Key: key}})
		if err != nil {
			return nil, fmt.Errorf("open escrowed key %s: %w", k.ID, err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(dec.Entity)
		if err != nil {
			clear(dec.Entity)
			return nil, fmt.Errorf("escrowed key %s: %w", k.ID, err)
		}
		if !publicKeyMatches(priv, c.PublicKey) {
			clear(dec.Entity)
			return nil, fmt.Errorf("escrowed key %s does not match its certificate", k.ID)
		}
		out = append(out, restoredKey{cert: c, pkcs8: dec.Entity, escrow: k.Escrow})
	}
	return out, nil
}

func certAge(k keyRecord) time.Time {
	c, err := x509.ParseCertificate(k.CertDER)
	if err != nil {
		return time.Time{}
	}
	return c.NotBefore
}

// escrowKeyPair reads the key-recovery key from the CA directory.
func (s *Service) escrowKeyPair() (*x509.Certificate, crypto.PrivateKey, error) {
	cert := s.ca.EscrowCertificate()
	if s.caDir == "" || cert == nil {
		return nil, nil, ErrEscrowKey
	}
	pemData, err := os.ReadFile(filepath.Join(s.caDir, ca.EscrowKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, ErrEscrowKey
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrEscrowKey, err)
	}
	key, err := ca.ParsePrivateKeyPEM(pemData)
	clear(pemData)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrEscrowKey, ca.EscrowKeyFile, err)
	}
	if !publicKeyMatches(key, cert.PublicKey) {
		return nil, nil, fmt.Errorf("%w: %s does not match the key-recovery certificate", ErrEscrowKey, ca.EscrowKeyFile)
	}
	return cert, key, nil
}

// publicKeyMatches reports whether priv is the private half of pub.
func publicKeyMatches(priv crypto.PrivateKey, pub crypto.PublicKey) bool {
	p, ok := priv.(interface{ Public() crypto.PublicKey })
	if !ok {
		return false
	}
	a, err1 := x509.MarshalPKIXPublicKey(p.Public())
	b, err2 := x509.MarshalPKIXPublicKey(pub)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}
