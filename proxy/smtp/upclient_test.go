package smtp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"smimeproxy/internal/mailtest"
	"smimeproxy/policy"
)

// writeSplit writes msg to w in pieces of random sizes.
func writeSplit(t *testing.T, w io.Writer, msg []byte, rng *rand.Rand) {
	t.Helper()
	for len(msg) > 0 {
		n := min(len(msg), 1+rng.IntN(40))
		if _, err := w.Write(msg[:n]); err != nil {
			t.Fatal(err)
		}
		msg = msg[n:]
	}
}

// TestDotWriter: the buffer-wise dot-stuffing gives what net/textproto's
// byte-wise DotWriter gives, however the content is split into writes, and
// adds the CRLF a content without one lacks.
func TestDotWriter(t *testing.T) {
	cases := []string{
		"plain\r\n",
		".\r\n",
		"..\r\n",
		".lead\r\nmid\r\n.dot\r\n..two\r\n. \r\n.",
		"no final line end",
		strings.Repeat("line\r\n.\r\n", 200),
		"a\r\n\r\n.\r\n\r\n.x",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, in := range cases {
		for round := range 5 {
			var want bytes.Buffer
			ref := textproto.NewWriter(bufio.NewWriter(&want)).DotWriter()
			io.WriteString(ref, in)
			if in != "" && !strings.HasSuffix(in, "\r\n") {
				io.WriteString(ref, "\r\n")
			}
			ref.Close()

			var got bytes.Buffer
			bw := bufio.NewWriter(&got)
			dw := dotWriter{w: bw, bol: true}
			if round == 0 {
				dw.Write([]byte(in))
			} else {
				writeSplit(t, &dw, []byte(in), rng)
			}
			if err := dw.finish(); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Fatalf("%q (round %d):\ngot  %q\nwant %q", in, round, got.String(), want.String())
			}
		}
	}
	// An empty message is just the terminator (textproto would add an
	// empty line).
	var got bytes.Buffer
	bw := bufio.NewWriter(&got)
	dw := dotWriter{w: bw, bol: true}
	if err := dw.finish(); err != nil || got.String() != ".\r\n" {
		t.Errorf("empty message: %q, %v", got.String(), err)
	}
}

