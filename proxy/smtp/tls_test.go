package smtp

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"smimeproxy/internal/mailtest"
	"smimeproxy/policy"
)

// TestListenerTLS: with STARTTLS, AUTH is refused before TLS and works
// after it; with implicit TLS, the connection is TLS from the first byte.
func TestListenerTLS(t *testing.T) {
	e := newEnv(t, envOptions{})
	srvTLS, err := mailtest.NewServerTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := func(mode string) string {
		p, err := NewProxy(Options{
			ListenTLS: mode, TLSConfig: srvTLS.Server, Upstream: e.up.SMTPAddr(), UpstreamTLS: TLSNone,
			Keys: e.ids, Policy: policy.Policy{Sign: policy.Always, Encrypt: policy.WhenPossible},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go p.Serve(e.ctx, l)
		t.Cleanup(func() { p.Close() })
		return l.Addr().String()
	}
	clientTLS := &tls.Config{RootCAs: srvTLS.Roots, ServerName: "127.0.0.1"}
	msg := compose(alice, bob, "", "", "tls", "over tls")

	addr := start(TLSStartTLS)
	plain, err := gosmtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Auth(sasl.NewPlainClient("", alice, mailPW)); err == nil {
		t.Errorf("AUTH before STARTTLS accepted")
	}
	c, err := gosmtp.DialStartTLS(addr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", alice, mailPW)); err != nil {
		t.Fatalf("AUTH after STARTTLS: %v", err)
	}
	if err := send(c, alice, []string{bob}, msg); err != nil {
		t.Fatalf("send over STARTTLS: %v", err)
	}

	c2, err := gosmtp.DialTLS(start(TLSImplicit), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Auth(sasl.NewPlainClient("", alice, mailPW)); err != nil {
		t.Fatalf("AUTH over implicit TLS: %v", err)
	}
	if err := send(c2, alice, []string{bob}, msg); err != nil {
		t.Fatalf("send over implicit TLS: %v", err)
	}
	if n := len(e.up.Envelopes()); n != 2 {
		t.Errorf("%d messages reached the upstream, want 2", n)
	}
}
