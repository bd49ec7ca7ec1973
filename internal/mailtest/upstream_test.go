package mailtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func startTestUpstream(t *testing.T) (*Upstream, *ServerTLS) {
	t.Helper()
	st, err := NewServerTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up, err := StartUpstream(t.Context(), UpstreamOptions{
		Users:     map[string]string{"alice@demo.test": "alicepw", "Bob@demo.test": "bobpw"},
		TLS:       st.Server,
		SMTPAddr:  "127.0.0.1:0",
		SMTPSAddr: "127.0.0.1:0",
		IMAPAddr:  "127.0.0.1:0",
		IMAPSAddr: "127.0.0.1:0",
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	return up, st
}

func testMessage(subject string) []byte {
	return []byte("From: alice@demo.test\r\nTo: bob@demo.test\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@demo.test>\r\n\r\nbody of " + subject + "\r\n")
}

// submit sends msg with STARTTLS + AUTH PLAIN as alice and returns the
// SMTP error, if any.
func submit(t *testing.T, up *Upstream, st *ServerTLS, rcpts []string, msg []byte) error {
	t.Helper()
	c, err := smtp.DialStartTLS(up.SMTPAddr(), st.Client())
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice@demo.test", "alicepw")); err != nil {
		return err
	}
	return c.SendMail("alice@demo.test", rcpts, bytes.NewReader(msg))
}

func TestUpstreamSubmitDeliversToIMAP(t *testing.T) {
	up, st := startTestUpstream(t)
	msg := testMessage("hello")
	if err := submit(t, up, st, []string{"bob@demo.test", "carol@elsewhere.test"}, msg); err != nil {
		t.Fatalf("submit: %v", err)
	}
	ctx := t.Context()
	for _, l := range []IMAPLogin{
		{Addr: up.IMAPAddr(), User: "bob@demo.test", Password: "bobpw", TLS: TLSStartTLS, Config: st.Client()},
		{Addr: up.IMAPSAddr(), User: "BOB@demo.test", Password: "bobpw", TLS: TLSImplicit, Config: st.Client()},
	} {
		msgs, err := FetchMessages(ctx, l, "INBOX")
		if err != nil {
			t.Fatalf("%s: %v", l.TLS, err)
		}
		if len(msgs) != 1 || !bytes.Equal(msgs[0].Raw, msg) {
			t.Fatalf("%s: INBOX of bob = %d messages, want exactly the submitted one", l.TLS, len(msgs))
		}
	}
	if msgs, err := up.Messages(ctx, "alice@demo.test", "INBOX"); err != nil || len(msgs) != 0 {
		t.Errorf("alice's INBOX: %d messages, err %v; want none (she only sent)", len(msgs), err)
	}
	envs := up.Envelopes()
	if len(envs) != 1 {
		t.Fatalf("recorded %d envelopes, want 1", len(envs))
	}
	e := envs[0]
	if e.User != "alice@demo.test" || e.From != "alice@demo.test" || !e.TLS ||
		strings.Join(e.Rcpts, ",") != "bob@demo.test,carol@elsewhere.test" || !bytes.Equal(e.Data, msg) {
		t.Errorf("envelope = %+v", e)
	}
}

func TestUpstreamSMTPExtensionsAndAuth(t *testing.T) {
	up, st := startTestUpstream(t)
	c, err := smtp.Dial(up.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Error("STARTTLS not offered")
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before STARTTLS")
	}
	if err := c.Mail("alice@demo.test", nil); smtpCode(err) != 502 {
		t.Errorf("MAIL without AUTH: %v, want 502", err)
	}
	c.Close()
	c, err = smtp.DialStartTLS(up.SMTPAddr(), st.Client())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, ext := range []string{"SIZE", "8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("%s not offered", ext)
		}
	}
	if !c.SupportsAuth("PLAIN") || !c.SupportsAuth("LOGIN") {
		t.Error("AUTH PLAIN and LOGIN must be offered after STARTTLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@demo.test", "wrong")); smtpCode(err) != 535 {
		t.Errorf("wrong password: %v, want 535", err)
	}
	if err := c.Auth(sasl.NewLoginClient("alice@demo.test", "alicepw")); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	msg := testMessage("login-auth")
	if err := c.SendMail("alice@demo.test", []string{"bob@demo.test"}, bytes.NewReader(msg)); err != nil {
		t.Fatalf("send after AUTH LOGIN: %v", err)
	}
	if got := up.Envelopes(); len(got) != 1 || got[0].User != "alice@demo.test" {
		t.Errorf("envelopes = %+v", got)
	}
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestUpstreamFaults(t *testing.T) {
	up, st := startTestUpstream(t)
	full := Reply{Code: 452, Enhanced: [3]int{4, 2, 2}, Text: "Mailbox full"}
	policy := Reply{Code: 554, Enhanced: [3]int{5, 7, 1}, Text: "Rejected by policy"}
	tests := []struct {
		name     string
		fault    Fault
		wantCode int  // SMTP reply code; 0: a connection error
		wantTxn  bool // the DATA transaction is recorded (refused or dropped)
	}{
		{"rcpt 452", Fault{Rcpt: map[string]Reply{"BOB@demo.test": full}}, 452, false},
		{"rcpt 554 any", Fault{Rcpt: map[string]Reply{"*": policy}}, 554, false},
		{"mail 452", Fault{Mail: &full}, 452, false},
		{"auth 454", Fault{Auth: &Reply{Code: 454, Enhanced: [3]int{4, 7, 0}, Text: "Auth service down"}}, 454, false},
		{"data 452", Fault{Data: map[string]Reply{"bob@demo.test": full}}, 452, true},
		{"data 554", Fault{Data: map[string]Reply{"*": policy}}, 554, true},
		{"drop in data", Fault{DropDataAfter: 10}, 0, true},
		{"refuse in data", Fault{RefuseDataAfter: 10, RefuseReply: full}, 452, true},
		{"refuse", Fault{Refuse: true}, 0, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := up.SetFault(tc.fault); err != nil {
				t.Fatal(err)
			}
			before := len(up.Transactions())
			err := submit(t, up, st, []string{"bob@demo.test"}, testMessage(fmt.Sprintf("fault%d", i)))
			if err == nil {
				t.Fatal("submission succeeded despite the fault")
			}
			if got := smtpCode(err); got != tc.wantCode {
				t.Fatalf("reply code %d (%v), want %d", got, err, tc.wantCode)
			}
			if tc.fault.Refuse && !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("refuse: %v, want ECONNREFUSED", err)
			}
			txns := up.Transactions()[before:]
			if tc.wantTxn != (len(txns) == 1) {
				t.Fatalf("%d new transactions recorded, want recorded=%v", len(txns), tc.wantTxn)
			}
			if tc.fault.DropDataAfter > 0 && (!txns[0].Dropped || len(txns[0].Data) != tc.fault.DropDataAfter ||
				txns[0].Size != int64(tc.fault.DropDataAfter)) {
				t.Errorf("dropped transaction = %+v", txns[0])
			}
			if n := tc.fault.RefuseDataAfter; n > 0 && (txns[0].Accepted || txns[0].Size != int64(n) || txns[0].BDAT) {
				t.Errorf("refused DATA transaction = %+v", txns[0])
			}
		})
	}
	if n := len(up.Envelopes()); n != 0 {
		t.Errorf("%d envelopes accepted under faults", n)
	}
	if msgs, err := up.Messages(t.Context(), "bob@demo.test", "INBOX"); err != nil || len(msgs) != 0 {
		t.Errorf("bob's INBOX after faults: %d messages, err %v; want none", len(msgs), err)
	}
	// Clearing the fault listens again on the same address.
	if err := up.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	if err := submit(t, up, st, []string{"bob@demo.test"}, testMessage("after")); err != nil {
		t.Fatalf("after clearing faults: %v", err)
	}
	if err := up.Close(); err != nil {
		t.Errorf("Close after refuse/resume: %v", err)
	}
	if _, err := smtp.Dial(up.SMTPAddr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial after Close: %v, want ECONNREFUSED", err)
	}
}

