package legacy

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"slices"
)

// Pair is a private key with a certificate for it.
type Pair struct {
	Key  crypto.Signer
	Cert *x509.Certificate
	// Chain holds the issuers of Cert found in the same file, nearest
	// first, ending at a self-signed root when the file has one.
	Chain []*x509.Certificate
	// Name is the friendly name the file gave the certificate or key.
	Name string
}

// CanSign reports whether the certificate allows S/MIME signatures:
// digitalSignature or nonRepudiation (or no key usage extension), and an
// extended key usage that admits e-mail.
func (p *Pair) CanSign() bool {
	c := p.Cert
	return forEmail(c) && (c.KeyUsage == 0 || c.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) != 0)
}

// CanEncrypt reports whether the certificate allows S/MIME encryption:
// keyEncipherment for RSA, keyAgreement for EC (or no key usage
// extension), and an extended key usage that admits e-mail.
func (p *Pair) CanEncrypt() bool {
	c := p.Cert
	if !forEmail(c) {
		return false
	}
	switch c.PublicKey.(type) {
	case *rsa.PublicKey:
		return c.KeyUsage == 0 || c.KeyUsage&x509.KeyUsageKeyEncipherment != 0
	case *ecdsa.PublicKey:
		return c.KeyUsage == 0 || c.KeyUsage&x509.KeyUsageKeyAgreement != 0
	}
	return false
}

func forEmail(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	return slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageEmailProtection) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}

// Matched is a Bundle sorted into key/certificate pairs.
type Matched struct {
	// Pairs holds one entry per certificate whose key is in the file,
	// in file order.
	Pairs []Pair
	// Signing and Encryption point into Pairs at the pair to sign and
	// to decrypt with: a certificate made for that purpose alone when
	// there is one, else a dual-use certificate (then both point to the
	// same pair), the latest-expiring first. Nil when none fits.
	Signing, Encryption *Pair
	// KeysWithoutCert are private keys no certificate in the file belongs to.
	KeysWithoutCert []crypto.Signer
	// Loose are the certificates whose key is not in the file (issuers,
	// correspondents' certificates).
	Loose []*x509.Certificate
}

// Pairs matches keys to certificates by public key, finds each
// certificate's chain in the file, and picks the signing and encryption
// pairs by key usage.
func (b *Bundle) Pairs() Matched {
	var m Matched
	used := make([]bool, len(b.Keys))
	for ci, c := range b.Certs {
		ki := slices.IndexFunc(b.Keys, func(k crypto.Signer) bool { return samePublicKey(k.Public(), c.PublicKey) })
		if ki < 0 {
			m.Loose = append(m.Loose, c)
			continue
		}
		used[ki] = true
		name := b.certNames[ci]
		if name == "" {
			name = b.keyNames[ki]
		}
		m.Pairs = append(m.Pairs, Pair{Key: b.Keys[ki], Cert: c, Chain: b.chain(c), Name: name})
	}
	for i, k := range b.Keys {
		if !used[i] {
			m.KeysWithoutCert = append(m.KeysWithoutCert, k)
		}
	}
	m.Signing = pick(m.Pairs, (*Pair).CanSign, (*Pair).CanEncrypt)
	m.Encryption = pick(m.Pairs, (*Pair).CanEncrypt, (*Pair).CanSign)
	return m
}

// pick chooses the best pair for a purpose: dedicated to it over dual
// use, then the one that expires last.
func pick(pairs []Pair, fits, other func(*Pair) bool) *Pair {
	var best *Pair
	for i := range pairs {
		p := &pairs[i]
		if !fits(p) {
			continue
		}
		if best == nil {
			best = p
			continue
		}
		pd, bd := !other(p), !other(best)
		if pd != bd {
			if pd {
				best = p
			}
			continue
		}
		if p.Cert.NotAfter.After(best.Cert.NotAfter) {
			best = p
		}
	}
	return best
}

// chain walks from c to its issuers among the file's certificates.
func (b *Bundle) chain(c *x509.Certificate) []*x509.Certificate {
	var chain []*x509.Certificate
	cur := c
	for len(chain) < 10 {
		if bytes.Equal(cur.RawIssuer, cur.RawSubject) && cur.CheckSignatureFrom(cur) == nil {
			break // self-signed: the root
		}
		i := slices.IndexFunc(b.Certs, func(p *x509.Certificate) bool {
			return bytes.Equal(p.RawSubject, cur.RawIssuer) && !p.Equal(cur) && cur.CheckSignatureFrom(p) == nil
		})
		if i < 0 || slices.ContainsFunc(chain, b.Certs[i].Equal) {
			break
		}
		chain = append(chain, b.Certs[i])
		cur = b.Certs[i]
	}
	return chain
}
