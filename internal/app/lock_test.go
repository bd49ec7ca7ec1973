package app

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"

	"smimeproxy/crypto/smime"
	"smimeproxy/internal/mailtest"
)

// TestLockHidesCachedPlaintext: once bob locks his Digital ID through the
// admin API, a FETCH through the IMAP proxy answers NO [UNAVAILABLE] at
// once — the decrypted view cached by the first FETCH is dropped by the
// lock, not served until a recheck.
func TestLockHidesCachedPlaintext(t *testing.T) {
	ctx := t.Context()
	d, err := StartDemo(ctx, DemoOptions{Dir: t.TempDir(), IMAP: "127.0.0.1:0", SMTP: "127.0.0.1:0", Admin: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	bob := d.Info.Users[1]
	const secret = "The quarterly figures are in the safe."
	rc, err := d.App.Identity.RecipientCertificate(ctx, bob.Email, bob.Email)
	if err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	msg := "From: " + d.Info.Users[0].Email + "\r\nTo: " + bob.Email + "\r\nSubject: locked\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + secret + "\r\n"
	if err := smime.Encrypt(&enc, []byte(msg), []smime.Recipient{{Cert: rc.Cert}}, smime.EncryptOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Upstream.Deliver(bob.Email, enc.Bytes()); err != nil {
		t.Fatal(err)
	}
	pemData, err := os.ReadFile(d.Info.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemData)
	login := mailtest.IMAPLogin{Addr: d.Info.IMAP, User: bob.Email, Password: bob.LoginPassword,
		TLS: mailtest.TLSStartTLS, Config: &tls.Config{RootCAs: roots}}

	msgs, err := mailtest.FetchMessages(ctx, login, "INBOX")
	if err != nil || len(msgs) != 1 || !bytes.Contains(msgs[0].Raw, []byte(secret)) {
		t.Fatalf("unlocked FETCH: %d messages, %v; want the plaintext", len(msgs), err)
	}
	if _, views := d.App.viewer.CacheStats(); views != 1 {
		t.Fatalf("%d cached views after the first FETCH, want 1", views)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Info.Admin+"/api/v1/lock",
		strings.NewReader(`{"email":"`+bob.Email+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(bob.Email, bob.LoginPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v1/lock: %s %s", resp.Status, body)
	}
	if _, views := d.App.viewer.CacheStats(); views != 0 {
		t.Errorf("%d cached views right after the lock, want 0", views)
	}

	msgs, err = mailtest.FetchMessages(ctx, login, "INBOX")
	if err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Fatalf("locked FETCH gave %d messages, %v; want NO [UNAVAILABLE]", len(msgs), err)
	}
	for _, m := range msgs {
		if bytes.Contains(m.Raw, []byte(secret)) {
			t.Fatal("locked FETCH served the cached plaintext")
		}
	}
}
