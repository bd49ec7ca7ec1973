package smime

import (
	"crypto/x509"
	"encoding/asn1"
	"testing"
)

// TestChainAllowsEmail guards the extended key usage check that replaced
// a second x509.Verify: it must refuse a chain wherever a certificate
// (leaf, intermediate or root) restricts its purposes without e-mail.
func TestChainAllowsEmail(t *testing.T) {
	cert := func(ekus []x509.ExtKeyUsage, unknown ...asn1.ObjectIdentifier) *x509.Certificate {
		return &x509.Certificate{ExtKeyUsage: ekus, UnknownExtKeyUsage: unknown}
	}
	none := cert(nil)
	email := cert([]x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection})
	anyEKU := cert([]x509.ExtKeyUsage{x509.ExtKeyUsageAny})
	server := cert([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	serverEmail := cert([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageEmailProtection})
	unknownOnly := cert(nil, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 21, 5})
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		want  bool
	}{
		{"no EKU anywhere", []*x509.Certificate{none, none, none}, true},
		{"leaf email", []*x509.Certificate{email, none, none}, true},
		{"leaf server", []*x509.Certificate{server, none, none}, false},
		{"leaf server and email", []*x509.Certificate{serverEmail, none}, true},
		{"leaf any", []*x509.Certificate{anyEKU, none}, true},
		{"intermediate server", []*x509.Certificate{email, server, none}, false},
		{"intermediate any", []*x509.Certificate{email, anyEKU, none}, true},
		{"root server", []*x509.Certificate{email, email, server}, false},
		{"only an unknown EKU", []*x509.Certificate{unknownOnly, none}, false},
	} {
		if got := chainAllowsEmail(tc.chain); got != tc.want {
			t.Errorf("%s: chainAllowsEmail = %v, want %v", tc.name, got, tc.want)
		}
	}
}
