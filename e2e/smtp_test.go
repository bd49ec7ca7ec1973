package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/seal"
	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
	"smimeproxy/policy"
	smtpproxy "smimeproxy/proxy/smtp"
	"smimeproxy/store/sqlite"
)

// TestSMTPProxyPostfixDovecot runs the submission proxy between real
// clients (swaks, msmtp: STARTTLS + AUTH) and a real Postfix that delivers
// into Dovecot, and checks what Dovecot stored with openssl cms: every copy
// decrypts for its recipient and verifies against the CA root, the signed-only
// copy of a recipient without a certificate verifies, and the Bcc recipient
// appears in no other recipient's copy.
func TestSMTPProxyPostfixDovecot(t *testing.T) {
	openssl := mailtest.LookTool(t, "openssl", "openssl")
	mailtest.LookTool(t, "swaks", "swaks")
	mailtest.LookTool(t, "msmtp", "msmtp")
	const (
		alice = "alice@example.test"
		bob   = "bob@example.test"
		carol = "carol@example.test" // Bcc, has a Digital ID
		dave  = "dave@example.test"  // no certificate: signed-only copy
		pw    = "mailpw"
	)
	users := map[string]string{alice: pw, bob: pw, carol: pw, dave: pw}
	d := mailtest.StartDovecot(t, mailtest.DovecotOptions{Users: users})
	pf := mailtest.StartPostfix(t, mailtest.PostfixOptions{Dovecot: d})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	dir := mailtest.ShortTempDir(t, "smt-smtp-")
	ids, root := smtpIdentities(t, ctx, dir, alice, bob, carol)
	rootFile := filepath.Join(dir, "root.pem")
	writeFile(t, rootFile, mailtest.CertPEM(root))

	proxyTLS := proxyTLS(t, dir, "proxytls")
	var logs smtpLockedBuffer
	addr := serveSMTPProxy(t, ctx, smtpproxy.Options{
		ListenTLS: smtpproxy.TLSStartTLS, TLSConfig: proxyTLS.Server,
		Upstream: pf.SubmissionAddr, UpstreamTLS: smtpproxy.TLSStartTLS, UpstreamTLSConfig: d.TLS.Client(),
		Keys:   ids,
		Policy: policy.Policy{Sign: policy.Always, Encrypt: policy.WhenPossible},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})

	sub := mailtest.Submission{
		Addr: addr, TLS: mailtest.TLSStartTLS, CAFile: proxyTLS.CertFile,
		User: alice, Password: pw, From: alice, To: []string{bob, dave, carol},
		Message: []byte("From: Alice <" + alice + ">\r\nTo: " + bob + "\r\nCc: " + dave + "\r\nBcc: " + carol +
			"\r\nSubject: via swaks\r\nMessage-ID: <swaks-1@example.test>\r\n\r\nsecret from swaks\r\n"),
	}
	if out, err := mailtest.RunSwaks(ctx, t, sub); err != nil {
		t.Fatalf("swaks through the proxy: %v\n%s", err, out)
	}
	sub.Mech, sub.To = "LOGIN", []string{bob}
	sub.Message = []byte("From: " + alice + "\r\nTo: " + bob + "\r\nSubject: via msmtp\r\nMessage-ID: <msmtp-1@example.test>\r\n\r\nsecret from msmtp\r\n")
	if out, err := mailtest.RunMsmtp(ctx, t, sub); err != nil {
		t.Fatalf("msmtp through the proxy: %v\n%s", err, out)
	}

	// Each recipient's key and certificate as PEM files for openssl.
	keyFiles := map[string][2]string{}
	for _, who := range []string{alice, bob, carol} {
		ks, err := ids.DecryptionKeys(ctx, who)
		if err != nil {
			t.Fatalf("keys of %s: %v", who, err)
		}
		kp, err := mailtest.KeyPEM(ks[0].Key)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.Split(who, "@")[0]
		keyFiles[who] = [2]string{
			writeFile(t, filepath.Join(dir, name+".crt"), mailtest.CertPEM(ks[0].Cert)),
			writeFile(t, filepath.Join(dir, name+".key"), kp),
		}
	}
	stored := func(who, subject string) []byte {
		t.Helper()
		m, err := mailtest.WaitForMessage(ctx, d.Login(who, mailtest.TLSStartTLS), "INBOX", func(m mailtest.Message) bool {
			return bytes.Contains(m.Raw, []byte("Subject: "+subject+"\r\n"))
		})
		if err != nil {
			t.Fatalf("%s's copy of %q: %v", who, subject, err)
		}
		return m.Raw
	}
	// decryptVerify runs openssl cms -decrypt then -verify and returns the
	// signed content.
	decryptVerify := func(who string, msg []byte, encrypted bool) []byte {
		t.Helper()
		name := strings.Split(who, "@")[0]
		in := writeFile(t, filepath.Join(dir, name+"-in.eml"), msg)
		signed := in
		if encrypted {
			signed = filepath.Join(dir, name+"-dec.eml")
			if r := run(t, nil, nil, openssl, "cms", "-decrypt", "-in", in, "-recip", keyFiles[who][0],
				"-inkey", keyFiles[who][1], "-out", signed); r.code != 0 {
				t.Fatalf("openssl cms -decrypt as %s: %s", who, r)
			}
		}
		out := filepath.Join(dir, name+"-content.txt")
		if r := run(t, nil, nil, openssl, "cms", "-verify", "-in", signed, "-CAfile", rootFile,
			"-purpose", "smimesign", "-out", out); r.code != 0 {
			t.Fatalf("openssl cms -verify of %s's copy: %s", who, r)
		}
		return readFile(t, out)
	}

	copies := map[string][]byte{}
	for _, who := range []string{bob, carol} {
		copies[who] = stored(who, "via swaks")
		if !bytes.Contains(copies[who], []byte("application/pkcs7-mime")) || bytes.Contains(copies[who], []byte("secret from swaks")) {
			t.Errorf("%s's copy is not encrypted", who)
		}
		if got := decryptVerify(who, copies[who], true); !bytes.Contains(got, []byte("secret from swaks")) {
			t.Errorf("%s: signed content %q", who, got)
		}
	}
	copies[dave] = stored(dave, "via swaks")
	if got := decryptVerify(dave, copies[dave], false); !bytes.Contains(got, []byte("secret from swaks")) {
		t.Errorf("dave (signed only): content %q", got)
	}
	// The sender can read the copies encrypted to others.
	decryptVerify(alice, copies[bob], true)

	for _, who := range []string{bob, dave} {
		if bytes.Contains(bytes.ToLower(copies[who]), []byte("carol")) {
			t.Errorf("%s's copy names the Bcc recipient", who)
		}
		if bytes.Contains(bytes.ToLower(copies[who]), []byte("\nbcc:")) {
			t.Errorf("%s's copy carries a Bcc header", who)
		}
	}
	// carol is not among the CMS recipients of bob's copy.
	in := writeFile(t, filepath.Join(dir, "bob-for-carol.eml"), copies[bob])
	if r := run(t, nil, nil, openssl, "cms", "-decrypt", "-in", in, "-recip", keyFiles[carol][0],
		"-inkey", keyFiles[carol][1], "-out", filepath.Join(dir, "nope.eml")); r.code == 0 {
		t.Errorf("carol's key opens bob's copy: the Bcc recipient is in its RecipientInfos")
	}

	if got := decryptVerify(bob, stored(bob, "via msmtp"), true); !bytes.Contains(got, []byte("secret from msmtp")) {
		t.Errorf("msmtp message: content %q", got)
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("the mail password reached the proxy's log")
	}
	checkPostfixBDAT(t, pf.LogFile)
}

