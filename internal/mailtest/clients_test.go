package mailtest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func TestRedactAuth(t *testing.T) {
	tests := []struct {
		name, in   string
		secretGone string
		keep       string
	}{
		{"plain with initial response",
			" -> EHLO x\n ~> AUTH PLAIN AGFsaWNlAHNlY3JldA==\n<~  235 2.7.0 Authentication successful\n ~> MAIL FROM:<a@b>\n",
			"AGFsaWNlAHNlY3JldA==", "~> MAIL FROM:<a@b>"},
		{"login with challenges",
			" ~> AUTH LOGIN\n<~  334 VXNlcm5hbWU6\n ~> YWxpY2U=\n<~  334 UGFzc3dvcmQ6\n ~> c2VjcmV0\n<~  235 ok\n ~> QUIT\n",
			"c2VjcmV0", "~> QUIT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := redactAuth(tc.in)
			if strings.Contains(got, tc.secretGone) {
				t.Errorf("credential survived redaction:\n%s", got)
			}
			if !strings.Contains(got, tc.keep) {
				t.Errorf("line after AUTH %q was redacted too:\n%s", tc.keep, got)
			}
		})
	}
}

// TestWaitForMessage: a message delivered while the poll runs is found;
// without one the wait ends at the deadline with ErrNoMatch.
func TestWaitForMessage(t *testing.T) {
	up, err := StartUpstream(t.Context(), UpstreamOptions{
		Users:    map[string]string{"alice@demo.test": "alicepw", "bob@demo.test": "bobpw"},
		SMTPAddr: "127.0.0.1:0", IMAPAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	bob := IMAPLogin{Addr: up.IMAPAddr(), User: "bob@demo.test", Password: "bobpw"}
	go func() {
		time.Sleep(150 * time.Millisecond)
		// No TLS configured: plain AUTH on loopback is allowed.
		c, err := smtp.Dial(up.SMTPAddr())
		if err == nil {
			defer c.Close()
			if err = c.Auth(sasl.NewPlainClient("", "alice@demo.test", "alicepw")); err == nil {
				err = c.SendMail("alice@demo.test", []string{"bob@demo.test"}, bytes.NewReader(testMessage("late")))
			}
		}
		if err != nil {
			t.Errorf("plain submission: %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	m, err := WaitForMessage(ctx, bob, "INBOX", func(m Message) bool {
		return bytes.Contains(m.Raw, []byte("Subject: late"))
	})
	if err != nil || m.UID != 1 {
		t.Fatalf("WaitForMessage = UID %d, %v; want the late message", m.UID, err)
	}

	short, cancel2 := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel2()
	start := time.Now()
	_, err = WaitForMessage(short, bob, "INBOX", func(Message) bool { return false })
	if !errors.Is(err, ErrNoMatch) {
		t.Errorf("no match: %v, want ErrNoMatch", err)
	}
	// Without the deadline it would poll forever; 10 s is room for load.
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("wait without a match took %v, past its 300 ms deadline", took)
	}
}
