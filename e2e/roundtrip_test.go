package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"smimeproxy/internal/mailtest"
	"smimeproxy/policy"
	imapproxy "smimeproxy/proxy/imap"
	smtpproxy "smimeproxy/proxy/smtp"
)

// TestRoundTripSMTPToIMAP sends mail the way a user does — through
// smimeproxy's submission side — to a real Postfix that delivers into a
// real Dovecot, and reads it the way the recipient does — mbsync through
// smimeproxy's IMAP side, with Digital IDs from the same identity service.
// The recipient's Maildir holds the plaintext with "signature valid" for
// the sender, while Dovecot's own files hold only the ciphertext.
func TestRoundTripSMTPToIMAP(t *testing.T) {
	mailtest.LookTool(t, "swaks", "swaks")
	mailtest.LookTool(t, "mbsync", "isync")
	const (
		alice  = "alice@example.test"
		bob    = "bob@example.test"
		pw     = "mailpw"
		secret = "round trip secret 7f3a"
	)
	d := mailtest.StartDovecot(t, mailtest.DovecotOptions{Users: map[string]string{alice: pw, bob: pw}})
	pf := mailtest.StartPostfix(t, mailtest.PostfixOptions{Dovecot: d})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	dir := mailtest.ShortTempDir(t, "smt-rt-")
	ids, _ := smtpIdentities(t, ctx, dir, alice, bob)

	smtpTLS := proxyTLS(t, dir, "smtptls")
	var smtpLogs smtpLockedBuffer
	smtpAddr := serveSMTPProxy(t, ctx, smtpproxy.Options{
		ListenTLS: smtpproxy.TLSStartTLS, TLSConfig: smtpTLS.Server,
		Upstream: pf.SubmissionAddr, UpstreamTLS: smtpproxy.TLSStartTLS, UpstreamTLSConfig: d.TLS.Client(),
		Keys:   ids,
		Policy: policy.Policy{Sign: policy.Always, Encrypt: policy.WhenPossible},
		Logger: slog.New(slog.NewTextHandler(&smtpLogs, nil)),
	})
	sub := mailtest.Submission{
		Addr: smtpAddr, TLS: mailtest.TLSStartTLS, CAFile: smtpTLS.CertFile,
		User: alice, Password: pw, From: alice, To: []string{bob},
		Message: []byte("From: Alice <" + alice + ">\r\nTo: " + bob + "\r\nSubject: round trip\r\n" +
			"Message-ID: <rt-1@example.test>\r\n\r\n" + secret + "\r\n"),
	}
	if out, err := mailtest.RunSwaks(ctx, t, sub); err != nil {
		t.Fatalf("swaks through the SMTP proxy: %v\n%s", err, out)
	}
	// Wait for Postfix to deliver before syncing.
	if _, err := mailtest.WaitForMessage(ctx, d.Login(bob, mailtest.TLSStartTLS), "INBOX", func(m mailtest.Message) bool {
		return bytes.Contains(m.Raw, []byte("Subject: round trip\r\n"))
	}); err != nil {
		t.Fatalf("bob's copy: %v", err)
	}

	viewer, err := imapproxy.NewSMIMEViewer(imapproxy.ViewerOptions{Keys: ids, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	imapTLS := proxyTLS(t, dir, "imaptls")
	var imapLogs lockedBuffer
	p := serveIMAPProxy(t, ctx, imapproxy.Options{
		ListenTLS: imapproxy.TLSStartTLS, TLSConfig: imapTLS.Server,
		Upstream: d.IMAPAddr, UpstreamTLS: imapproxy.TLSStartTLS, UpstreamTLSConfig: d.TLS.Client(),
		Viewer: viewer, AppendTransform: viewer.AppendTransform,
		UnlockURL: func(string) string { return "https://proxy.example.test/unlock" },
		Logger:    slog.New(slog.NewTextHandler(&imapLogs, nil)),
	}, &imapLogs)
	viaProxy := mailtest.IMAPLogin{Addr: p.Addr().String(), User: bob, Password: pw, TLS: mailtest.TLSStartTLS, Config: imapTLS.Client()}
	synced, err := mailtest.RunMbsync(ctx, t, viaProxy, imapTLS.CertFile, filepath.Join(dir, "mbsync"))
	if err != nil {
		t.Fatal(err)
	}
	got := synced.Folders["INBOX"]
	if len(got) != 1 {
		t.Fatalf("mbsync through the IMAP proxy got %d messages, want 1", len(got))
	}
	m := string(got[0])
	if !strings.Contains(m, secret) || strings.Contains(m, "application/pkcs7-mime") {
		t.Errorf("bob's synced copy is not the plaintext:\n%s", m)
	}
	status := regexp.MustCompile(`(?m)^Smimeproxy-Status: (.*?)\r?$`).FindAllStringSubmatch(m, -1)
	if want := "decrypted; signature valid; signer=" + alice; len(status) != 1 || status[0][1] != want {
		t.Errorf("status %q, want exactly one %q", status, want)
	}

	stored, err := d.StoredMessages(bob, "INBOX")
	if err != nil || len(stored) != 1 {
		t.Fatalf("Dovecot INBOX of bob: %d messages, %v", len(stored), err)
	}
	if bytes.Contains(stored[0], []byte(secret)) || !bytes.Contains(stored[0], []byte("application/pkcs7-mime")) {
		t.Errorf("Dovecot stores the message in clear:\n%s", stored[0])
	}
	if strings.Contains(smtpLogs.String(), pw) || strings.Contains(imapLogs.String(), pw) {
		t.Errorf("the mail password reached a proxy's log")
	}
}
