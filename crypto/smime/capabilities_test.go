package smime

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"testing"
)

func TestCapabilitiesRoundTrip(t *testing.T) {
	der, err := MarshalCapabilities(DefaultCapabilities())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCapabilities(der)
	if err != nil {
		t.Fatal(err)
	}
	if !capsEqual(got, DefaultCapabilities()) {
		t.Fatalf("round trip = %v, want %v", got, DefaultCapabilities())
	}
	if !SupportsGCM(got) || !SupportsOAEP(got) {
		t.Errorf("defaults do not announce GCM and OAEP: %v", got)
	}
	// Output must not alias the input.
	for i := range der {
		der[i] = 0
	}
	if !capsEqual(got, DefaultCapabilities()) {
		t.Error("parsed capabilities share memory with the input")
	}
}

// TestCapabilityOAEPParamsSHA256 decodes the announced RSAES-OAEP
// parameters: hash SHA-256 and MGF1 with SHA-256 (RFC 4055 §4.1), so
// senders do not fall back to the SHA-1 default.
func TestCapabilityOAEPParamsSHA256(t *testing.T) {
	var oaep []byte
	for _, c := range DefaultCapabilities() {
		if c.OID.Equal(OIDCapRSAOAEP) {
			oaep = c.Params
		}
	}
	var p struct {
		Hash algID `asn1:"explicit,tag:0"`
		MGF  algID `asn1:"explicit,tag:1"`
	}
	if rest, err := asn1.Unmarshal(oaep, &p); err != nil || len(rest) > 0 {
		t.Fatalf("OAEP params %x: %v", oaep, err)
	}
	var mgfHash algID
	if _, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mgfHash); err != nil {
		t.Fatal(err)
	}
	if !p.Hash.Algorithm.Equal(oidSigSHA256) || !p.MGF.Algorithm.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}) || !mgfHash.Algorithm.Equal(oidSigSHA256) {
		t.Errorf("OAEP params = %+v, MGF hash %v", p, mgfHash.Algorithm)
	}
}

func TestParseCapabilitiesRejects(t *testing.T) {
	good, err := MarshalCapabilities([]Capability{{OID: OIDCapAES128CBC}})
	if err != nil {
		t.Fatal(err)
	}
	for name, der := range map[string][]byte{
		"empty":          nil,
		"trailing":       append(bytes.Clone(good), 0),
		"not a sequence": {0x04, 0x01, 0x00},
		"truncated":      good[:len(good)-1],
	} {
		if caps, err := ParseCapabilities(der); err == nil {
			t.Errorf("%s: parsed %v, want an error", name, caps)
		}
	}
	if _, err := MarshalCapabilities([]Capability{{OID: asn1.ObjectIdentifier{1}}}); err == nil {
		t.Error("an invalid OID was encoded")
	} else if errors.Unwrap(err) == nil {
		t.Errorf("error %v does not wrap its cause", err)
	}
}

func FuzzParseCapabilities(f *testing.F) {
	der, _ := MarshalCapabilities(DefaultCapabilities())
	f.Add(der)
	f.Fuzz(func(t *testing.T, in []byte) {
		caps, err := ParseCapabilities(in)
		if err != nil {
			return
		}
		out, err := MarshalCapabilities(caps)
		if err != nil {
			return // e.g. a one-arc OID parses but does not encode
		}
		again, err := ParseCapabilities(out)
		if err != nil || !capsEqual(again, caps) {
			t.Fatalf("re-encoding %x: %v, %v != %v", out, err, again, caps)
		}
	})
}
