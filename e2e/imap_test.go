package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
	imapproxy "smimeproxy/proxy/imap"
)

// TestIMAPProxyDovecotMbsync puts the IMAP proxy, with the S/MIME viewer,
// between a real client — mbsync (isync) syncing to a Maildir — and a real
// Dovecot. Dovecot receives, over LMTP, mail encrypted and signed by
// openssl cms and encrypted by smimeproxy's own S/MIME engine, and a plain
// message carrying a forged status header. The Maildir ends up with the
// plaintext and the proxy's statement of what was verified, while
// Dovecot's own files still hold the ciphertext; UIDs are Dovecot's. A
// message the client APPENDs to Sent reaches Dovecot encrypted and reads
// back as plaintext; a locked Digital ID answers NO [UNAVAILABLE].
func TestIMAPProxyDovecotMbsync(t *testing.T) {
	openssl := mailtest.LookTool(t, "openssl", "openssl")
	mailtest.LookTool(t, "mbsync", "isync")
	const (
		alice = "alice@example.test"
		bob   = "bob@example.test"
		pw    = "mailpw"
	)
	d := mailtest.StartDovecot(t, mailtest.DovecotOptions{Users: map[string]string{alice: pw}})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	dir := mailtest.ShortTempDir(t, "smt-imap-")
	pki := mailtest.NewPKI(t)
	aliceID := pki.User(t, alice, mailtest.RSA)
	bobID := pki.User(t, bob, mailtest.RSA)
	af, err := aliceID.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	bf, err := bobID.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}

	inner := func(subject, text string) []byte {
		return []byte("Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n")
	}
	osslMsg := func(args ...string) []byte {
		t.Helper()
		in := filepath.Join(dir, "in.txt")
		cmd := exec.CommandContext(ctx, openssl, args...)
		cmd.Stdin, _ = os.Open(in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl %v: %v", args, err)
		}
		return out
	}
	// 1: encrypted by openssl (AES-256-CBC) to alice.
	writeFile(t, filepath.Join(dir, "in.txt"), inner("", "openssl enveloped secret"))
	encOpenSSL := osslMsg("cms", "-encrypt", "-aes-256-cbc", "-from", bob, "-to", alice, "-subject", "enc openssl", af.EncCert)
	// 2: signed by bob (detached), then encrypted to alice, both by openssl.
	writeFile(t, filepath.Join(dir, "in.txt"), inner("", "openssl signed and enveloped secret"))
	signed := osslMsg("cms", "-sign", "-signer", bf.SignCert, "-inkey", bf.SignKey, "-certfile", bf.Chain)
	writeFile(t, filepath.Join(dir, "in.txt"), signed)
	signEnc := osslMsg("cms", "-encrypt", "-aes-256-cbc", "-from", bob, "-to", alice, "-subject", "signed enc openssl", af.EncCert)
	// 3: signed only (multipart/signed), by openssl.
	writeFile(t, filepath.Join(dir, "in.txt"), inner("", "openssl signed only"))
	signedOnly := osslMsg("cms", "-sign", "-signer", bf.SignCert, "-inkey", bf.SignKey, "-certfile", bf.Chain,
		"-from", bob, "-to", alice, "-subject", "signed openssl")
	// 4: encrypted by smimeproxy's S/MIME engine (what its SMTP side sends).
	var ours bytes.Buffer
	ourPlain := []byte("From: " + bob + "\r\nTo: " + alice + "\r\nSubject: enc smimeproxy\r\n\r\nsmimeproxy enveloped secret\r\n")
	if err := smime.Encrypt(&ours, ourPlain, []smime.Recipient{{Cert: aliceID.EncCert}}, smime.EncryptOptions{Cipher: smime.AES256GCM}); err != nil {
		t.Fatal(err)
	}
	// 5: plain, with a status header forged by the sender.
	forged := []byte("From: mallory@evil.test\r\nTo: " + alice + "\r\nSubject: forged\r\n" +
		"Smimeproxy-Status: decrypted; signature valid; signer=" + bob + "\r\n\r\nplain text\r\n")

	msgs := [][]byte{encOpenSSL, signEnc, signedOnly, ours.Bytes(), forged}
	for i, m := range msgs {
		if err := d.DeliverLMTP(ctx, bob, []string{alice}, m); err != nil {
			t.Fatalf("deliver %d: %v", i, err)
		}
	}

	keys := &e2eViewKeys{keys: []smime.KeyPair{{Cert: aliceID.EncCert, Key: aliceID.EncKey}}, roots: pki.Roots()}
	viewer, err := imapproxy.NewSMIMEViewer(imapproxy.ViewerOptions{Keys: keys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	proxyTLS := proxyTLS(t, dir, "proxytls")
	var logs lockedBuffer
	p := serveIMAPProxy(t, ctx, imapproxy.Options{
		ListenTLS: imapproxy.TLSStartTLS, TLSConfig: proxyTLS.Server,
		Upstream: d.IMAPAddr, UpstreamTLS: imapproxy.TLSStartTLS, UpstreamTLSConfig: d.TLS.Client(),
		Viewer: viewer, AppendTransform: viewer.AppendTransform,
		UnlockURL: func(email string) string { return "https://proxy.example.test/unlock" },
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	}, &logs)
	viaProxy := mailtest.IMAPLogin{Addr: p.Addr().String(), User: alice, Password: pw, TLS: mailtest.TLSStartTLS, Config: proxyTLS.Client()}

	synced, err := mailtest.RunMbsync(ctx, t, viaProxy, proxyTLS.CertFile, filepath.Join(dir, "mbsync-proxy"))
	if err != nil {
		t.Fatal(err)
	}
	direct, err := mailtest.RunMbsync(ctx, t, d.Login(alice, mailtest.TLSStartTLS), d.TLS.CertFile, filepath.Join(dir, "mbsync-direct"))
	if err != nil {
		t.Fatal(err)
	}
	got := synced.Folders["INBOX"]
	if len(got) != len(msgs) || len(direct.Folders["INBOX"]) != len(msgs) {
		t.Fatalf("mbsync through the proxy got %d messages, directly %d, want %d", len(got), len(direct.Folders["INBOX"]), len(msgs))
	}
	// Same UIDs as Dovecot's: mbsync names files ",U=<uid>".
	if a, b := maildirUIDs(t, synced.Dir, "INBOX"), maildirUIDs(t, direct.Dir, "INBOX"); !slices.Equal(a, b) || len(a) != len(msgs) {
		t.Fatalf("UIDs through the proxy %v, directly %v", a, b)
	}
	find := func(subject string) string {
		t.Helper()
		for _, m := range got {
			if strings.Contains(string(m), "Subject: "+subject+"\r\n") || strings.Contains(string(m), "Subject: "+subject+"\n") {
				return string(m)
			}
		}
		t.Fatalf("no synced message %q", subject)
		return ""
	}
	status := regexp.MustCompile(`(?m)^Smimeproxy-Status: (.*?)\r?$`)
	checks := []struct {
		subject, text, status string
	}{
		{"enc openssl", "openssl enveloped secret", "decrypted; signature absent; not-integrity-protected"},
		{"signed enc openssl", "openssl signed and enveloped secret", "decrypted; signature valid; signer=" + bob},
		{"signed openssl", "openssl signed only", "not-encrypted; signature valid; signer=" + bob},
		{"enc smimeproxy", "smimeproxy enveloped secret", "decrypted; signature absent"},
	}
	for _, c := range checks {
		m := find(c.subject)
		if !strings.Contains(m, c.text) {
			t.Errorf("%s: plaintext missing in the synced copy:\n%s", c.subject, m)
		}
		st := status.FindAllStringSubmatch(m, -1)
		if len(st) != 1 || st[0][1] != c.status {
			t.Errorf("%s: status %q, want exactly one %q", c.subject, st, c.status)
		}
		if c.subject != "signed openssl" && strings.Contains(m, "application/pkcs7-mime") {
			t.Errorf("%s: synced copy is still enveloped", c.subject)
		}
	}
	if m := find("forged"); strings.Contains(m, "Smimeproxy-Status") || !strings.Contains(m, "plain text") {
		t.Errorf("forged status header reached the client:\n%s", m)
	}
	// The multipart/signed message's body passes byte for byte (mbsync
	// writes LF line ends into the Maildir and adds X-TUID to the header).
	if m, want := lf(find("signed openssl")), lf(signedOnly); m[strings.Index(m, "\n\n"):] != want[strings.Index(want, "\n\n"):] {
		t.Errorf("signed message body changed:\n%q\nwant\n%q", m, want)
	}

	// Dovecot's own files still hold the ciphertext.
	stored, err := d.StoredMessages(alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	all := string(bytes.Join(stored, nil))
	for _, secret := range []string{"openssl enveloped secret", "openssl signed and enveloped secret", "smimeproxy enveloped secret"} {
		if strings.Contains(all, secret) {
			t.Errorf("Dovecot stores %q in clear", secret)
		}
	}
	if strings.Count(all, "application/pkcs7-mime") < 3 || !strings.Contains(all, "Smimeproxy-Status: decrypted") {
		t.Errorf("Dovecot's files are not the messages as delivered")
	}

	// APPEND to Sent through the proxy: Dovecot stores it encrypted to
	// alice, and it reads back as plaintext through the proxy.
	c, err := mailtest.DialIMAP(ctx, viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	draft := []byte("From: " + alice + "\r\nTo: " + bob + "\r\nSubject: my sent mail\r\n\r\nwhat alice wrote\r\n")
	ac := c.Append("Sent", int64(len(draft)), nil)
	ac.Write(draft)
	ac.Close()
	if _, err := ac.Wait(); err != nil {
		t.Fatalf("APPEND to Sent: %v", err)
	}
	sent, err := d.StoredMessages(alice, "Sent")
	if err != nil || len(sent) != 1 {
		t.Fatalf("Dovecot Sent: %d messages, %v", len(sent), err)
	}
	if bytes.Contains(sent[0], []byte("what alice wrote")) || !bytes.Contains(sent[0], []byte("application/pkcs7-mime")) {
		t.Fatalf("Dovecot stores the sent message in clear:\n%s", sent[0])
	}
	back, err := mailtest.FetchMessages(ctx, viaProxy, "Sent")
	if err != nil || len(back) != 1 || !bytes.Contains(back[0].Raw, []byte("what alice wrote")) {
		t.Fatalf("Sent read back through the proxy: %v %v", back, err)
	}

	// Locked: the Digital ID's key is needed and locked.
	keys.setLocked(true)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	_, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeUnavailable || !strings.Contains(imapErr.Text, "https://proxy.example.test/unlock") {
		t.Fatalf("FETCH with a locked key: %v, want NO [UNAVAILABLE] with the unlock URL", err)
	}
}

func lf[T string | []byte](b T) string { return strings.ReplaceAll(string(b), "\r\n", "\n") }

// maildirUIDs lists the UIDs mbsync put into the file names of folder.
func maildirUIDs(t *testing.T, root, folder string) []int {
	t.Helper()
	var uids []int
	re := regexp.MustCompile(`,U=(\d+)`)
	for _, sub := range []string{"cur", "new"} {
		entries, _ := os.ReadDir(filepath.Join(root, folder, sub))
		for _, e := range entries {
			if m := re.FindStringSubmatch(e.Name()); m != nil {
				var n int
				fmt.Sscan(m[1], &n)
				uids = append(uids, n)
			}
		}
	}
	slices.Sort(uids)
	return uids
}

// e2eViewKeys stands in for identity.Service: alice's keys, the test
// PKI's root, a lock switch.
type e2eViewKeys struct {
	mu     sync.Mutex
	keys   []smime.KeyPair
	roots  *x509.CertPool
	locked bool
}

func (k *e2eViewKeys) DecryptionKeys(_ context.Context, user string) ([]smime.KeyPair, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locked {
		return nil, fmt.Errorf("keys of %s: %w", user, identity.ErrLocked)
	}
	return k.keys, nil
}

func (k *e2eViewKeys) TrustPool(context.Context, string) (*x509.CertPool, error) { return k.roots, nil }

func (k *e2eViewKeys) Harvest(_ context.Context, _ string, v *smime.VerifyResult) ([]string, error) {
	return smime.CertAddresses(v.Signer), nil
}

// Unlocked lets the viewer drop cached views once the key locks.
func (k *e2eViewKeys) Unlocked(string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return !k.locked
}

func (k *e2eViewKeys) setLocked(b bool) {
	k.mu.Lock()
	k.locked = b
	k.mu.Unlock()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