// testUpstream starts a mailtest upstream with STARTTLS and implicit TLS
// listeners.
func testUpstream(t *testing.T) (*mailtest.Upstream, *mailtest.ServerTLS) {
	t.Helper()
	st, err := mailtest.NewServerTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up, err := mailtest.StartUpstream(t.Context(), mailtest.UpstreamOptions{
		Users: map[string]string{alice: mailPW}, TLS: st.Server, InsecureAuth: true,
		SMTPAddr: "127.0.0.1:0", SMTPSAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	return up, st
}

// testProxy is a Proxy value for dialing the upstream only.
func testProxy(addr, mode string, st *mailtest.ServerTLS) *Proxy {
	o := Options{Upstream: addr, UpstreamTLS: mode, Hostname: "proxy.test",
		DialTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second, DataTimeout: 10 * time.Second}
	if st != nil {
		o.UpstreamTLSConfig = st.Client()
	}
	return &Proxy{opts: o, log: slog.New(slog.DiscardHandler)}
}

// TestUpstreamTLSModes: STARTTLS (RFC 3207) and implicit TLS to the
// upstream, with AUTH PLAIN and LOGIN; a wrong password is errUpstreamAuth
// and STARTTLS with an upstream that does not offer it fails.
func TestUpstreamTLSModes(t *testing.T) {
	up, st := testUpstream(t)
	ctx := t.Context()
	for _, tc := range []struct {
		mode, addr string
	}{{TLSStartTLS, up.SMTPAddr()}, {TLSImplicit, up.SMTPSAddr()}} {
		p := testProxy(tc.addr, tc.mode, st)
		c, err := p.authUpstream(ctx, alice, mailPW)
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		msg := []byte(compose(alice, bob, "", "", "tls "+tc.mode, "over "+tc.mode))
		if err := c.Mail(ctx, alice, mailOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt(ctx, bob); err != nil {
			t.Fatal(err)
		}
		if err := c.Send(ctx, func(w io.Writer) error { _, err := w.Write(msg); return err }); err != nil {
			t.Fatalf("%s: send: %v", tc.mode, err)
		}
		if err := c.Quit(); err != nil {
			t.Errorf("%s: QUIT: %v", tc.mode, err)
		}
		envs := up.Envelopes()
		if last := envs[len(envs)-1]; !last.TLS || !last.BDAT || !bytes.Equal(last.Data, msg) || last.User != alice {
			t.Errorf("%s: upstream got %+v", tc.mode, last)
		}

		if _, err := p.authUpstream(ctx, alice, "wrong"); !errors.Is(err, errUpstreamAuth) {
			t.Errorf("%s, wrong password: %v, want errUpstreamAuth", tc.mode, err)
		} else if strings.Contains(err.Error(), "wrong") {
			t.Errorf("the password is in the error: %v", err)
		}
	}

	// AUTH LOGIN, used when PLAIN is not offered.
	c, err := testProxy(up.SMTPSAddr(), TLSImplicit, st).dialUpstream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.authLogin(ctx, alice, "wrong"); smtpCode(errors.Unwrap(err)) != 535 {
		t.Errorf("AUTH LOGIN with a wrong password: %v, want 535", err)
	}
	if err := c.authLogin(ctx, alice, mailPW); err != nil {
		t.Errorf("AUTH LOGIN: %v", err)
	}

	// An upstream without TLS cannot do STARTTLS.
	plain, err := mailtest.StartUpstream(ctx, mailtest.UpstreamOptions{SMTPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := testProxy(plain.SMTPAddr(), TLSStartTLS, st).dialUpstream(ctx); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("STARTTLS to an upstream without it: %v", err)
	}
}

// TestTransferPathsSameBytes: a message with dot lines and no final CRLF,
// written in small pieces, reaches the upstream as the same bytes (plus
// CRLF) by BDAT in many chunks and by DATA.
func TestTransferPathsSameBytes(t *testing.T) {
	up, _ := testUpstream(t)
	relay := startHideExtension(t, up.SMTPAddr(), "CHUNKING")
	ctx := t.Context()
	body := strings.Repeat(".dot line\r\n..two dots\r\nplain line\r\n.\r\n", 300) + "last line without CRLF"
	msg := []byte(compose(alice, bob, "", "", "paths", body))
	msg = msg[:len(msg)-2] // compose ends the body with CRLF
	want := append(bytes.Clone(msg), '\r', '\n')
	rng := rand.New(rand.NewPCG(3, 4))
	for _, path := range []string{"BDAT", "DATA"} {
		addr := up.SMTPAddr()
		if path == "DATA" {
			addr = relay.addr
		}
		c, err := testProxy(addr, TLSNone, nil).authUpstream(ctx, alice, mailPW)
		if err != nil {
			t.Fatal(err)
		}
		if c.Chunking() != (path == "BDAT") {
			t.Fatalf("%s: Chunking() = %v", path, c.Chunking())
		}
		c.chunkSize = 1000 // many chunks, none aligned with a write
		for i := range 2 { // the BDAT buffer is reused for the second
			if err := c.Mail(ctx, alice, mailOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := c.Rcpt(ctx, bob); err != nil {
				t.Fatal(err)
			}
			if err := c.Send(ctx, func(w io.Writer) error { writeSplit(t, w, msg, rng); return nil }); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			envs := up.Envelopes()
			got := envs[len(envs)-1]
			if got.BDAT != (path == "BDAT") || !bytes.Equal(got.Data, want) {
				t.Errorf("%s, message %d: BDAT=%v, %d bytes arrived, want %d (equal: %v)", path, i, got.BDAT, len(got.Data), len(want), bytes.Equal(got.Data, want))
			}
		}
		c.Quit()
	}
	for _, cmd := range relay.commands() {
		if strings.HasPrefix(strings.ToUpper(cmd), "BDAT") {
			t.Errorf("BDAT sent to an upstream without CHUNKING: %q", cmd)
		}
	}
}

// TestBDATChunkRefused: a refused chunk before the last is the upstream's
// reply, no further chunk is sent, and after RSET the connection carries
// the next message.
func TestBDATChunkRefused(t *testing.T) {
	up, _ := testUpstream(t)
	ctx := t.Context()
	c, err := testProxy(up.SMTPAddr(), TLSNone, nil).authUpstream(ctx, alice, mailPW)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.chunkSize = 512
	msg := []byte(compose(alice, bob, "", "", "refused", strings.Repeat("x", 5000)))
	up.SetFault(mailtest.Fault{RefuseDataAfter: 1500, RefuseReply: mailtest.Reply{Code: 452, Enhanced: [3]int{4, 3, 1}, Text: "no room"}})
	c.Mail(ctx, alice, mailOptions{})
	c.Rcpt(ctx, bob)
	writes := 0
	err = c.Send(ctx, func(w io.Writer) error {
		for i := 0; i < len(msg); i += 100 {
			if _, err := w.Write(msg[i:min(len(msg), i+100)]); err != nil {
				return err
			}
			writes++
		}
		return nil
	})
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || se.Code != 452 || se.EnhancedCode != (gosmtp.EnhancedCode{4, 3, 1}) || se.Message != "no room" {
		t.Fatalf("refused chunk: %v, want 452 4.3.1 no room", err)
	}
	if writes > 2048/100 {
		t.Errorf("%d writes accepted after the refusal of the third chunk", writes)
	}
	up.SetFault(mailtest.Fault{})
	if err := c.Reset(ctx); err != nil {
		t.Fatalf("RSET after the refusal: %v", err)
	}
	c.Mail(ctx, alice, mailOptions{})
	c.Rcpt(ctx, bob)
	if err := c.Send(ctx, func(w io.Writer) error { _, err := w.Write(msg); return err }); err != nil {
		t.Fatalf("next message: %v", err)
	}
}

// scripted serves one connection: for each step it reads a command line
// (unless want is empty), checks its prefix and writes the reply.
type step struct{ want, reply string }

func scripted(t *testing.T, steps []step) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		for _, s := range steps {
			if s.want != "" {
				line, err := r.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, s.want) {
					t.Errorf("server got %q (%v), want %q", line, err, s.want)
					return
				}
			}
			io.WriteString(conn, s.reply)
		}
		io.Copy(io.Discard, r)
	}()
	return l.Addr().String()
}

// TestUpClientReplies: HELO when EHLO is unknown, multi-line refusals with
// enhanced status, a reply out of place marking the connection lost for
// good, and bytes injected after the STARTTLS reply refused.
func TestUpClientReplies(t *testing.T) {
	ctx := t.Context()
	addr := scripted(t, []step{
		{"", "220 old.test\r\n"},
		{"EHLO proxy.test", "502 5.5.1 what?\r\n"},
		{"HELO proxy.test", "250 old.test\r\n"},
		{"MAIL FROM:<a@x.test>", "451-4.3.0 queue\r\n451 4.3.0 full\r\n"},
		{"MAIL FROM:<a@x.test>", "250 ok\r\n"},
		{"RCPT TO:<b@x.test>", "354 go ahead\r\n"}, // out of place
	})
	c, err := testProxy(addr, TLSNone, nil).dialUpstream(ctx)
	if err != nil {
		t.Fatalf("HELO fallback: %v", err)
	}
	defer c.Close()
	if ok, _ := c.Extension("PIPELINING"); ok || c.Chunking() {
		t.Errorf("extensions after HELO: %v", c.ext)
	}
	err = c.Mail(ctx, "a@x.test", mailOptions{})
	if r, lost := fromUpstream(err, "id"); lost || r.Code != 451 || r.EnhancedCode != (gosmtp.EnhancedCode{4, 3, 0}) || r.Message != "Mail server: queue full" {
		t.Errorf("multi-line refusal: %v → %+v lost=%v", err, r, lost)
	}
	if err := c.Mail(ctx, "a@x.test", mailOptions{}); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt(ctx, "b@x.test")
	if _, lost := fromUpstream(err, "id"); !lost || !errors.Is(err, errUpstreamProtocol) {
		t.Errorf("354 to RCPT: %v, want a lost connection", err)
	}
	if err2 := c.Reset(ctx); !errors.Is(err2, errUpstreamProtocol) {
		t.Errorf("command after the protocol error: %v, want the same error without I/O", err2)
	}
	if err := c.Rcpt(ctx, "b\r\nDATA@x.test"); smtpCode(err) != 553 {
		t.Errorf("address with CRLF: %v, want a 553 refusal", err)
	}

	inject := scripted(t, []step{
		{"", "220 mx.test\r\n"},
		{"EHLO", "250-mx.test\r\n250 STARTTLS\r\n"},
		{"STARTTLS", "220 go ahead\r\n250 injected\r\n"},
	})
	if _, err := testProxy(inject, TLSStartTLS, nil).dialUpstream(ctx); !errors.Is(err, errUpstreamProtocol) {
		t.Errorf("bytes after the STARTTLS reply: %v, want errUpstreamProtocol", err)
	}
}

// TestUpClientContext: a cancelled context ends a wait at once, as a lost
// connection.
func TestUpClientContext(t *testing.T) {
	addr := scripted(t, []step{
		{"", "220 mx.test\r\n"},
		{"EHLO", "250 mx.test\r\n"},
	}) // then never answers
	c, err := testProxy(addr, TLSNone, nil).dialUpstream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.Mail(ctx, "a@x.test", mailOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Errorf("MAIL to a silent upstream: %v after %v", err, time.Since(start))
	}
	if _, lost := fromUpstream(err, "id"); !lost {
		t.Errorf("not a lost connection: %v", err)
	}
}

// TestMailParameters: MAIL FROM upstream carries SMTPUTF8, with
// BODY=8BITMIME, only when the client declared SMTPUTF8 (the header may
// then be UTF-8); otherwise no parameter, since every copy is 7-bit.
// The UTF-8 message reaches the upstream, over BDAT.
func TestMailParameters(t *testing.T) {
	e := newEnv(t, envOptions{})
	relay := startHideExtension(t, e.up.SMTPAddr(), "XNONE") // records commands, hides nothing
	e.upAddr = relay.addr
	e.addr = e.startProxy(policy.Policy{}, 0)
	r := e.raw(alice)
	msg := "From: " + alice + "\r\nTo: " + bob + "\r\nSubject: Grüße\r\nMessage-ID: <utf8@example.test>\r\n\r\nbody\r\n.\r\n"
	if code, m := r.dataWith("SMTPUTF8", alice, []string{bob}, []byte(msg)); code != 250 {
		t.Fatalf("SMTPUTF8 message: %d %s", code, m)
	}
	if code, m := r.data(alice, []string{bob}, []byte(strings.Replace(msg, "Grüße", "plain", 1))); code != 250 {
		t.Fatalf("plain message: %d %s", code, m)
	}
	var mails []string
	for _, c := range relay.commands() {
		if strings.HasPrefix(c, "MAIL ") {
			mails = append(mails, c)
		}
	}
	want := []string{"MAIL FROM:<" + alice + "> BODY=8BITMIME SMTPUTF8", "MAIL FROM:<" + alice + ">"}
	if !slices.Equal(mails, want) {
		t.Errorf("MAIL commands upstream: %q, want %q", mails, want)
	}
	envs := e.up.Envelopes()
	if len(envs) != 2 || !envs[0].BDAT || !bytes.Contains(envs[0].Data, []byte("Subject: Grüße")) {
		t.Errorf("upstream envelopes: %d, first BDAT=%v", len(envs), len(envs) > 0 && envs[0].BDAT)
	}
}
