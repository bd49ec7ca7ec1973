package smime

import (
	"encoding/asn1"
	"testing"
)

// TestAppendOIDMatchesMarshal: the allocation-free OID encoder writes
// what encoding/asn1 writes, for the OIDs of this package and for arcs
// that need several base-128 octets.
func TestAppendOIDMatchesMarshal(t *testing.T) {
	for _, oid := range []asn1.ObjectIdentifier{
		oidContentData, oidEnvelopedData, oidAuthEnvelopedData, oidSigData, oidSigSignedData,
		oidEncAES256CBC, oidKeyRSA, oidECDHStdSHA256KDF, OIDKeyRecoveryAgent,
		{2, 999, 3}, {1, 2, 268435455, 16384, 127, 128},
	} {
		want, err := asn1.Marshal(oid)
		if err != nil {
			t.Fatal(err)
		}
		got := appendOID([]byte{0xaa}, oid)
		if string(got[1:]) != string(want) || got[0] != 0xaa || oidLen(oid) != len(want) {
			t.Errorf("%v: appendOID % x (len %d), asn1.Marshal % x", oid, got[1:], oidLen(oid), want)
		}
	}
}
