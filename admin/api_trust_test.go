package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"smimeproxy/internal/mailtest"
)

func TestTrustRoots(t *testing.T) {
	h := newHarness(t)
	other := mailtest.OtherPKI(t)
	pemRoot := string(mailtest.CertPEM(other.Root))
	r := h.do(call{method: "POST", path: "/api/v1/trust/roots", bearer: adminToken, body: TrustAddRequest{PEM: pemRoot}})
	var added RootView
	r.decode(t, &added)
	if r.status != http.StatusCreated || added.Fingerprint == "" || added.FromConfig {
		t.Fatalf("add: %v", r)
	}
	r = h.do(call{method: "GET", path: "/api/v1/trust/roots", bearer: adminToken})
	var list RootsReply
	r.decode(t, &list)
	found := false
	for _, root := range list.Roots {
		found = found || root.Fingerprint == added.Fingerprint
	}
	if !found {
		t.Fatalf("list after add: %v", r)
	}
	user := mailtest.NewPKI(t).User(t, "carol@example.test", mailtest.P256)
	for name, body := range map[string]string{"not PEM": "hello", "end entity": string(mailtest.CertPEM(user.SignCert))} {
		if r := h.do(call{method: "POST", path: "/api/v1/trust/roots", bearer: adminToken, body: TrustAddRequest{PEM: body}}); r.status != http.StatusBadRequest {
			t.Errorf("add %s: %v", name, r)
		}
	}
	if r := h.do(call{method: "DELETE", path: "/api/v1/trust/roots/" + added.Fingerprint, bearer: adminToken}); r.status != http.StatusOK {
		t.Fatalf("remove: %v", r)
	}
	if r := h.do(call{method: "DELETE", path: "/api/v1/trust/roots/" + added.Fingerprint, bearer: adminToken}); r.errCode() != "not_trusted" {
		t.Fatalf("remove twice: %v", r)
	}
}

func TestPublicEndpoints(t *testing.T) {
	h := newHarness(t)
	r := h.do(call{method: "GET", path: "/ca.pem"})
	if r.status != http.StatusOK || string(r.body) != string(mailtest.CertPEM(h.ca.Root())) {
		t.Fatalf("/ca.pem: %v", r)
	}
	if r := h.do(call{method: "GET", path: "/healthz"}); r.status != http.StatusOK || string(r.body) != "ok\n" {
		t.Fatalf("/healthz: %v", r)
	}
	h.enroll(alice, aliceMail, "alice id password", true)
	h.do(call{method: "POST", path: "/api/v1/unlock", user: alice, pass: aliceMail, body: UnlockRequest{Email: alice, Password: "nope nope"}})
	h.clock.Advance(time.Minute) // past the back-off of the wrong password
	h.do(call{method: "POST", path: "/api/v1/unlock", user: alice, pass: aliceMail, body: UnlockRequest{Email: alice, Password: "alice id password"}})
	r = h.do(call{method: "GET", path: "/metrics"})
	for _, want := range []string{
		`smimeproxy_admin_requests_total{route="POST /api/v1/enroll",status="201"} 1`,
		`smimeproxy_admin_requests_total{route="GET /healthz",status="200"} 1`,
		`smimeproxy_admin_enrolments_total{result="ok"} 1`,
		`smimeproxy_admin_unlocks_total{result="ok"} 1`,
		`smimeproxy_admin_unlocks_total{result="refused"} 1`,
		`smimeproxy_admin_failures_total{code="wrong_password"} 1`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
