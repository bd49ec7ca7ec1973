package smime

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
)

// Capability OIDs this package advertises and recognises (RFC 8551 §2.5.2,
// RFC 3565, RFC 5084, RFC 4055).
var (
	OIDCapAES256GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
	OIDCapAES128GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6}
	OIDCapAES256CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	OIDCapAES192CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	OIDCapAES128CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	OIDCapRSAOAEP   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
)

// Capability is one SMIMECapability (RFC 8551 §2.5.2): an algorithm the
// sender can decrypt, with its DER parameters (nil when absent).
type Capability struct {
	OID    asn1.ObjectIdentifier
	Params []byte
}

// SupportsGCM reports whether caps advertise AES-GCM (either key size),
// i.e. whether AuthEnvelopedData may be sent to their owner.
func SupportsGCM(caps []Capability) bool {
	return slices.ContainsFunc(caps, func(c Capability) bool {
		return c.OID.Equal(OIDCapAES256GCM) || c.OID.Equal(OIDCapAES128GCM)
	})
}

// SupportsOAEP reports whether caps advertise RSAES-OAEP key transport.
func SupportsOAEP(caps []Capability) bool {
	return slices.ContainsFunc(caps, func(c Capability) bool { return c.OID.Equal(OIDCapRSAOAEP) })
}

// DefaultCapabilities lists, in order of preference, what smimeproxy
// decrypts: AES-GCM, AES-CBC and RSAES-OAEP with SHA-256 (RFC 4055 §4.1
// parameters). Signatures made here announce it, and the gateway assumes
// it for its own users' certificates.
func DefaultCapabilities() []Capability {
	return []Capability{
		{OID: OIDCapAES256GCM},
		{OID: OIDCapAES128GCM},
		{OID: OIDCapAES256CBC},
		{OID: OIDCapAES128CBC},
		{OID: OIDCapRSAOAEP, Params: capOAEPSHA256Params()},
	}
}

type algID struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

// capOAEPSHA256Params encodes RSAES-OAEP-params {hashFunc sha256, maskGenFunc
// mgf1(sha256)}; the hash AlgorithmIdentifiers carry no parameters (RFC 5754).
func capOAEPSHA256Params() []byte {
	sha256ID := algID{Algorithm: oidSigSHA256}
	mgfParam, _ := asn1.Marshal(sha256ID)
	mgf := algID{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}, Parameters: asn1.RawValue{FullBytes: mgfParam}}
	der, err := asn1.Marshal(struct {
		Hash algID `asn1:"explicit,tag:0"`
		MGF  algID `asn1:"explicit,tag:1"`
	}{sha256ID, mgf})
	if err != nil {
		panic("smime: encoding constant OAEP parameters: " + err.Error())
	}
	return der
}

type capabilityASN1 struct {
	OID    asn1.ObjectIdentifier
	Params asn1.RawValue `asn1:"optional"`
}

// MarshalCapabilities encodes caps as the DER of an SMIMECapabilities
// value (RFC 8551 §2.5.2); empty Params are left out.
func MarshalCapabilities(caps []Capability) ([]byte, error) {
	seq := make([]capabilityASN1, len(caps))
	for i, c := range caps {
		seq[i].OID = c.OID
		if len(c.Params) > 0 {
			seq[i].Params = asn1.RawValue{FullBytes: c.Params}
		}
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		return nil, fmt.Errorf("SMIMECapabilities: %w", err)
	}
	return der, nil
}

// ParseCapabilities reads the DER of an SMIMECapabilities value; trailing
// bytes are an error. The result shares no memory with der.
func ParseCapabilities(der []byte) ([]Capability, error) {
	var seq []capabilityASN1
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("SMIMECapabilities: %w", errors.Join(err, errTrailing(rest)))
	}
	caps := make([]Capability, len(seq))
	for i, c := range seq {
		caps[i].OID = c.OID
		if len(c.Params.FullBytes) > 0 {
			caps[i].Params = bytes.Clone(c.Params.FullBytes)
		}
	}
	return caps, nil
}
