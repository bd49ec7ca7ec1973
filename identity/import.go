package identity

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"time"

	"smimeproxy/crypto/legacy"
	"smimeproxy/crypto/seal"
)

// ImportRequest brings keys and certificates from an external CA.
type ImportRequest struct {
	Email          string
	PKCS12         []byte // RFC 7292 file (a PEM bundle of keys and certificates works too)
	PKCS12Password Secret
	Name           string
	Password       Secret // protects the Digital ID from now on
	Remember       time.Duration
	ClientAddr     string
}

// ImportWarning is what the import page must state plainly.
const ImportWarning = "Keys imported from another CA are not escrowed: if you forget this " +
	"Digital ID's password, the keys and all mail encrypted to them are lost, " +
	"and you will need a new Digital ID."

// importedKey is one private key of an import with its use.
type importedKey struct {
	cert   *x509.Certificate
	key    crypto.PrivateKey
	use    KeyUse
	status KeyStatus
}

// readPKCS12 decodes a PKCS#12 file (modern or legacy encryption, one or
// several keys) and picks the keys to import: the signing pair, the
// encryption pair (the same one for a dual-use certificate), and older
// encryption keys as history. It also returns the chain above the
// signing certificate, ending at the root when the file has one.
func readPKCS12(data []byte, password Secret) ([]importedKey, []*x509.Certificate, error) {
	b, err := legacy.Read(data, string(password))
	if errors.Is(err, legacy.ErrWrongPassword) {
		return nil, nil, fmt.Errorf("%w: wrong PKCS#12 password", ErrBadPKCS12)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadPKCS12, err)
	}
	m := b.Pairs()
	if m.Signing == nil || m.Encryption == nil {
		return nil, nil, fmt.Errorf("%w: it needs a signing and an encryption certificate (or one for both) with their keys", ErrBadPKCS12)
	}
	keys := []importedKey{
		{cert: m.Signing.Cert, key: m.Signing.Key, use: UseSign, status: KeyCurrent},
		{cert: m.Encryption.Cert, key: m.Encryption.Key, use: UseEncrypt, status: KeyCurrent},
	}
	for i := range m.Pairs {
		p := &m.Pairs[i]
		if p != m.Encryption && p != m.Signing && p.CanEncrypt() {
			keys = append(keys, importedKey{cert: p.Cert, key: p.Key, use: UseEncrypt, status: KeyHistory})
		}
	}
	return keys, m.Signing.Chain, nil
}

// ImportPKCS12 makes a Digital ID from an external CA's PKCS#12: one
// dual-use certificate, or separate signing and encryption certificates.
// Nothing is escrowed (see ImportWarning). The mailbox must not have a
// Digital ID yet; the ID waits for its root to be accepted when the file
// carries a root not trusted yet.
func (s *Service) ImportPKCS12(ctx context.Context, req ImportRequest) (*EnrollResult, error) {
	email, err := NormalizeEmail(req.Email)
	if err != nil {
		return nil, err
	}
	if err := s.allowed(email); err != nil {
		return nil, err
	}
	name, err := s.checkNewID(req.Name, req.Password)
	if err != nil {
		return nil, err
	}
	if _, err := s.liveIdentity(ctx, email); err == nil {
		return nil, ErrAlreadyEnrolled
	} else if !errors.Is(err, ErrNoIdentity) {
		return nil, err
	}
	keys, chain, err := readPKCS12(req.PKCS12, req.PKCS12Password)
	if err != nil {
		return nil, err
	}
	// Keys of other people in the same file are none of this ID's business.
	keys = slices.DeleteFunc(keys, func(k importedKey) bool { return k.status == KeyHistory && !certForAddress(k.cert, email) })
	if err := s.checkImport(email, keys); err != nil {
		return nil, err
	}
	id, err := newRecordID(s.rand)
	if err != nil {
		return nil, err
	}
	mk, err := seal.NewMasterKey()
	if err != nil {
		return nil, err
	}
	defer mk.Wipe()
	wrapped, err := s.wrapMaster(ctx, mk, id, req.Password)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	e := &enrolment{mk: mk, id: idRecord{ID: id, Email: email, Name: name, State: StatePending, Source: SourceImport, Created: now, Updated: now, Master: wrapped}}
	for i, c := range chain {
		if i == len(chain)-1 && c.CheckSignatureFrom(c) == nil {
			e.id.RootDER = c.Raw
		} else {
			e.id.Chain = append(e.id.Chain, c.Raw)
		}
	}
	for i, ik := range keys {
		der, err := x509.MarshalPKCS8PrivateKey(ik.key)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d: %v", ErrBadPKCS12, i+1, err)
		}
		k, err := s.newKeyRecord(mk, id, ik.use, ik.status, ik.cert, der, nil)
		if err != nil {
			return nil, err
		}
		e.keys = append(e.keys, k)
	}
	res, err := s.commitEnrolment(ctx, e, nil, "", "", req.Remember)
	if err != nil {
		return nil, err
	}
	s.log.Info("Digital ID imported", "email", email, "id", id, "keys", len(keys))
	return res, nil
}

// checkImport checks each key's certificate: for email and valid now.
func (s *Service) checkImport(email string, keys []importedKey) error {
	now := s.clock.Now()
	for _, k := range keys {
		c := k.cert
		switch {
		case !certForAddress(c, email):
			return fmt.Errorf("%w: the certificate %q is not for %s", ErrBadPKCS12, c.Subject.CommonName, email)
		case k.status == KeyCurrent && !validAt(c, now):
			return fmt.Errorf("%w: the certificate %q is not valid now (valid %s to %s)", ErrBadPKCS12,
				c.Subject.CommonName, c.NotBefore.Format(time.DateOnly), c.NotAfter.Format(time.DateOnly))
		}
	}
	return nil
}

// certForAddress reports whether c names email (rfc822Name, or the
// emailAddress attribute older CAs put in the subject).
func certForAddress(c *x509.Certificate, email string) bool {
	for _, a := range c.EmailAddresses {
		if n, err := NormalizeEmail(a); err == nil && n == email {
			return true
		}
	}
	for _, atv := range c.Subject.Names {
		if atv.Type.Equal(oidEmailAddress) {
			if v, ok := atv.Value.(string); ok {
				if n, err := NormalizeEmail(v); err == nil && n == email {
					return true
				}
			}
		}
	}
	return false
}

var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
