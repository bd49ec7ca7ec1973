package mailtest

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPostfixSubmissionToDovecot runs the whole real chain once: swaks and
// msmtp submit with STARTTLS + AUTH to Postfix, Postfix delivers to
// Dovecot by LMTP, the messages are read over IMAP and synced with mbsync.
func TestPostfixSubmissionToDovecot(t *testing.T) {
	t.Parallel() // waits on daemons, not the CPU
	start := time.Now()
	d := StartDovecot(t, DovecotOptions{Users: map[string]string{
		"alice@example.test": "alicepw", "bob@example.test": "bobpw",
	}})
	dovecotUp := time.Since(start)
	p := StartPostfix(t, PostfixOptions{Dovecot: d})
	t.Logf("dovecot ready after %v, postfix after a further %v", dovecotUp.Round(time.Millisecond),
		(time.Since(start) - dovecotUp).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	sub := Submission{
		Addr: p.SubmissionAddr, TLS: TLSStartTLS, CAFile: d.TLS.CertFile,
		User: "alice@example.test", Password: "alicepw",
		From: "alice@example.test", To: []string{"bob@example.test"},
	}
	bySubject := func(subject string) func(Message) bool {
		return func(m Message) bool { return bytes.Contains(m.Raw, []byte("Subject: "+subject+"\r\n")) }
	}
	bob := d.Login("bob@example.test", TLSStartTLS)

	t0 := time.Now()
	sub.Message = []byte("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: via swaks\r\n\r\nhello from swaks\r\n")
	out, err := RunSwaks(ctx, t, sub)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(out, "alicepw") || !strings.Contains(out, "235 ") {
		t.Errorf("swaks transcript must show AUTH success and no password:\n%s", out)
	}
	m, err := WaitForMessage(ctx, bob, "INBOX", bySubject("via swaks"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("swaks submission visible over IMAP after %v", time.Since(t0).Round(time.Millisecond))
	if !bytes.Contains(m.Raw, []byte("with ESMTPSA")) || !bytes.Contains(m.Raw, []byte("hello from swaks")) {
		t.Errorf("delivered message lacks the authenticated-submission Received field or the body:\n%s", m.Raw)
	}

	sub.Mech = "LOGIN"
	sub.Message = []byte("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: via msmtp\r\n\r\nhello from msmtp\r\n")
	if out, err := RunMsmtp(ctx, t, sub); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := WaitForMessage(ctx, bob, "INBOX", bySubject("via msmtp")); err != nil {
		t.Fatal(err)
	}

	wrong := sub
	wrong.Mech, wrong.Password = "", "nope"
	var exit *exec.ExitError
	if out, err := RunSwaks(ctx, t, wrong); !errors.As(err, &exit) || exit.ExitCode() != 28 {
		t.Errorf("wrong password: %v, want swaks exit 28 (AUTH error)\n%s", err, out)
	}

	// Nothing leaves 127.0.0.1: a foreign domain is refused at RCPT.
	out2 := Submission{Addr: p.SMTPAddr, From: "alice@example.test", To: []string{"x@elsewhere.invalid"}, Message: sub.Message}
	if out, err := RunSwaks(ctx, t, out2); !errors.As(err, &exit) || exit.ExitCode() != 24 ||
		!strings.Contains(out, "no outbound mail in tests") {
		t.Errorf("foreign recipient: %v, want swaks exit 24 (no recipient accepted)\n%s", err, out)
	}

	t0 = time.Now()
	synced, err := RunMbsync(ctx, t, bob, d.TLS.CertFile, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mbsync took %v", time.Since(t0).Round(time.Millisecond))
	inbox := bytes.Join(synced.Folders["INBOX"], []byte("\n--\n"))
	if n := len(synced.Folders["INBOX"]); n != 2 || !bytes.Contains(inbox, []byte("hello from swaks")) ||
		!bytes.Contains(inbox, []byte("hello from msmtp")) {
		t.Fatalf("mbsync INBOX: %d files, want the 2 submitted messages; folders %v", n, keys(synced.Folders))
	}
	if _, ok := synced.Folders["Sent"]; !ok {
		t.Errorf("mbsync did not create the Sent folder; folders %v", keys(synced.Folders))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
