package admin

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
)

// TestImportRepliesWithTheNoEscrowWarning imports an external CA's PKCS#12
// through the API.
func TestImportRepliesWithTheNoEscrowWarning(t *testing.T) {
	h := newHarness(t)
	p12, _ := bobPKCS12(t, "p12 transport password")
	r := h.do(call{method: "POST", path: "/api/v1/enroll/import", user: bob, pass: bobMail, body: ImportRequest{
		Email: bob, PKCS12: base64.StdEncoding.EncodeToString(p12), PKCS12Password: "p12 transport password",
		Name: "Bob external", Password: "bob id password"}})
	var er EnrollReply
	r.decode(t, &er)
	if r.status != http.StatusCreated || er.Warning != identity.ImportWarning || er.Identity.Source != identity.SourceImport || er.Identity.Escrowed {
		t.Fatalf("import: %v", r)
	}
	if !strings.Contains(er.Warning, "lost") {
		t.Fatalf("warning %q does not say what is lost", er.Warning)
	}
	cases := []struct {
		name string
		req  ImportRequest
		code string
	}{
		{"not base64", ImportRequest{Email: bob, PKCS12: "%%%", Name: "x", Password: "long enough"}, "bad_request"},
		{"wrong file password", ImportRequest{Email: alice, PKCS12: base64.StdEncoding.EncodeToString(p12), PKCS12Password: "nope", Name: "x", Password: "long enough"}, "bad_pkcs12"},
	}
	for _, c := range cases {
		user, pass := bob, bobMail
		if c.req.Email == alice {
			user, pass = alice, aliceMail
		}
		if r := h.do(call{method: "POST", path: "/api/v1/enroll/import", user: user, pass: pass, body: c.req}); r.errCode() != c.code {
			t.Errorf("%s: %v", c.name, r)
		}
	}
}

// bobPKCS12 returns a PKCS#12 of a test user's encryption key and the key's
// PKCS#8 DER.
func bobPKCS12(t testing.TB, password string) ([]byte, []byte) {
	t.Helper()
	u := mailtest.NewPKI(t).User(t, bob, mailtest.RSA, mailtest.DualUse)
	p12, err := pkcs12.Modern.Encode(u.EncKey, u.EncCert, u.Chain, password)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(u.EncKey)
	if err != nil {
		t.Fatal(err)
	}
	return p12, der
}

// TestNoSecretInRepliesOrLogs runs enrolment, import, unlock (right and
// wrong), page logins and token creation, then looks for every password,
// token and private key in every reply, the log and the database file.
func TestNoSecretInRepliesOrLogs(t *testing.T) {
	h := newHarness(t)
	const (
		aliceID = "alice-id-secret-password"
		bobID   = "bob-id-secret-password"
		p12PW   = "p12-secret-transport-password"
	)
	tok := h.token(alice, "")
	r := h.do(call{method: "POST", path: "/api/v1/enroll", user: alice, pass: aliceMail,
		body: EnrollRequest{Email: alice, Token: tok, Name: "Alice", Password: aliceID}})
	var er EnrollReply
	r.decode(t, &er)
	h.do(call{method: "POST", path: "/api/v1/trust/accept", user: alice, pass: aliceMail, body: AcceptRequest{Email: alice, Fingerprint: er.Root.Fingerprint}})
	h.do(call{method: "POST", path: "/api/v1/enroll", user: alice, pass: aliceMail, // replayed
		body: EnrollRequest{Email: alice, Token: tok, Name: "Alice", Password: aliceID}})
	h.do(call{method: "POST", path: "/api/v1/unlock", user: alice, pass: aliceMail, body: UnlockRequest{Email: alice, Password: aliceID + "-wrong"}})
	h.clock.Advance(loginBackoffMax)
	h.do(call{method: "POST", path: "/api/v1/unlock", user: alice, pass: aliceMail, body: UnlockRequest{Email: alice, Password: aliceID}})
	h.do(call{method: "POST", path: "/api/v1/lock", user: alice, pass: aliceMail + "-wrong", body: LockRequest{Email: alice}})
	recoverTok := h.token(bob, "recover")
	h.do(call{method: "POST", path: "/api/v1/enroll", user: bob, pass: bobMail,
		body: EnrollRequest{Email: bob, Token: recoverTok, Name: "Bob", Password: bobID}})
	p12, keyDER := bobPKCS12(t, p12PW)
	h.do(call{method: "POST", path: "/api/v1/enroll/import", user: bob, pass: bobMail, body: ImportRequest{
		Email: bob, PKCS12: base64.StdEncoding.EncodeToString(p12), PKCS12Password: p12PW, Name: "Bob", Password: bobID}})
	h.do(call{method: "POST", path: "/api/v1/unlock", user: bob, pass: bobMail, body: UnlockRequest{Email: bob, Password: bobID}})
	h.do(call{method: "GET", path: "/api/v1/identities", bearer: adminToken})
	h.do(call{method: "GET", path: "/api/v1/identities/" + bob, bearer: adminToken})
	h.do(call{method: "GET", path: "/api/v1/identities", bearer: adminToken + "x"})
	b := newBrowser(t, h)
	b.login(alice, aliceMail)
	b.post("/unlock", map[string]string{"password": aliceID, "remember": "1h0m0s"})
	b.post("/unlock", map[string]string{"password": aliceID + "-wrong", "remember": "1h0m0s"})

	secrets := map[string][]byte{
		"alice mail password": []byte(aliceMail), "bob mail password": []byte(bobMail),
		"alice ID password": []byte(aliceID), "bob ID password": []byte(bobID),
		"PKCS#12 password": []byte(p12PW), "enrol token": []byte(tok), "recovery token": []byte(recoverTok),
		"enrol token, compact": []byte(strings.ReplaceAll(tok, "-", "")),
		"admin bearer":         []byte(adminToken),
		"imported key DER":     keyDER, "imported key base64": []byte(base64.StdEncoding.EncodeToString(keyDER)[:64]),
		"imported key hex": []byte(hex.EncodeToString(keyDER)[:64]),
	}
	db, err := os.ReadFile(h.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(h.dbPath + "-wal")
	places := map[string][]byte{
		"replies": append(h.replies.Bytes(), b.seen.Bytes()...), "log": []byte(h.logs.String()),
		"database": append(db, wal...),
	}
	if len(places["log"]) == 0 || len(places["replies"]) == 0 {
		t.Fatal("nothing recorded to scan")
	}
	for pname, data := range places {
		for sname, secret := range secrets {
			if pname == "database" && strings.Contains(sname, "mail password") {
				continue // not ours to store; checked in replies and log
			}
			if bytes.Contains(data, secret) {
				t.Errorf("%s contains the %s", pname, sname)
			}
		}
	}
}
