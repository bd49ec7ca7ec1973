package smtp

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"smimeproxy/internal/mailtest"
	"smimeproxy/policy"
)

// assertNoClear fails when marker appears in any transaction the upstream
// saw (accepted, refused or cut off): nothing may reach it in clear.
func assertNoClear(t *testing.T, txs []mailtest.Envelope, marker string) {
	t.Helper()
	for _, tx := range txs {
		if bytes.Contains(tx.Data, []byte(marker)) {
			t.Errorf("transaction to %v (accepted=%v dropped=%v) carries the body in clear", tx.Rcpts, tx.Accepted, tx.Dropped)
		}
	}
}

// transferEnv is newEnv with the proxy sending messages by path: "BDAT"
// straight to the upstream (go-smtp offers CHUNKING), "DATA" through a
// relay that hides CHUNKING.
func transferEnv(t *testing.T, path string) *env {
	t.Helper()
	e := newEnv(t, envOptions{})
	if path == "DATA" {
		e.upAddr = startHideExtension(t, e.up.SMTPAddr(), "CHUNKING").addr
		e.addr = e.startProxy(policy.Policy{}, 0)
	}
	return e
}

// checkTransfer fails when a transaction the upstream saw came by the other
// transfer path.
func checkTransfer(t *testing.T, txs []mailtest.Envelope, path string) {
	t.Helper()
	for _, tx := range txs {
		if tx.BDAT != (path == "BDAT") {
			t.Errorf("transaction to %v: BDAT=%v, want the %s path", tx.Rcpts, tx.BDAT, path)
		}
	}
}

// TestUpstreamFaults: each upstream failure reaches the client as the
// matching reply, over BDAT and over DATA, and nothing counts as sent that
// the upstream did not accept.
func TestUpstreamFaults(t *testing.T) {
	for _, path := range []string{"BDAT", "DATA"} {
		t.Run(path, func(t *testing.T) { upstreamFaults(t, path) })
	}
}

