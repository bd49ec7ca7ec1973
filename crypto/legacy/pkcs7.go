package legacy

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
)

var oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}

// signedData is RFC 5652's SignedData, decoded only as far as its
// certificates.
type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	ContentInfo      asn1.RawValue
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      asn1.RawValue
}

// readPKCS7 takes the certificates of a PKCS#7 / CMS SignedData, the
// "certs-only" bundle (.p7b, .p7c) CAs hand out.
func readPKCS7(der []byte, b *Bundle) error {
	var ci contentInfo
	if err := unmarshalBER(der, &ci); err != nil {
		return fmt.Errorf("PKCS#7: %w", err)
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return fmt.Errorf("PKCS#7 content %v: %w", ci.ContentType, ErrUnsupported)
	}
	var sd signedData
	if err := unmarshalBER(ci.Content.Bytes, &sd); err != nil {
		return fmt.Errorf("PKCS#7 SignedData: %w", err)
	}
	certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
	if err != nil {
		return fmt.Errorf("PKCS#7 certificates: %w", err)
	}
	for _, c := range certs {
		b.addCert(c, "")
	}
	return nil
}
