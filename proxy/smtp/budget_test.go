package smtp

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"smimeproxy/policy"
)

// TestInFlightBudget: a message that does not fit the proxy-wide budget of
// held bytes gets 452 4.3.1 (the client retries later), and the budget is
// given back after each message.
func TestInFlightBudget(t *testing.T) {
	e := newEnv(t, envOptions{})
	p, err := NewProxy(Options{
		ListenTLS: TLSNone, Upstream: e.up.SMTPAddr(), UpstreamTLS: TLSNone, MaxInFlightBytes: 32 << 10,
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
	c := e.clientAt(l.Addr().String(), alice)

	big := compose(alice, bob, "", "", "big", strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 1000))
	err = send(c, alice, []string{bob}, big)
	if smtpCode(err) != 452 || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("message over the budget: %v, want 452 4.3.1", err)
	}
	for i := range 3 {
		if err := send(c, alice, []string{bob}, compose(alice, bob, "", "", "small", "fits")); err != nil {
			t.Fatalf("small message %d: %v (budget not given back?)", i, err)
		}
	}
	if n := len(e.up.Transactions()); n != 3 {
		t.Errorf("%d transactions upstream, want 3", n)
	}
}
