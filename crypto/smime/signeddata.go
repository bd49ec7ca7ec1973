package smime

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The SignedData reader (RFC 5652 §5). pkcs7.Parse was used first; it
// drops the encoding of the signed attributes (so they must be re-encoded
// to check the signature), does not read signers named by
// subjectKeyIdentifier (OpenSSL -keyid, version 3 SignerInfo) and ignores
// errors in the SignedData itself. This reader keeps every signed-attribute
// byte as sent and reports what it cannot read.

type parsedSignedData struct {
	content      []byte // eContent; nil when detached
	certificates []*x509.Certificate
	signers      []parsedSigner
}

type parsedSigner struct {
	ias         *issuerAndSerial // sid: issuerAndSerialNumber
	ski         []byte           // sid: [0] subjectKeyIdentifier
	digest      asn1.ObjectIdentifier
	signedAttrs []byte // the [0] IMPLICIT SET OF Attribute, whole TLV; nil if absent
	attrs       []rawAttr
	sigAlg      algID
	signature   []byte
}

var errSignedData = errors.New("not a readable SignedData")

// parseSignedDataDER reads a DER ContentInfo holding a SignedData.
func parseSignedDataDER(der []byte) (*parsedSignedData, error) {
	in := cryptobyte.String(der)
	var ci, sd cryptobyte.String
	var ct asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !in.Empty() ||
		!ci.ReadASN1ObjectIdentifier(&ct) {
		return nil, fmt.Errorf("%w: no ContentInfo", errSignedData)
	}
	if !ct.Equal(oidSigSignedData) {
		return nil, fmt.Errorf("%w: content type %v is not signed-data", errSignedData, ct)
	}
	tag0 := cbasn1.Tag(0).ContextSpecific().Constructed()
	var explicit cryptobyte.String
	if !ci.ReadASN1(&explicit, tag0) || !explicit.ReadASN1(&sd, cbasn1.SEQUENCE) {
		return nil, fmt.Errorf("%w: no SignedData", errSignedData)
	}
	var version int64
	var digestAlgs, encap cryptobyte.String
	if !sd.ReadASN1Integer(&version) || !sd.ReadASN1(&digestAlgs, cbasn1.SET) || !sd.ReadASN1(&encap, cbasn1.SEQUENCE) {
		return nil, fmt.Errorf("%w: bad SignedData header", errSignedData)
	}
	p := &parsedSignedData{}
	var eType asn1.ObjectIdentifier
	if !encap.ReadASN1ObjectIdentifier(&eType) {
		return nil, fmt.Errorf("%w: bad encapContentInfo", errSignedData)
	}
	if encap.PeekASN1Tag(tag0) {
		var e, octets cryptobyte.String
		if !encap.ReadASN1(&e, tag0) || !e.ReadASN1(&octets, cbasn1.OCTET_STRING) {
			return nil, fmt.Errorf("%w: bad eContent", errSignedData)
		}
		p.content = octets
		if p.content == nil {
			p.content = []byte{}
		}
	}
	if sd.PeekASN1Tag(tag0) {
		var certs cryptobyte.String
		if !sd.ReadASN1(&certs, tag0) {
			return nil, fmt.Errorf("%w: bad certificates", errSignedData)
		}
		for !certs.Empty() {
			var raw cryptobyte.String
			var tag cbasn1.Tag
			if !certs.ReadAnyASN1Element(&raw, &tag) {
				return nil, fmt.Errorf("%w: bad certificate set", errSignedData)
			}
			if tag != cbasn1.SEQUENCE {
				continue // other CertificateChoices (attribute certificates) do not sign mail
			}
			c, err := x509.ParseCertificate(raw)
			if err != nil {
				return nil, fmt.Errorf("%w: certificate: %v", errSignedData, err)
			}
			p.certificates = append(p.certificates, c)
		}
	}
	tag1 := cbasn1.Tag(1).ContextSpecific().Constructed()
	if sd.PeekASN1Tag(tag1) && !sd.SkipASN1(tag1) { // CRLs are not used
		return nil, fmt.Errorf("%w: bad crls", errSignedData)
	}
	var infos cryptobyte.String
	if !sd.ReadASN1(&infos, cbasn1.SET) {
		return nil, fmt.Errorf("%w: no signerInfos", errSignedData)
	}
	for !infos.Empty() {
		var si cryptobyte.String
		if !infos.ReadASN1(&si, cbasn1.SEQUENCE) {
			return nil, fmt.Errorf("%w: bad SignerInfo", errSignedData)
		}
		s, err := parseSignerInfo(si)
		if err != nil {
			return nil, err
		}
		p.signers = append(p.signers, s)
	}
	return p, nil
}

