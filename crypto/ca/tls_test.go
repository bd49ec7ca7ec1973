package ca

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestTLSCertificate(t *testing.T) {
	now := time.Now()
	c, dir := openFastCA(t, Options{RootKeyType: KeyP256, Now: func() time.Time { return now }})
	pair, err := c.TLSCertificate([]string{"Mail.Example.Test", "192.0.2.7", "mail.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, TLSKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v (%v), want 0600", TLSKeyFile, fi.Mode().Perm(), err)
	}
	leaf := pair.Leaf
	wantDNS := []string{"localhost", "127.0.0.1", "mail.example.test", "192.0.2.7"}
	if !slices.Equal(leaf.DNSNames, wantDNS) {
		t.Errorf("DNS names %v, want %v", leaf.DNSNames, wantDNS)
	}
	for _, ip := range []string{"127.0.0.1", "::1", "192.0.2.7"} {
		if !slices.ContainsFunc(leaf.IPAddresses, net.ParseIP(ip).Equal) {
			t.Errorf("IP SANs %v lack %s", leaf.IPAddresses, ip)
		}
	}
	if leaf.IsCA || !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("IsCA %v EKU %v", leaf.IsCA, leaf.ExtKeyUsage)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.Root())
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "mail.example.test", "192.0.2.7"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}

	// A real handshake over loopback, trusting only the CA's root.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	conn.Close()

	same, err := c.TLSCertificate([]string{"192.0.2.7", "mail.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if same.Leaf.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Error("same names (other order) reissued the certificate")
	}
	other, err := c.TLSCertificate([]string{"mail.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if other.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("changed names did not reissue the certificate")
	}
	if !samePublicKey(other.Leaf.PublicKey, leaf.PublicKey) {
		t.Error("reissue replaced the TLS key")
	}
	now = other.Leaf.NotAfter.Add(-10 * 24 * time.Hour)
	renewed, err := c.TLSCertificate([]string{"mail.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if !renewed.Leaf.NotAfter.After(other.Leaf.NotAfter) {
		t.Error("certificate near expiry was not renewed")
	}
}
