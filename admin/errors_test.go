package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"smimeproxy/identity"
)

// brokenIdentity fails List with an internal error whose text must stay
// on the server.
type brokenIdentity struct{ Identity }

var errInternal = errors.New("open /var/lib/smimeproxy/secret-path.db: disk I/O error")

func (brokenIdentity) List(context.Context) ([]identity.DigitalID, error) { return nil, errInternal }

type downUpstream struct{}

func (downUpstream) Authenticate(context.Context, string, identity.Secret) error {
	return identity.ErrUpstreamUnavailable
}

func TestInternalErrorTextStaysInTheLog(t *testing.T) {
	logs := &syncBuffer{}
	srv := httptest.NewUnstartedServer(nil)
	h, err := New(Options{Identity: brokenIdentity{}, Auth: downUpstream{}, AdminToken: adminToken,
		PublicURL: "http://" + srv.Listener.Addr().String(), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()
	hs := &harness{t: t, srv: srv, h: h, logs: logs}

	r := hs.do(call{method: "GET", path: "/api/v1/identities", bearer: adminToken})
	id := r.header.Get("X-Request-Id")
	if r.status != http.StatusInternalServerError || r.errCode() != "internal" || !strings.Contains(string(r.body), id) {
		t.Fatalf("internal error reply: %v", r)
	}
	if strings.Contains(string(r.body), "secret-path") || strings.Contains(string(r.body), "disk I/O") {
		t.Fatalf("internal detail sent to the client: %s", r.body)
	}
	var logged bool
	for _, line := range strings.Split(logs.String(), "\n") {
		logged = logged || strings.Contains(line, id) && strings.Contains(line, "secret-path.db")
	}
	if !logged {
		t.Fatalf("cause not logged with request id %s:\n%s", id, logs.String())
	}
	assertErrorShape(t, "internal", r)

	// The mail server cannot be asked: 503, and no back-off is counted.
	for i := 0; i < loginFreeFailures+2; i++ {
		r = hs.do(call{method: "POST", path: "/api/v1/lock", user: alice, pass: aliceMail, body: LockRequest{Email: alice}})
		if r.status != http.StatusServiceUnavailable || r.errCode() != "upstream_unavailable" {
			t.Fatalf("upstream down, try %d: %v", i, r)
		}
	}
}
