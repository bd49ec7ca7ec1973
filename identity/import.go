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

	"software.sslmate.com/src/go-pkcs12"

	"smimeproxy/crypto/seal"
)

// ImportRequest brings keys and certificates from an external CA.
type ImportRequest struct {
	Email          string
	PKCS12         []byte // RFC 7292 file
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

// keyPair is one private key with its certificate from an import.
type keyPair struct {
	cert *x509.Certificate
	key  crypto.PrivateKey
}

// readPKCS12 decodes a PKCS#12 file into its key pairs and CA certificates.
func readPKCS12(data []byte, password Secret) ([]keyPair, []*x509.Certificate, error) {
	key, cert, cas, err := pkcs12.DecodeChain(data, string(password))
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return nil, nil, fmt.Errorf("%w: wrong PKCS#12 password", ErrBadPKCS12)
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrBadPKCS12, err)
	}
	return []keyPair{{cert: cert, key: key}}, cas, nil
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
	name, err := s.checkNewID(req.Name, req.Password)
	if err != nil {
		return nil, err
	}
	if _, err := s.liveIdentity(ctx, email); err == nil {
		return nil, ErrAlreadyEnrolled
	} else if !errors.Is(err, ErrNoIdentity) {
		return nil, err
	}
	pairs, cas, err := readPKCS12(req.PKCS12, req.PKCS12Password)
	if err != nil {
		return nil, err
	}
	uses, err := s.classifyImport(email, pairs)
	if err != nil {
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
	for _, c := range cas {
		if c.CheckSignatureFrom(c) == nil && e.id.RootDER == nil {
			e.id.RootDER = c.Raw
		} else {
			e.id.Chain = append(e.id.Chain, c.Raw)
		}
	}
	for i, p := range pairs {
		for _, use := range uses[i] {
			der, err := x509.MarshalPKCS8PrivateKey(p.key)
			if err != nil {
				return nil, fmt.Errorf("%w: key %d: %v", ErrBadPKCS12, i+1, err)
			}
			k, err := s.newKeyRecord(mk, id, use, KeyCurrent, p.cert, der, nil)
			if err != nil {
				return nil, err
			}
			e.keys = append(e.keys, k)
		}
	}
	res, err := s.commitEnrolment(ctx, e, nil, "", "", req.Remember)
	if err != nil {
		return nil, err
	}
	s.log.Info("Digital ID imported", "email", email, "id", id, "keys", len(pairs))
	return res, nil
}

// classifyImport checks each pair (key matches certificate, certificate for
// email, valid now, usable for e-mail) and decides its use: one pair must
// end up signing and one decrypting, possibly the same (a dual-use
// certificate gets both uses).
func (s *Service) classifyImport(email string, pairs []keyPair) ([][]KeyUse, error) {
	now := s.clock.Now()
	uses := make([][]KeyUse, len(pairs))
	var signs, decrypts int
	for i, p := range pairs {
		c := p.cert
		switch {
		case !publicKeyMatches(p.key, c.PublicKey):
			return nil, fmt.Errorf("%w: key %d does not match its certificate", ErrBadPKCS12, i+1)
		case !certForAddress(c, email):
			return nil, fmt.Errorf("%w: the certificate %q is not for %s", ErrBadPKCS12, c.Subject.CommonName, email)
		case !validAt(c, now):
			return nil, fmt.Errorf("%w: the certificate %q is not valid now (valid %s to %s)", ErrBadPKCS12,
				c.Subject.CommonName, c.NotBefore.Format(time.DateOnly), c.NotAfter.Format(time.DateOnly))
		case len(c.ExtKeyUsage) > 0 && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageEmailProtection) &&
			!slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny):
			return nil, fmt.Errorf("%w: the certificate %q is not for e-mail protection", ErrBadPKCS12, c.Subject.CommonName)
		}
		sign := c.KeyUsage == 0 || c.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) != 0
		enc := canEncrypt(c)
		if sign {
			uses[i] = append(uses[i], UseSign)
			signs++
		}
		if enc {
			uses[i] = append(uses[i], UseEncrypt)
			decrypts++
		}
		if len(uses[i]) == 0 {
			return nil, fmt.Errorf("%w: the certificate %q can neither sign nor encrypt", ErrBadPKCS12, c.Subject.CommonName)
		}
	}
	if signs == 0 || decrypts == 0 {
		return nil, fmt.Errorf("%w: it needs a signing and an encryption certificate (or one for both)", ErrBadPKCS12)
	}
	return uses, nil
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
