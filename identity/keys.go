package identity

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"

	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/seal"
	"smimeproxy/crypto/smime"
)

// newRecordID draws a random id for an ID or key record (128 bits, hex).
func newRecordID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("draw record id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// sealPurpose is the associated-data purpose a key record is sealed under,
// so a sealed signing key cannot be passed off as an encryption key.
func sealPurpose(u KeyUse) string { return "identity key " + string(u) }

// newKeyRecord seals a private key (PKCS#8 DER, wiped here) under mk for
// identity id; escrowTo, when set, also gets an escrow copy.
func (s *Service) newKeyRecord(mk *seal.MasterKey, identityID string, use KeyUse, status KeyStatus,
	cert *x509.Certificate, pkcs8 []byte, escrowTo *x509.Certificate) (keyRecord, error) {
	defer clear(pkcs8)
	kid, err := newRecordID(s.rand)
	if err != nil {
		return keyRecord{}, err
	}
	sealed, err := seal.Seal(mk, kid, sealPurpose(use), pkcs8)
	if err != nil {
		return keyRecord{}, fmt.Errorf("seal %s key: %w", use, err)
	}
	k := keyRecord{ID: kid, IdentityID: identityID, Use: use, Status: status, CertDER: cert.Raw, Sealed: sealed, Created: s.clock.Now()}
	if escrowTo != nil {
		if k.Escrow, err = escrowKey(pkcs8, escrowTo); err != nil {
			return keyRecord{}, err
		}
	}
	return k, nil
}

// escrowKey encrypts a PKCS#8 private key to the key-recovery certificate
// as a CMS EnvelopedData (AES-256-CBC), which `openssl cms -decrypt`
// opens offline.
func escrowKey(pkcs8 []byte, to *x509.Certificate) ([]byte, error) {
	// The key-recovery certificate carries the Key Recovery Agent purpose,
	// not emailProtection, so it is never taken for a mail recipient;
	// smime.EncryptEntity accepts that purpose for encryption.
	der, err := smime.EncryptEntity(pkcs8, []smime.Recipient{{Cert: to}}, smime.EncryptOptions{Cipher: smime.AES256CBC})
	if err != nil {
		return nil, fmt.Errorf("escrow encryption key: %w", err)
	}
	return der, nil
}

// generateKeyPair makes a key of the configured type; it returns the key
// and its PKCS#8 DER (which the caller hands to newKeyRecord to be sealed
// and wiped).
func (s *Service) generateKeyPair() (crypto.Signer, []byte, error) {
	k, err := ca.GenerateKey(s.keyType)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", s.keyType, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s key: %w", s.keyType, err)
	}
	return k, der, nil
}

// unwrapMaster runs Argon2 on password under the limiter and opens the
// ID's master key.
func (s *Service) unwrapMaster(ctx context.Context, r idRecord, password Secret) (*seal.MasterKey, error) {
	var mk *seal.MasterKey
	err := s.limiter.Do(ctx, func() error {
		var err error
		mk, err = seal.UnwrapMasterKey(seal.Secret(password), r.Master, r.ID)
		return err
	})
	return mk, err
}

// wrapMaster wraps mk under password with the configured parameters, under
// the limiter.
func (s *Service) wrapMaster(ctx context.Context, mk *seal.MasterKey, id string, password Secret) ([]byte, error) {
	var blob []byte
	err := s.limiter.Do(ctx, func() error {
		var err error
		blob, err = seal.WrapMasterKey(seal.Secret(password), mk, id, s.params)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("wrap master key: %w", err)
	}
	return blob, nil
}

// openKey unseals one key record with mk and parses it.
func openKey(mk *seal.MasterKey, k keyRecord) (crypto.PrivateKey, error) {
	der, err := seal.Open(mk, k.Sealed, k.ID, sealPurpose(k.Use))
	if err != nil {
		return nil, fmt.Errorf("unseal %s key %s: %w", k.Use, k.ID, err)
	}
	defer clear(der)
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse %s key %s: %w", k.Use, k.ID, err)
	}
	return key, nil
}