func parseSignerInfo(si cryptobyte.String) (parsedSigner, error) {
	var s parsedSigner
	var version int64
	if !si.ReadASN1Integer(&version) {
		return s, fmt.Errorf("%w: SignerInfo version", errSignedData)
	}
	skiTag := cbasn1.Tag(0).ContextSpecific()
	switch {
	case si.PeekASN1Tag(cbasn1.SEQUENCE):
		var ias, issuer cryptobyte.String
		serial := new(big.Int)
		if !si.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) || !ias.ReadASN1Integer(serial) {
			return s, fmt.Errorf("%w: signer issuerAndSerialNumber", errSignedData)
		}
		s.ias = &issuerAndSerial{Issuer: asn1.RawValue{FullBytes: issuer}, Serial: serial}
	case si.PeekASN1Tag(skiTag):
		var ski cryptobyte.String
		if !si.ReadASN1(&ski, skiTag) {
			return s, fmt.Errorf("%w: signer subjectKeyIdentifier", errSignedData)
		}
		s.ski = ski
	default:
		return s, fmt.Errorf("%w: unknown signer identifier", errSignedData)
	}
	var digest cryptobyte.String
	if !si.ReadASN1(&digest, cbasn1.SEQUENCE) || !digest.ReadASN1ObjectIdentifier(&s.digest) {
		return s, fmt.Errorf("%w: digestAlgorithm", errSignedData)
	}
	attrTag := cbasn1.Tag(0).ContextSpecific().Constructed()
	if si.PeekASN1Tag(attrTag) {
		var whole, body cryptobyte.String
		if !si.ReadASN1Element(&whole, attrTag) {
			return s, fmt.Errorf("%w: signedAttrs", errSignedData)
		}
		s.signedAttrs = whole
		body = whole
		if !body.ReadASN1(&body, attrTag) {
			return s, fmt.Errorf("%w: signedAttrs", errSignedData)
		}
		for !body.Empty() {
			var a cryptobyte.String
			if !body.ReadASN1Element(&a, cbasn1.SEQUENCE) {
				return s, fmt.Errorf("%w: signed attribute", errSignedData)
			}
			var ra rawAttr
			if rest, err := asn1.Unmarshal(a, &ra); err != nil || len(rest) > 0 {
				return s, fmt.Errorf("%w: signed attribute", errSignedData)
			}
			s.attrs = append(s.attrs, ra)
		}
	}
	var alg cryptobyte.String
	if !si.ReadASN1Element(&alg, cbasn1.SEQUENCE) {
		return s, fmt.Errorf("%w: signatureAlgorithm", errSignedData)
	}
	if rest, err := asn1.Unmarshal(alg, &s.sigAlg); err != nil || len(rest) > 0 {
		return s, fmt.Errorf("%w: signatureAlgorithm", errSignedData)
	}
	var sig cryptobyte.String
	if !si.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return s, fmt.Errorf("%w: signature", errSignedData)
	}
	s.signature = sig
	return s, nil // unsignedAttrs, if any, are not needed
}

// signedBytes is what the signature covers when signed attributes are
// present: their encoding with the [0] IMPLICIT tag replaced by SET OF
// (RFC 5652 §5.4).
func (s *parsedSigner) signedBytes() []byte {
	b := append([]byte(nil), s.signedAttrs...)
	b[0] = 0x31
	return b
}

// findCert returns the certificate the signer identifier names.
func (s *parsedSigner) findCert(certs []*x509.Certificate) *x509.Certificate {
	for _, c := range certs {
		if s.ias != nil && s.ias.matches(c) {
			return c
		}
		if s.ski != nil && len(c.SubjectKeyId) > 0 && string(c.SubjectKeyId) == string(s.ski) {
			return c
		}
	}
	return nil
}
