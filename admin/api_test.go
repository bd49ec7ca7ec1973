package admin

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"smimeproxy/crypto/ca"
	"smimeproxy/identity"
)

func TestAdminCallsNeedTheBearer(t *testing.T) {
	h := newHarness(t)
	routes := []struct{ method, path string }{
		{"POST", "/api/v1/tokens"},
		{"GET", "/api/v1/identities"},
		{"GET", "/api/v1/identities/alice@example.test"},
		{"DELETE", "/api/v1/identities/alice@example.test"},
		{"GET", "/api/v1/identities/alice@example.test/escrow"},
		{"GET", "/api/v1/trust/roots"},
		{"POST", "/api/v1/trust/roots"},
		{"DELETE", "/api/v1/trust/roots/AB:CD"},
	}
	creds := []struct {
		name string
		c    call
	}{
		{"none", call{}},
		{"wrong bearer", call{bearer: "not-the-admin-token-at-all"}},
		{"bearer prefix", call{bearer: adminToken[:10]}},
		{"user basic", call{user: alice, pass: aliceMail}},
	}
	for _, rt := range routes {
		for _, cr := range creds {
			c := cr.c
			c.method, c.path = rt.method, rt.path
			if rt.method == "POST" {
				c.body = TokenRequest{Email: alice}
			}
			r := h.do(c)
			h.clock.Advance(loginBackoffMax) // past the back-off the failures cause
			if r.status != http.StatusUnauthorized || r.errCode() != "unauthorized" {
				t.Errorf("%s %s with %s: %v", rt.method, rt.path, cr.name, r)
			}
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with %s: WWW-Authenticate %q", rt.method, rt.path, cr.name, r.header.Get("WWW-Authenticate"))
			}
		}
	}
	// Nothing was created by the refused calls.
	r := h.do(call{method: "GET", path: "/api/v1/identities", bearer: adminToken})
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"identities": []`) {
		t.Fatalf("list: %v", r)
	}
}

func TestUserCallsNeedTheirOwnMailboxLogin(t *testing.T) {
	h := newHarness(t)
	tok := h.token(alice, "")
	body := EnrollRequest{Email: alice, Token: tok, Name: "A", Password: "alice id password"}
	cases := []struct {
		name       string
		user, pass string
		status     int
		code       string
	}{
		{"no login", "", "", http.StatusUnauthorized, "login_required"},
		{"wrong mail password", alice, "guess", http.StatusUnauthorized, "auth_failed"},
		{"unknown mailbox", "mallory@example.test", "x", http.StatusUnauthorized, "auth_failed"},
		{"other mailbox", bob, bobMail, http.StatusForbidden, "forbidden"},
	}
	for _, c := range cases {
		r := h.do(call{method: "POST", path: "/api/v1/enroll", user: c.user, pass: c.pass, body: body})
		if r.status != c.status || r.errCode() != c.code {
			t.Errorf("%s: got %v, want %d %s", c.name, r, c.status, c.code)
		}
	}
	// Bob cannot unlock, lock, accept or upgrade for Alice either.
	for _, path := range []string{"/api/v1/unlock", "/api/v1/lock", "/api/v1/trust/accept", "/api/v1/upgrade", "/api/v1/upgrade/cancel"} {
		r := h.do(call{method: "POST", path: path, user: bob, pass: bobMail, body: map[string]string{"email": alice}})
		if r.status != http.StatusForbidden || r.errCode() != "forbidden" {
			t.Errorf("%s as bob for alice: %v", path, r)
		}
	}
	// The refused calls did not use the token: Alice can still enrol with it.
	r := h.do(call{method: "POST", path: "/api/v1/enroll", user: alice, pass: aliceMail, body: body})
	if r.status != http.StatusCreated {
		t.Fatalf("enrol after refusals: %v", r)
	}
}

func TestTokenErrorsAreDistinct(t *testing.T) {
	h := newHarness(t)
	enrol := func(email, pass, tok, purpose string) reply {
		return h.do(call{method: "POST", path: "/api/v1/enroll", user: email, pass: pass,
			body: EnrollRequest{Email: email, Token: tok, Name: "ID", Password: "long enough password", Purpose: purpose}})
	}
	good := h.token(alice, "")
	typo := []byte(good)
	if typo[0] == 'X' {
		typo[0] = 'Y'
	} else {
		typo[0] = 'X'
	}
	unknown, err := identity.NewToken(nil)
	if err != nil {
		t.Fatal(err)
	}
	bobs := h.token(bob, "")
	recover := h.token(alice, "recover")
	r := h.do(call{method: "POST", path: "/api/v1/tokens", bearer: adminToken, body: TokenRequest{Email: alice, TTL: "1m"}})
	var short TokenReply
	r.decode(t, &short)
	h.clock.Advance(2 * time.Minute)

	cases := []struct {
		name, tok, purpose string
		status             int
		code               string
	}{
		{"mistyped", string(typo), "", http.StatusBadRequest, "token_malformed"},
		{"garbage", "hello", "", http.StatusBadRequest, "token_malformed"},
		{"unknown", string(unknown), "", http.StatusNotFound, "token_unknown"},
		{"expired", short.Token, "", http.StatusGone, "token_expired"},
		{"wrong mailbox", bobs, "", http.StatusForbidden, "token_wrong_mailbox"},
		{"wrong purpose", recover, "enroll", http.StatusForbidden, "token_wrong_purpose"},
	}
	for _, c := range cases {
		h.clock.Advance(identity.BackoffMax) // identity slows down clients that send bad tokens
		r := enrol(alice, aliceMail, c.tok, c.purpose)
		if r.status != c.status || r.errCode() != c.code {
			t.Errorf("%s: got %v, want %d %s", c.name, r, c.status, c.code)
		}
	}
	h.clock.Advance(identity.BackoffMax)
	if r := enrol(alice, aliceMail, good, ""); r.status != http.StatusCreated {
		t.Fatalf("good token: %v", r)
	}
	if r := enrol(alice, aliceMail, good, ""); r.status != http.StatusConflict || r.errCode() != "token_used" {
		t.Fatalf("replayed token: %v", r)
	}
	// Bad token requests from the administrator.
	for _, body := range []TokenRequest{{Email: "not an address"}, {Email: alice, Purpose: "root"}, {Email: alice, TTL: "10s"}, {Email: alice, TTL: "9999h"}} {
		r := h.do(call{method: "POST", path: "/api/v1/tokens", bearer: adminToken, body: body})
		if r.status != http.StatusBadRequest {
			t.Errorf("token request %+v: %v", body, r)
		}
	}
}

func TestLifeCycleThroughTheAPI(t *testing.T) {
	h := newHarness(t)
	const idPW = "alice digital id password"
	er := h.enroll(alice, aliceMail, idPW, false)
	if er.Identity.State != identity.StatePending || er.RootAccepted {
		t.Fatalf("after enrolment: %+v", er)
	}
	if !strings.Contains(er.Root.Subject, "Admin Test Org") || er.Root.Fingerprint != ca.Fingerprint(h.ca.Root()) {
		t.Fatalf("root shown: %+v", er.Root)
	}
	as := func(c call) call { c.user, c.pass = alice, aliceMail; c.method = "POST"; return c }
	// Pending: not usable, and public certificates are not handed out yet.
	if r := h.do(call{method: "GET", path: "/api/v1/certificates?email=" + alice}); r.status == http.StatusOK {
		t.Fatalf("certificates of a pending ID: %v", r)
	}
	if r := h.do(as(call{path: "/api/v1/trust/accept", body: AcceptRequest{Email: alice, Fingerprint: "00:11"}})); r.errCode() != "fingerprint_mismatch" {
		t.Fatalf("wrong fingerprint: %v", r)
	}
	if r := h.do(as(call{path: "/api/v1/trust/accept", body: AcceptRequest{Email: alice, Fingerprint: er.Root.Fingerprint}})); r.status != http.StatusOK {
		t.Fatalf("accept: %v", r)
	}
	if r := h.do(as(call{path: "/api/v1/lock", body: LockRequest{Email: alice}})); r.status != http.StatusOK {
		t.Fatalf("lock: %v", r)
	}
	r := h.do(as(call{path: "/api/v1/unlock", body: UnlockRequest{Email: alice, Password: idPW, Remember: "2h"}}))
	var ur UnlockReply
	r.decode(t, &ur)
	if left := ur.UnlockedUntil.Sub(h.clock.Now()); r.status != http.StatusOK || left < 2*time.Hour-time.Second || left > 2*time.Hour+time.Second {
		t.Fatalf("unlock: %v", r)
	}
	// The administrator sees it, with the unlock time and no key material.
	r = h.do(call{method: "GET", path: "/api/v1/identities/" + alice, bearer: adminToken})
	var det DetailsReply
	r.decode(t, &det)
	if r.status != http.StatusOK || det.Current == nil || det.Current.State != identity.StateActive || det.Current.UnlockedUntil == nil || det.Current.SigningCert == nil {
		t.Fatalf("show: %v", r)
	}
	// Senders get the public certificates, as JSON and as PEM.
	r = h.do(call{method: "GET", path: "/api/v1/certificates?email=" + strings.ToUpper(alice)})
	var cr CertificatesReply
	r.decode(t, &cr)
	if r.status != http.StatusOK || len(cr.Certificates) == 0 || !strings.HasPrefix(cr.Certificates[0], "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("certificates: %v", r)
	}
	r = h.do(call{method: "GET", path: "/api/v1/certificates?email=" + alice, header: map[string]string{"Accept": "application/x-pem-file"}})
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-pem-file" || !strings.Contains(string(r.body), "BEGIN CERTIFICATE") {
		t.Fatalf("certificates as PEM: %v", r)
	}
	if r := h.do(call{method: "GET", path: "/api/v1/certificates?email=nobody@example.test"}); r.status != http.StatusNotFound {
		t.Fatalf("certificates of nobody: %v", r)
	}
	// Enrolling again without a recovery token is refused.
	tok := h.token(alice, "")
	if r := h.do(as(call{path: "/api/v1/enroll", body: EnrollRequest{Email: alice, Token: tok, Name: "x", Password: idPW}})); r.errCode() != "already_enrolled" {
		t.Fatalf("second enrolment: %v", r)
	}
	// Revoke: locked at once, shown as revoked.
	if r := h.do(call{method: "DELETE", path: "/api/v1/identities/" + alice, bearer: adminToken}); r.status != http.StatusOK {
		t.Fatalf("revoke: %v", r)
	}
	if r := h.do(call{method: "DELETE", path: "/api/v1/identities/" + alice, bearer: adminToken}); r.errCode() != "no_identity" {
		t.Fatalf("revoke twice: %v", r)
	}
	r = h.do(call{method: "GET", path: "/api/v1/identities/" + alice, bearer: adminToken})
	det = DetailsReply{}
	r.decode(t, &det)
	if det.Current != nil || len(det.Earlier) != 1 || det.Earlier[0].State != identity.StateRevoked {
		t.Fatalf("after revoke: %v", r)
	}
	if r := h.do(call{method: "GET", path: "/api/v1/identities/nobody@example.test", bearer: adminToken}); r.errCode() != "no_identity" || r.status != http.StatusNotFound {
		t.Fatalf("show nobody: %v", r)
	}
}

func TestWrongUnlockPasswordBacksOff(t *testing.T) {
	h := newHarness(t)
	h.enroll(bob, bobMail, "bob id password", true)
	var last reply
	for i := 0; i < 6; i++ {
		last = h.do(call{method: "POST", path: "/api/v1/unlock", user: bob, pass: bobMail,
			body: UnlockRequest{Email: bob, Password: "wrong password " + strconv.Itoa(i)}})
		if last.errCode() == "too_many_attempts" {
			break
		}
		if last.status != http.StatusForbidden || last.errCode() != "wrong_password" {
			t.Fatalf("wrong password %d: %v", i, last)
		}
	}
	if last.status != http.StatusTooManyRequests || last.errCode() != "too_many_attempts" {
		t.Fatalf("no back-off after wrong passwords: %v", last)
	}
	if s, err := strconv.Atoi(last.header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q", last.header.Get("Retry-After"))
	}
	// Even the right password waits.
	r := h.do(call{method: "POST", path: "/api/v1/unlock", user: bob, pass: bobMail, body: UnlockRequest{Email: bob, Password: "bob id password"}})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("right password during back-off: %v", r)
	}
	h.clock.Advance(10 * time.Minute)
	r = h.do(call{method: "POST", path: "/api/v1/unlock", user: bob, pass: bobMail, body: UnlockRequest{Email: bob, Password: "bob id password"}})
	if r.status != http.StatusOK {
		t.Fatalf("right password after the wait: %v", r)
	}
}

func TestFailedLoginsBackOff(t *testing.T) {
	h := newHarness(t)
	var r reply
	for i := 0; i <= loginFreeFailures+1; i++ { // free tries, the one that starts the wait, one more
		r = h.do(call{method: "POST", path: "/api/v1/lock", user: alice, pass: "guess", body: LockRequest{Email: alice}})
	}
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("after %d failed logins: %v", loginFreeFailures+1, r)
	}
	// The right password waits too, then works.
	r = h.do(call{method: "POST", path: "/api/v1/lock", user: alice, pass: aliceMail, body: LockRequest{Email: alice}})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("good login during back-off: %v", r)
	}
	h.clock.Advance(loginBackoffMax)
	r = h.do(call{method: "POST", path: "/api/v1/lock", user: alice, pass: aliceMail, body: LockRequest{Email: alice}})
	if r.errCode() != "no_identity" {
		t.Fatalf("good login after the wait: %v", r)
	}
}

func TestRequestChecks(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxRequestSize = 2048 })
	port := h.srv.Listener.Addr().String()[strings.LastIndex(h.srv.Listener.Addr().String(), ":"):]
	tok := TokenRequest{Email: alice}
	cases := []struct {
		name   string
		c      call
		status int
		code   string
	}{
		{"body too large", call{method: "POST", path: "/api/v1/tokens", bearer: adminToken,
			body: `{"email": "` + strings.Repeat("a", 4096) + `@example.test"}`}, http.StatusRequestEntityTooLarge, "too_large"},
		{"not JSON", call{method: "POST", path: "/api/v1/tokens", bearer: adminToken, body: "email=alice"}, http.StatusBadRequest, "bad_request"},
		{"unknown field", call{method: "POST", path: "/api/v1/tokens", bearer: adminToken, body: `{"email":"a@b.test","admin":true}`}, http.StatusBadRequest, "bad_request"},
		{"trailing data", call{method: "POST", path: "/api/v1/tokens", bearer: adminToken, body: `{"email":"a@b.test"}{}`}, http.StatusBadRequest, "bad_request"},
		{"form content type", call{method: "POST", path: "/api/v1/tokens", bearer: adminToken, body: tok,
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"cross-origin Origin", call{method: "POST", path: "/api/v1/tokens", bearer: adminToken, body: tok,
			header: map[string]string{"Origin": "http://evil.example"}}, http.StatusForbidden, "cross_origin"},
		{"cross-site fetch", call{method: "POST", path: "/api/v1/tokens", bearer: adminToken, body: tok,
			header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, http.StatusForbidden, "cross_origin"},
		{"same-site other port", call{method: "POST", path: "/api/v1/tokens", bearer: adminToken, body: tok,
			header: map[string]string{"Origin": "http://127.0.0.1:1"}}, http.StatusForbidden, "cross_origin"},
		{"foreign Host", call{method: "GET", path: "/healthz", header: map[string]string{"Host": "evil.example"}}, http.StatusForbidden, "host_not_allowed"},
		{"rebinding Host with port", call{method: "GET", path: "/api/v1/identities", bearer: adminToken,
			header: map[string]string{"Host": "attacker.example" + port}}, http.StatusForbidden, "host_not_allowed"},
		{"unknown API route", call{method: "GET", path: "/api/v1/nothing"}, http.StatusNotFound, "not_found"},
		{"upgrade", call{method: "POST", path: "/api/v1/upgrade", user: alice, pass: aliceMail,
			body: UpgradeRequest{Email: alice, File: "old.p12"}}, http.StatusNotImplemented, "not_implemented"},
		{"upgrade cancel", call{method: "POST", path: "/api/v1/upgrade/cancel", user: alice, pass: aliceMail,
			body: LockRequest{Email: alice}}, http.StatusNotImplemented, "not_implemented"},
	}
	for _, c := range cases {
		r := h.do(c.c)
		if r.status != c.status || r.errCode() != c.code {
			t.Errorf("%s: got %v, want %d %s", c.name, r, c.status, c.code)
			continue
		}
		assertErrorShape(t, c.name, r)
	}
	// Allowed: same origin, loopback spellings of the same port, no Origin.
	for _, hdr := range []map[string]string{
		{"Origin": h.srv.URL, "Sec-Fetch-Site": "same-origin"},
		{"Host": "localhost" + port},
		{"Host": "LOCALHOST" + port, "Origin": "http://localhost" + port},
	} {
		r := h.do(call{method: "POST", path: "/api/v1/tokens", bearer: adminToken, body: tok, header: hdr})
		if r.status != http.StatusCreated {
			t.Errorf("headers %v: %v", hdr, r)
		}
	}
}

// assertErrorShape checks {"error": {"code", "message", "request_id"}} and
// nothing else, and that the id is the one in the header.
func assertErrorShape(t *testing.T, name string, r reply) {
	t.Helper()
	var raw map[string]map[string]string
	if err := json.Unmarshal(r.body, &raw); err != nil || len(raw) != 1 {
		t.Errorf("%s: error body %s: %v", name, r.body, err)
		return
	}
	e := raw["error"]
	if e["code"] == "" || e["message"] == "" || e["request_id"] != r.header.Get("X-Request-Id") || len(e) != 3 {
		t.Errorf("%s: error body %s (request id header %q)", name, r.body, r.header.Get("X-Request-Id"))
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: content type %q", name, ct)
	}
}

func TestRecoveryThroughTheAPI(t *testing.T) {
	h := newHarness(t)
	first := h.enroll(alice, aliceMail, "first id password", true)
	r := h.do(call{method: "POST", path: "/api/v1/enroll", user: alice, pass: aliceMail, body: EnrollRequest{
		Email: alice, Token: h.token(alice, "recover"), Name: "Alice again", Password: "second id password", Purpose: "recover"}})
	var er EnrollReply
	r.decode(t, &er)
	if r.status != http.StatusCreated || er.Identity.State != identity.StateActive || !er.RootAccepted ||
		er.Identity.SigningCert.Serial == first.Identity.SigningCert.Serial {
		t.Fatalf("recovery: %v", r)
	}
	r = h.do(call{method: "GET", path: "/api/v1/identities/" + alice, bearer: adminToken})
	var det DetailsReply
	r.decode(t, &det)
	if det.Current == nil || det.Current.Name != "Alice again" || len(det.Earlier) != 1 || det.Earlier[0].State != identity.StateSuperseded {
		t.Fatalf("after recovery: %v", r)
	}
	// The old password no longer opens it; the new one does.
	if r := h.do(call{method: "POST", path: "/api/v1/unlock", user: alice, pass: aliceMail, body: UnlockRequest{Email: alice, Password: "first id password"}}); r.errCode() != "wrong_password" {
		t.Fatalf("old password after recovery: %v", r)
	}
	h.clock.Advance(identity.BackoffMax)
	if r := h.do(call{method: "POST", path: "/api/v1/unlock", user: alice, pass: aliceMail, body: UnlockRequest{Email: alice, Password: "second id password"}}); r.status != http.StatusOK {
		t.Fatalf("new password after recovery: %v", r)
	}
}