func upstreamFaults(t *testing.T, path string) {
	e := transferEnv(t, path)
	big := strings.Repeat("filler line to make the message long enough to be cut off mid-DATA\r\n", 1500)
	cases := []struct {
		name  string
		fault mailtest.Fault
		// where the client must see the failure, and with what
		stage    string // "auth", "mail", "rcpt", "data"
		code     int
		enhanced gosmtp.EnhancedCode
		text     string
	}{
		{"refused connections", mailtest.Fault{Refuse: true}, "auth", 454, gosmtp.EnhancedCode{4, 7, 0}, "cannot be reached"},
		{"auth service down", mailtest.Fault{Auth: &mailtest.Reply{Code: 454, Enhanced: [3]int{4, 7, 0}, Text: "auth down"}}, "auth", 454, gosmtp.EnhancedCode{4, 7, 0}, "cannot be reached"},
		{"MAIL refused", mailtest.Fault{Mail: &mailtest.Reply{Code: 451, Enhanced: [3]int{4, 3, 0}, Text: "try later"}}, "mail", 451, gosmtp.EnhancedCode{4, 3, 0}, "Mail server: try later"},
		{"RCPT refused", mailtest.Fault{Rcpt: map[string]mailtest.Reply{bob: {Code: 550, Enhanced: [3]int{5, 1, 1}, Text: "no such user\r\nX-Injected: yes"}}}, "rcpt", 550, gosmtp.EnhancedCode{5, 0, 0}, "Mail server: no such user"},
		{"dropped mid-DATA", mailtest.Fault{DropDataAfter: 4096}, "data", 451, gosmtp.EnhancedCode{4, 4, 2}, "connection to the mail server was lost"},
		{"452 at end of DATA", mailtest.Fault{Data: map[string]mailtest.Reply{"*": {Code: 452, Enhanced: [3]int{4, 2, 2}, Text: "mailbox full"}}}, "data", 452, gosmtp.EnhancedCode{4, 2, 2}, "Mail server: mailbox full"},
		{"554 at end of DATA", mailtest.Fault{Data: map[string]mailtest.Reply{"*": {Code: 554, Enhanced: [3]int{5, 7, 1}, Text: "rejected by policy"}}}, "data", 554, gosmtp.EnhancedCode{5, 7, 1}, "Mail server: rejected by policy"},
		{"452 mid-message", mailtest.Fault{RefuseDataAfter: 4096, RefuseReply: mailtest.Reply{Code: 452, Enhanced: [3]int{4, 3, 1}, Text: "spool full"}}, "data", 452, gosmtp.EnhancedCode{4, 3, 1}, "Mail server: spool full"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.up.Transactions())
			marker := "SECRET-" + strings.ReplaceAll(tc.name, " ", "-")
			var c *gosmtp.Client
			if tc.stage != "auth" {
				c = e.client(alice)
			}
			if err := e.up.SetFault(tc.fault); err != nil {
				t.Fatal(err)
			}
			defer e.up.SetFault(mailtest.Fault{})
			var err error
			if tc.stage == "auth" {
				r := e.rawConn()
				r.expect(220)
				r.cmd(250, "EHLO x")
				r.tp.PrintfLine("AUTH PLAIN %s", b64("\x00"+alice+"\x00"+mailPW))
				code, msg, rerr := r.tp.ReadResponse(235)
				if rerr == nil || code != tc.code || !strings.Contains(msg, tc.text) {
					t.Fatalf("AUTH: got %d %q, want %d containing %q", code, msg, tc.code, tc.text)
				}
				return
			}
			msg := compose(alice, bob+", "+carol, "", "", tc.name, marker+"\r\n"+big)
			if tc.stage == "rcpt" {
				err = sendRcptRefused(t, c, msg)
			} else {
				err = send(c, alice, []string{bob, carol}, msg)
			}
			se, ok := err.(*gosmtp.SMTPError)
			if !ok {
				t.Fatalf("want an SMTP error, got %v", err)
			}
			if strings.ContainsAny(se.Message, "\r\n") {
				t.Errorf("reply text spans lines: %q", se.Message)
			}
			if se.Code != tc.code || se.EnhancedCode != tc.enhanced || !strings.Contains(se.Message, tc.text) {
				t.Errorf("got %d %v %q, want %d %v containing %q", se.Code, se.EnhancedCode, se.Message, tc.code, tc.enhanced, tc.text)
			}
			txs := e.up.Transactions()[before:]
			checkTransfer(t, txs, path)
			for _, tx := range txs {
				if tx.Accepted && tc.stage != "rcpt" {
					t.Errorf("upstream accepted a transaction to %v although the client was refused", tx.Rcpts)
				}
			}
			assertNoClear(t, txs, marker)
			if tc.stage == "rcpt" {
				// The other recipient still works, and nothing was sent
				// to the refused one.
				if len(txs) != 1 || len(txs[0].Rcpts) != 1 || txs[0].Rcpts[0] != carol || !txs[0].Accepted {
					t.Errorf("after a refused RCPT: transactions %+v", txs)
				}
			}
			if tc.stage == "data" && tc.name == "dropped mid-DATA" {
				if len(txs) == 0 || !txs[len(txs)-1].Dropped {
					t.Errorf("the upstream did not see a cut-off transaction")
				}
			}
			if tc.stage == "data" && tc.code != 451 {
				// A refusal leaves the session and the upstream
				// connection usable.
				e.up.SetFault(mailtest.Fault{})
				if err := send(c, alice, []string{bob}, compose(alice, bob, "", "", "after "+tc.name, "next")); err != nil {
					t.Errorf("next message after the refusal: %v", err)
				}
			}
		})
	}
}

// TestMultiChunkFaults: a message of several BDAT chunks (1 MB each) whose
// upstream refuses a chunk before the last, or drops the connection in
// one, gets that refusal or 451 4.4.2, never 250; the same message goes
// through when the upstream behaves.
func TestMultiChunkFaults(t *testing.T) {
	e := newEnv(t, envOptions{})
	line := "a line of filler text so the encrypted copy spans several BDAT chunks\r\n"
	body := "SECRET-multichunk\r\n" + strings.Repeat(line, (2<<20)/len(line))
	msg := compose(alice, bob, "", "", "multichunk", body)
	cases := []struct {
		name     string
		fault    mailtest.Fault
		code     int
		enhanced gosmtp.EnhancedCode
	}{
		{"refused in chunk 2", mailtest.Fault{RefuseDataAfter: 1<<20 + 5000, RefuseReply: mailtest.Reply{Code: 552, Enhanced: [3]int{5, 3, 4}, Text: "too big after all"}}, 552, gosmtp.EnhancedCode{5, 3, 4}},
		{"dropped in chunk 2", mailtest.Fault{DropDataAfter: 1<<20 + 5000}, 451, gosmtp.EnhancedCode{4, 4, 2}},
		{"accepted", mailtest.Fault{}, 0, gosmtp.EnhancedCode{}},
	}
	for _, tc := range cases {
		before := len(e.up.Transactions())
		if err := e.up.SetFault(tc.fault); err != nil {
			t.Fatal(err)
		}
		err := send(e.client(alice), alice, []string{bob}, msg)
		txs := e.up.Transactions()[before:]
		if tc.code == 0 {
			if err != nil || len(txs) != 1 || !txs[0].Accepted || !txs[0].BDAT || txs[0].Size < 2<<20 {
				t.Fatalf("%s: %v, transactions %+v", tc.name, err, txs)
			}
			if o := e.open(txs[0].Data, bob); !o.encrypted || !o.valid || !strings.Contains(string(o.entity), "SECRET-multichunk") {
				t.Errorf("%s: copy encrypted=%v valid=%v", tc.name, o.encrypted, o.valid)
			}
			continue
		}
		se, ok := err.(*gosmtp.SMTPError)
		if !ok || se.Code != tc.code || se.EnhancedCode != tc.enhanced {
			t.Errorf("%s: got %v, want %d %v", tc.name, err, tc.code, tc.enhanced)
		}
		if len(txs) != 1 || txs[0].Accepted || !txs[0].BDAT || txs[0].Size <= 1<<20 {
			t.Errorf("%s: transactions %+v, want one cut off in the second chunk", tc.name, txs)
		}
		assertNoClear(t, txs, "SECRET-multichunk")
	}
}

