package smime

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"slices"
	"strings"
)

// checkChain builds a chain from the signer to opts.Roots using the
// message's certificates and opts.Intermediates.
func checkChain(res *VerifyResult, opts VerifyOptions) bool {
	if opts.Roots == nil {
		res.Reasons = append(res.Reasons, "no trusted roots given; the signer cannot be trusted")
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range res.Certificates {
		inter.AddCert(c)
	}
	for _, c := range opts.Intermediates {
		inter.AddCert(c)
	}
	vo := x509.VerifyOptions{Roots: opts.Roots, Intermediates: inter, CurrentTime: opts.Now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	chains, err := res.Signer.Verify(vo)
	if err != nil {
		res.Reasons = append(res.Reasons, "the signer's certificate chain is not trusted: "+err.Error())
		return false
	}
	res.Chain = chains[0]
	// Checked apart from chain building so the reason says what is wrong,
	// on the chains already built: a second Verify would build them and
	// check their signatures again.
	if !slices.ContainsFunc(chains, chainAllowsEmail) {
		res.Reasons = append(res.Reasons, "the signer's certificate is not for e-mail protection (extended key usage)")
		return false
	}
	return true
}

// chainAllowsEmail applies the extended key usage rule x509.Verify
// applies for ExtKeyUsageEmailProtection: every certificate of the chain
// that lists extended key usages lists emailProtection or any.
func chainAllowsEmail(chain []*x509.Certificate) bool {
	for _, c := range chain {
		if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
			continue
		}
		if !slices.ContainsFunc(c.ExtKeyUsage, func(u x509.ExtKeyUsage) bool {
			return u == x509.ExtKeyUsageEmailProtection || u == x509.ExtKeyUsageAny
		}) {
			return false
		}
	}
	return true
}

// checkUsage requires digitalSignature or nonRepudiation when the
// certificate restricts key usage (RFC 8550 §4.4.2).
func checkUsage(res *VerifyResult) bool {
	ku := res.Signer.KeyUsage
	if ku == 0 || ku&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) != 0 {
		return true
	}
	res.Reasons = append(res.Reasons, "the signer's certificate does not allow digital signatures (key usage)")
	return false
}

var oidEmailAddressAttr = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// CertAddresses returns a certificate's e-mail addresses: the rfc822Names
// of subjectAltName, or the subject's emailAddress attributes when there
// are none (RFC 8550 §3).
func CertAddresses(c *x509.Certificate) []string {
	if len(c.EmailAddresses) > 0 {
		return c.EmailAddresses
	}
	var out []string
	for _, n := range c.Subject.Names {
		if n.Type.Equal(oidEmailAddressAttr) {
			if s, ok := n.Value.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// checkAddress compares the From address(es) with the signer's addresses.
func checkAddress(res *VerifyResult, from string) {
	certAddrs := CertAddresses(res.Signer)
	if len(certAddrs) == 0 {
		res.Reasons = append(res.Reasons, "warning: the signer's certificate names no e-mail address")
		return
	}
	if from == "" {
		res.Reasons = append(res.Reasons, "warning: the message has no From address to compare with the signer's")
		return
	}
	// Display names in charsets net/mail does not know must not hide the
	// address, so undecodable encoded-words are taken as they are.
	ap := mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil }}}
	list, err := ap.ParseList(from)
	if err != nil || len(list) == 0 {
		res.Reasons = append(res.Reasons, fmt.Sprintf("warning: the From address %q cannot be parsed", from))
		return
	}
	for _, a := range list {
		found := false
		for _, ca := range certAddrs {
			if strings.EqualFold(ca, a.Address) {
				found = true
			}
		}
		if !found {
			res.Reasons = append(res.Reasons, fmt.Sprintf("warning: From address %s is not the signer's (%s)", a.Address, strings.Join(certAddrs, ", ")))
			return
		}
	}
	res.FromMatches = true
}
