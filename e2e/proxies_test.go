package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"smimeproxy/internal/mailtest"
	imapproxy "smimeproxy/proxy/imap"
	smtpproxy "smimeproxy/proxy/smtp"
)

// proxyTLS makes a server certificate for a proxy's client side in
// dir/sub; clients trust its CertFile.
func proxyTLS(t *testing.T, dir, sub string) *mailtest.ServerTLS {
	t.Helper()
	d := filepath.Join(dir, sub)
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := mailtest.NewServerTLS(d)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// serveSMTPProxy starts the submission proxy with opts on a loopback
// port until ctx ends or the test is over, and returns its address; a
// Serve error fails the test.
func serveSMTPProxy(t *testing.T, ctx context.Context, opts smtpproxy.Options) string {
	t.Helper()
	p, err := smtpproxy.NewProxy(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, l) }()
	t.Cleanup(func() {
		p.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// serveIMAPProxy starts the IMAP proxy with opts (Listen on a loopback
// port) until ctx ends or the test is over; logs, which opts.Logger
// writes to, is shown when the test failed.
func serveIMAPProxy(t *testing.T, ctx context.Context, opts imapproxy.Options, logs *lockedBuffer) *imapproxy.Proxy {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	p, err := imapproxy.NewProxy(opts)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx) }()
	t.Cleanup(func() {
		p.Close()
		<-served
		if t.Failed() {
			t.Logf("IMAP proxy log:\n%s", logs.String())
		}
	})
	return p
}