func TestPartialDelivery(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(alice)
	if err := e.up.SetFault(mailtest.Fault{Data: map[string]mailtest.Reply{dave: {Code: 452, Enhanced: [3]int{4, 2, 2}, Text: "over quota"}}}); err != nil {
		t.Fatal(err)
	}
	// bob has a certificate (encrypted envelope, first), dave not (signed-only
	// envelope, second): envelope 1 is accepted, envelope 2 fails.
	err := send(c, alice, []string{bob, dave}, compose(alice, bob+", "+dave, "", "", "partial", "partial body"))
	se, ok := err.(*gosmtp.SMTPError)
	if !ok || se.Code != 554 || se.EnhancedCode != (gosmtp.EnhancedCode{5, 3, 0}) {
		t.Fatalf("partial delivery: want 554 5.3.0, got %v", err)
	}
	if !strings.Contains(se.Message, "delivered to "+bob) || !strings.Contains(se.Message, "NOT to "+dave) || !strings.Contains(se.Message, "over quota") {
		t.Errorf("reply does not say who got it: %q", se.Message)
	}
	envs := e.up.Envelopes()
	if len(envs) != 1 || envs[0].Rcpts[0] != bob {
		t.Errorf("accepted envelopes: %+v, want only bob's", envs)
	}
	// The session goes on.
	e.up.SetFault(mailtest.Fault{})
	if err := send(c, alice, []string{dave}, compose(alice, dave, "", "", "resend", "to dave only")); err != nil {
		t.Errorf("resend to dave: %v", err)
	}
}

// sendRcptRefused sends msg to bob (refused) and carol, and returns bob's
// refusal; the message must still reach carol.
func sendRcptRefused(t *testing.T, c *gosmtp.Client, msg string) error {
	t.Helper()
	if err := c.Mail(alice, nil); err != nil {
		t.Fatal(err)
	}
	refusal := c.Rcpt(bob, nil)
	if err := c.Rcpt(carol, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(msg))
	if err := w.Close(); err != nil {
		t.Fatalf("message to the remaining recipient: %v", err)
	}
	return refusal
}

// TestUpstreamTimeout: an upstream that does not answer the end of DATA
// within DataTimeout gives 451 4.4.2, not 250, and the session says so for
// later commands instead of hanging.
func TestUpstreamTimeout(t *testing.T) {
	e := newEnv(t, envOptions{})
	p, err := NewProxy(Options{
		ListenTLS: TLSNone, Upstream: e.up.SMTPAddr(), UpstreamTLS: TLSNone, DataTimeout: 300 * time.Millisecond,
		Keys: e.ids, Policy: policy.Policy{Sign: policy.Always, Encrypt: policy.WhenPossible},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(e.ctx, l)
	t.Cleanup(func() { p.Close() })
	c := e.clientAt(l.Addr().String(), alice)
	if err := e.up.SetFault(mailtest.Fault{DataDelay: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	defer e.up.SetFault(mailtest.Fault{})
	start := time.Now()
	err = send(c, alice, []string{bob}, compose(alice, bob, "", "", "slow", "SECRET-slow"))
	if smtpCode(err) != 451 || !strings.Contains(err.Error(), "4.4.2") && !strings.Contains(err.Error(), "lost") {
		t.Fatalf("upstream silent after DATA: %v, want 451 4.4.2", err)
	}
	// Had the proxy waited for the upstream, it would have got 250 after
	// the 1.5 s delay; the 451 shows it gave up at its DataTimeout.
	t.Logf("451 after %v", time.Since(start).Round(time.Millisecond))
	if err := c.Mail(alice, nil); smtpCode(err) != 451 {
		t.Errorf("MAIL after a lost upstream: %v, want 451", err)
	}
	assertNoClear(t, e.up.Transactions(), "SECRET-slow")
}
