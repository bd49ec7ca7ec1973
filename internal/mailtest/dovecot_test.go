package mailtest

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestDovecotLoginAndLMTP(t *testing.T) {
	t.Parallel() // waits on daemons, not the CPU
	start := time.Now()
	d := StartDovecot(t, DovecotOptions{Users: map[string]string{
		"alice@example.test": "alicepw", "bob@example.test": "bobpw",
	}})
	t.Logf("dovecot ready after %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	for _, mode := range []TLSMode{TLSNone, TLSStartTLS, TLSImplicit} {
		c, err := DialIMAP(ctx, d.Login("alice@example.test", mode))
		if err != nil {
			t.Fatalf("login %s: %v", mode, err)
		}
		c.Close()
	}
	wrong := d.Login("alice@example.test", TLSStartTLS)
	wrong.Password = "bobpw"
	// With Dovecot's per-IP auth penalty the second failure in a row
	// would take 4.5 s.
	for i := range 2 {
		t0 := time.Now()
		if _, err := DialIMAP(ctx, wrong); err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
		// Below the 4.5 s penalty, with room for a loaded machine.
		if took := time.Since(t0); took > 4*time.Second {
			t.Errorf("failed login %d took %v: the auth penalty is not off", i+1, took)
		}
	}

	msg := []byte("From: carol@example.test\r\nTo: bob@example.test\r\nSubject: via lmtp\r\n\r\nhi bob\r\n")
	if err := d.DeliverLMTP(ctx, "carol@example.test", []string{"bob@example.test"}, msg); err != nil {
		t.Fatal(err)
	}
	// LMTP delivery is synchronous: no polling needed.
	msgs, err := FetchMessages(ctx, d.Login("bob@example.test", TLSStartTLS), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !bytes.HasSuffix(msgs[0].Raw, msg[bytes.Index(msg, []byte("From:")):]) ||
		!bytes.Contains(msgs[0].Raw, []byte("Delivered-To: bob@example.test")) {
		t.Fatalf("bob's INBOX: %d messages: %+v", len(msgs), msgs)
	}
	stored, err := d.StoredMessages("bob@example.test", "INBOX")
	// Dovecot stores LF line ends; IMAP serves CRLF.
	if err != nil || len(stored) != 1 || !bytes.Equal(stored[0], bytes.ReplaceAll(msgs[0].Raw, []byte("\r\n"), []byte("\n"))) {
		t.Fatalf("Maildir holds %d files (err %v), want the message IMAP returned", len(stored), err)
	}
	if err := d.DeliverLMTP(ctx, "carol@example.test", []string{"nobody@example.test"}, msg); smtpCode(err) != 550 {
		t.Errorf("LMTP to an unknown user: %v, want 550", err)
	}
}