func TestUpstreamIMAPFeatures(t *testing.T) {
	up, st := startTestUpstream(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	bob := IMAPLogin{Addr: up.IMAPAddr(), User: "bob@demo.test", Password: "bobpw", TLS: TLSStartTLS, Config: st.Client()}

	wrong := bob
	wrong.Password = "alicepw"
	if _, err := DialIMAP(ctx, wrong); err == nil {
		t.Error("login with another user's password succeeded")
	}
	plain := bob
	plain.TLS = TLSNone
	if _, err := DialIMAP(ctx, plain); err == nil {
		t.Error("login without TLS succeeded although TLS is configured")
	}

	// IDLE sees a delivery made from outside.
	exists := make(chan uint32, 4)
	idleLogin := bob
	c, err := dialIMAPWithHandler(ctx, idleLogin, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Deliver("bob@demo.test", testMessage("idle")); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("IDLE reported %d messages, want 1", n)
		}
	case <-ctx.Done():
		t.Fatal("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}

	// UIDPLUS: APPEND reports the UID; MOVE takes the message to Trash.
	raw := testMessage("appended")
	app := c.Append("INBOX", int64(len(raw)), nil)
	if _, err := app.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	ad, err := app.Wait()
	if err != nil || ad.UID != 2 {
		t.Fatalf("APPEND: %+v, %v; want APPENDUID with UID 2", ad, err)
	}
	if _, err := c.Move(imap.UIDSetNum(ad.UID), "Trash").Wait(); err != nil {
		t.Fatalf("MOVE: %v", err)
	}
	trash, err := up.Messages(ctx, "bob@demo.test", "Trash")
	if err != nil || len(trash) != 1 || !bytes.Equal(trash[0].Raw, raw) {
		t.Fatalf("Trash after MOVE: %d messages, err %v", len(trash), err)
	}
	inbox, err := up.Messages(ctx, "bob@demo.test", "INBOX")
	if err != nil || len(inbox) != 1 || !bytes.Contains(inbox[0].Raw, []byte("Subject: idle")) {
		t.Fatalf("INBOX after MOVE: %d messages, err %v", len(inbox), err)
	}

	// A new password applies to new logins; the mail stays.
	if err := up.AddUser("bob@demo.test", "newpw"); err != nil {
		t.Fatal(err)
	}
	bob.Password = "newpw"
	if msgs, err := FetchMessages(ctx, bob, "INBOX"); err != nil || len(msgs) != 1 {
		t.Errorf("after password change: %d messages, err %v", len(msgs), err)
	}
	if err := up.Deliver("nobody@demo.test", raw); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("Deliver to unknown user: %v, want ErrUnknownUser", err)
	}
}

func dialIMAPWithHandler(ctx context.Context, l IMAPLogin, h *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	cfg := l.Config.Clone()
	cfg.ServerName = "127.0.0.1"
	c, err := imapclient.DialStartTLS(l.Addr, &imapclient.Options{TLSConfig: cfg, UnilateralDataHandler: h})
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { c.Close() })
	if err := c.Login(l.User, l.Password).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func TestUpstreamSizeLimit(t *testing.T) {
	st, err := NewServerTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up, err := StartUpstream(t.Context(), UpstreamOptions{
		Users: map[string]string{"alice@demo.test": "alicepw", "bob@demo.test": "bobpw"},
		TLS:   st.Server, SMTPAddr: "127.0.0.1:0", IMAPAddr: "127.0.0.1:0",
		MaxMessageBytes: 1000, RejectUnknownRecipients: true,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	big := append(testMessage("big"), bytes.Repeat([]byte("0123456789012345678901234567890123456789\r\n"), 50)...)
	if err := submit(t, up, st, []string{"bob@demo.test"}, big); smtpCode(err) != 552 {
		t.Errorf("oversized message: %v, want 552", err)
	}
	if err := submit(t, up, st, []string{"carol@elsewhere.test"}, testMessage("x")); smtpCode(err) != 550 {
		t.Errorf("unknown recipient with RejectUnknownRecipients: %v, want 550", err)
	}
	if err := submit(t, up, st, []string{"bob@demo.test"}, testMessage("small")); err != nil {
		t.Errorf("small message: %v", err)
	}
}

func TestUpstreamDiscardMail(t *testing.T) {
	st, err := NewServerTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up, err := StartUpstream(t.Context(), UpstreamOptions{
		Users: map[string]string{"alice@demo.test": "alicepw", "bob@demo.test": "bobpw"},
		TLS:   st.Server, SMTPAddr: "127.0.0.1:0", IMAPAddr: "127.0.0.1:0",
		DiscardMail: true, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	msg := testMessage("discarded")
	if err := submit(t, up, st, []string{"bob@demo.test"}, msg); err != nil {
		t.Fatal(err)
	}
	envs := up.Envelopes()
	if len(envs) != 1 || envs[0].Data != nil || envs[0].Size != int64(len(msg)) {
		t.Fatalf("envelopes = %+v, want one with size %d and no bytes kept", envs, len(msg))
	}
	if msgs, err := up.Messages(t.Context(), "bob@demo.test", "INBOX"); err != nil || len(msgs) != 0 {
		t.Errorf("INBOX with DiscardMail: %d messages, err %v; want none", len(msgs), err)
	}
}
