package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

type countingSession struct {
	imapserver.Session
	logins *atomic.Int32
}

func (s *countingSession) Login(u, p string) error {
	s.logins.Add(1)
	return s.Session.Login(u, p)
}

// upstreamIMAP starts an in-memory IMAP server on loopback; mode is the TLS
// mode clients must use. It returns the address, the TLS config that trusts
// it, and the LOGIN counter.
func upstreamIMAP(t *testing.T, mode string) (string, *tls.Config, *atomic.Int32) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}

	mem := imapmemserver.New()
	mem.AddUser(imapmemserver.NewUser("alice@example.test", "mail-pw"))
	var logins atomic.Int32
	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &countingSession{Session: mem.NewSession(), logins: &logins}, nil, nil
		},
		InsecureAuth: mode == TLSNone,
	}
	if mode == TLSStartTLS {
		opts.TLSConfig = serverTLS
	}
	srv := imapserver.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if mode == TLSImplicit {
		ln = tls.NewListener(ln, serverTLS)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), clientTLS, &logins
}

func TestIMAPAuthenticator(t *testing.T) {
	for _, mode := range []string{TLSImplicit, TLSStartTLS, TLSNone} {
		t.Run(mode, func(t *testing.T) {
			addr, clientTLS, logins := upstreamIMAP(t, mode)
			clk := newFakeClock()
			a, err := NewIMAPAuthenticator(IMAPAuthOptions{Addr: addr, TLS: mode, TLSConfig: clientTLS, Clock: clk, CacheTTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := a.Authenticate(ctx, "alice@example.test", "wrong"); !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("wrong password: %v", err)
			}
			if err := a.Authenticate(ctx, "alice@example.test", "mail-pw"); err != nil {
				t.Fatalf("good login: %v", err)
			}
			if err := a.Authenticate(ctx, "alice@example.test", "mail-pw"); err != nil {
				t.Fatal(err)
			}
			if n := logins.Load(); n != 2 {
				t.Fatalf("upstream saw %d LOGINs, want 2 (second good login served from the cache)", n)
			}
			// Failures are never cached, and a cached success does not let
			// another password in.
			if err := a.Authenticate(ctx, "alice@example.test", "wrong"); !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("wrong password after a cached success: %v", err)
			}
			clk.Advance(time.Minute)
			if err := a.Authenticate(ctx, "alice@example.test", "mail-pw"); err != nil {
				t.Fatal(err)
			}
			if n := logins.Load(); n != 4 {
				t.Fatalf("upstream saw %d LOGINs, want 4 (cache entry expired)", n)
			}
			a.Forget("alice@example.test")
			_ = a.Authenticate(ctx, "alice@example.test", "mail-pw")
			if n := logins.Load(); n != 5 {
				t.Fatalf("Forget did not drop the cached login (%d LOGINs)", n)
			}
		})
	}
}

func TestIMAPAuthenticatorUnavailable(t *testing.T) {
	// A listener that accepts and never greets: the deadline must end the wait.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	a, err := NewIMAPAuthenticator(IMAPAuthOptions{Addr: ln.Addr().String(), TLS: TLSNone, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = a.Authenticate(context.Background(), "alice@example.test", "pw")
	if !errors.Is(err, ErrUpstreamUnavailable) {
		t.Fatalf("silent server: %v", err)
	}
	// The server never answers, so without the deadline this would wait
	// until the test binary's timeout; 20 s leaves a loaded CI machine
	// plenty of room above the 200 ms deadline.
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("deadline not applied: waited %v for a silent server (deadline 200ms)", d)
	}
	// A closed port.
	ln.Close()
	if err := a.Authenticate(context.Background(), "alice@example.test", "pw"); !errors.Is(err, ErrUpstreamUnavailable) {
		t.Fatalf("closed port: %v", err)
	}
	if _, err := NewIMAPAuthenticator(IMAPAuthOptions{Addr: "x:1", TLS: "ssl"}); err == nil {
		t.Fatal("unknown TLS mode accepted")
	}
}