// checkPostfixBDAT: Postfix offers CHUNKING, so the proxy sends every copy
// with BDAT (RFC 3030), never DATA. Postfix logs the commands of each
// session when it ends ("disconnect from … bdat=1 …"); the log is written
// asynchronously, so the lines are awaited for a moment.
func checkPostfixBDAT(t *testing.T, logFile string) {
	t.Helper()
	var sessions []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		sessions = sessions[:0]
		b, _ := os.ReadFile(logFile)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "postfix/submission/smtpd") && strings.Contains(line, " disconnect from ") &&
				strings.Contains(line, " mail=") {
				sessions = append(sessions, line)
			}
		}
		// swaks: one session with three envelopes; msmtp: one with one.
		if len(sessions) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(sessions) < 2 {
		t.Fatalf("Postfix logged %d submission sessions with mail, want 2:\n%s", len(sessions), strings.Join(sessions, "\n"))
	}
	for _, line := range sessions {
		if !strings.Contains(line, " bdat=") || strings.Contains(line, " data=") {
			t.Errorf("a copy reached Postfix without BDAT: %s", line)
		}
	}
}

// smtpIdentities makes a CA and an identity service on SQLite in dir and
// enrols the given mailboxes (unlocked); it returns the service and the root.
func smtpIdentities(t *testing.T, ctx context.Context, dir string, who ...string) (*identity.Service, *x509.Certificate) {
	t.Helper()
	smime.ConfigureLibrary()
	authority, err := ca.Open(filepath.Join(dir, "ca"), ca.Options{Org: "SMTP e2e Org", RootKeyType: ca.KeyP256})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "ids.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ids, err := identity.New(st, identity.Options{
		CA: authority, CADir: filepath.Join(dir, "ca"), Upstream: smtpNoAuth{},
		Seal:   seal.Params{Time: 1, MemoryKiB: 8 * 1024, Threads: 1},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ids.Close() })
	for _, w := range who {
		tok, _, err := ids.CreateToken(ctx, w, identity.PurposeEnroll, 0)
		if err != nil {
			t.Fatal(err)
		}
		res, err := ids.Enroll(ctx, identity.EnrollRequest{Email: w, Token: tok, Name: w, Password: "digital-id-pw"})
		if err != nil {
			t.Fatalf("enrol %s: %v", w, err)
		}
		if !res.RootAccepted {
			if _, err := ids.AcceptRoot(ctx, w, res.Root.Fingerprint); err != nil {
				t.Fatal(err)
			}
		}
	}
	chain := authority.Chain()
	return ids, chain[len(chain)-1]
}

// smtpNoAuth refuses identity's user calls: the test makes none.
type smtpNoAuth struct{}

func (smtpNoAuth) Authenticate(context.Context, string, identity.Secret) error {
	return fmt.Errorf("not used: %w", identity.ErrAuthFailed)
}

type smtpLockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *smtpLockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *smtpLockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
