package smime

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// Object identifiers of the signed attributes and signature algorithms
// (RFC 5652 §11, RFC 8551 §2.5, RFC 3370, RFC 5754, RFC 4055).
var (
	oidSigData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSigSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidAttrContentType  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttrMessageDigst = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAttrSigningTime  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidAttrSMIMECaps    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15}
	oidAttrEncKeyPref   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 11}
	oidAttrMSEncKeyPref = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 16, 4}

	oidSigMD5    = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}
	oidSigSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSigSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSigSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSigSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidSigSHA224 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}

	oidSigRSA       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSigRSAMD5    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}
	oidSigRSASHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSigRSAPSS    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidSigRSASHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSigRSASHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSigRSASHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidSigRSASHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 14}
	oidSigECDSASHA1 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidSigECDSA256  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidSigECDSA384  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidSigECDSA512  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidSigECDSA224  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 1}
	oidSigECPublic  = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
)

func errTrailing(rest []byte) error {
	if len(rest) > 0 {
		return errors.New("trailing data")
	}
	return nil
}

type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

func issuerAndSerialOf(c *x509.Certificate) issuerAndSerial {
	return issuerAndSerial{Issuer: asn1.RawValue{FullBytes: c.RawIssuer}, Serial: c.SerialNumber}
}

func (ias issuerAndSerial) matches(c *x509.Certificate) bool {
	return ias.Serial != nil && c.SerialNumber != nil && ias.Serial.Cmp(c.SerialNumber) == 0 &&
		bytes.Equal(ias.Issuer.FullBytes, c.RawIssuer)
}

// encKeyPrefValue encodes SMIMEEncryptionKeyPreference with the
// issuerAndSerialNumber choice ([0] IMPLICIT, RFC 8551 §2.5.3).
func encKeyPrefValue(c *x509.Certificate) ([]byte, error) {
	inner, err := asn1.Marshal(issuerAndSerialOf(c))
	if err != nil {
		return nil, err
	}
	var seq asn1.RawValue
	if _, err := asn1.Unmarshal(inner, &seq); err != nil {
		return nil, err
	}
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: seq.Bytes})
}

// encKeyPrefMatches reports whether an SMIMEEncryptionKeyPreference value
// (RFC 8551 CHOICE, or the Microsoft attribute's bare IssuerAndSerialNumber)
// names cert.
func encKeyPrefMatches(val []byte, microsoft bool, c *x509.Certificate) bool {
	if microsoft {
		var ias issuerAndSerial
		rest, err := asn1.Unmarshal(val, &ias)
		return err == nil && len(rest) == 0 && ias.matches(c)
	}
	var choice asn1.RawValue
	if rest, err := asn1.Unmarshal(val, &choice); err != nil || len(rest) > 0 || choice.Class != asn1.ClassContextSpecific {
		return false
	}
	switch choice.Tag {
	case 0: // issuerAndSerialNumber
		var ias issuerAndSerial
		seq, _ := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: choice.Bytes})
		rest, err := asn1.Unmarshal(seq, &ias)
		return err == nil && len(rest) == 0 && ias.matches(c)
	case 2: // subjectAltKeyIdentifier
		return len(c.SubjectKeyId) > 0 && bytes.Equal(choice.Bytes, c.SubjectKeyId)
	case 1: // rKeyId: SKI plus optional date/other
		var kid struct {
			SKI []byte
			R   asn1.RawValue `asn1:"optional"`
			O   asn1.RawValue `asn1:"optional"`
		}
		seq, _ := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: choice.Bytes})
		_, err := asn1.Unmarshal(seq, &kid)
		return err == nil && len(c.SubjectKeyId) > 0 && bytes.Equal(kid.SKI, c.SubjectKeyId)
	}
	return false
}

// attribute is one CMS Attribute with its values kept as DER.
type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue `asn1:"set"`
}

// newAttribute wraps one DER value into an Attribute.
func newAttribute(oid asn1.ObjectIdentifier, value []byte) ([]byte, error) {
	return asn1.Marshal(attribute{Type: oid, Values: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: value}})
}

// signedAttributes builds the DER SET OF Attribute contents (sorted, as DER
// requires) for a SignerInfo: contentType, signingTime, messageDigest,
// SMIMECapabilities and, given an encryption certificate, both forms of
// SMIMEEncryptionKeyPreference.
func signedAttributes(digest []byte, at time.Time, encCert *x509.Certificate) ([][]byte, error) {
	var vals []struct {
		oid asn1.ObjectIdentifier
		v   any
	}
	add := func(oid asn1.ObjectIdentifier, v any) {
		vals = append(vals, struct {
			oid asn1.ObjectIdentifier
			v   any
		}{oid, v})
	}
	caps, err := MarshalCapabilities(DefaultCapabilities())
	if err != nil {
		return nil, err
	}
	add(oidAttrContentType, oidSigData)
	add(oidAttrSigningTime, at.UTC().Truncate(time.Second))
	add(oidAttrMessageDigst, digest)
	add(oidAttrSMIMECaps, asn1.RawValue{FullBytes: caps})
	if encCert != nil {
		pref, err := encKeyPrefValue(encCert)
		if err != nil {
			return nil, err
		}
		add(oidAttrEncKeyPref, asn1.RawValue{FullBytes: pref})
		add(oidAttrMSEncKeyPref, issuerAndSerialOf(encCert))
	}
	out := make([][]byte, 0, len(vals))
	for _, a := range vals {
		v, err := asn1.Marshal(a.v)
		if err != nil {
			return nil, fmt.Errorf("signed attribute %v: %w", a.oid, err)
		}
		enc, err := newAttribute(a.oid, v)
		if err != nil {
			return nil, fmt.Errorf("signed attribute %v: %w", a.oid, err)
		}
		out = append(out, enc)
	}
	slices.SortFunc(out, bytes.Compare)
	return out, nil
}
