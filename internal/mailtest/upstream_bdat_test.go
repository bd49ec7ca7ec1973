package mailtest

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// bdatSession is a raw SMTP session over implicit TLS, logged in as alice,
// for BDAT exchanges go-smtp's client does not make.
type bdatSession struct {
	t  *testing.T
	c  *tls.Conn
	tp *textproto.Conn
}

func dialBDAT(t *testing.T, up *Upstream, st *ServerTLS) *bdatSession {
	t.Helper()
	c, err := tls.Dial("tcp", up.SMTPSAddr(), st.Client())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	s := &bdatSession{t: t, c: c, tp: textproto.NewConn(c)}
	s.reply(220)
	if ehlo := s.cmd(250, "EHLO bdat.test"); !strings.Contains(ehlo, "\nCHUNKING") {
		t.Fatalf("CHUNKING not offered: %q", ehlo)
	}
	s.cmd(235, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice@demo.test\x00alicepw")))
	return s
}

func (s *bdatSession) reply(want int) string {
	s.t.Helper()
	code, msg, err := s.tp.ReadResponse(0)
	if code != want {
		s.t.Fatalf("reply %d %q (%v), want %d", code, msg, err, want)
	}
	return msg
}

func (s *bdatSession) cmd(want int, line string) string {
	s.t.Helper()
	if err := s.tp.PrintfLine("%s", line); err != nil {
		s.t.Fatal(err)
	}
	return s.reply(want)
}

// chunk sends one BDAT chunk and returns the reply code.
func (s *bdatSession) chunk(data []byte, last bool) int {
	s.t.Helper()
	h := fmt.Sprintf("BDAT %d", len(data))
	if last {
		h += " LAST"
	}
	if _, err := s.c.Write(append([]byte(h+"\r\n"), data...)); err != nil {
		s.t.Fatal(err)
	}
	code, _, err := s.tp.ReadResponse(0)
	if code == 0 {
		s.t.Fatalf("reply to %s: %v", h, err)
	}
	return code
}

// TestUpstreamBDAT: a message in BDAT chunks is delivered byte for byte
// and recorded as BDAT; RefuseDataAfter refuses the chunk in which the
// limit falls, the chunks after it too, and the session goes on after RSET.
func TestUpstreamBDAT(t *testing.T) {
	up, st := startTestUpstream(t)
	msg := append(testMessage("bdat"), []byte(".leading dot stays as it is\r\n")...)
	s := dialBDAT(t, up, st)
	s.cmd(250, "MAIL FROM:<alice@demo.test>")
	s.cmd(250, "RCPT TO:<bob@demo.test>")
	if c := s.chunk(msg[:20], false); c != 250 {
		t.Fatalf("first chunk: %d", c)
	}
	if c := s.chunk(msg[20:], true); c != 250 {
		t.Fatalf("last chunk: %d", c)
	}
	envs := up.Envelopes()
	if len(envs) != 1 || !envs[0].BDAT || !envs[0].TLS || !bytes.Equal(envs[0].Data, msg) {
		t.Fatalf("envelopes %+v, want the message as sent, BDAT over TLS", envs)
	}

	full := Reply{Code: 452, Enhanced: [3]int{4, 2, 2}, Text: "Mailbox full"}
	if err := up.SetFault(Fault{RefuseDataAfter: 30, RefuseReply: full}); err != nil {
		t.Fatal(err)
	}
	s.cmd(250, "MAIL FROM:<alice@demo.test>")
	s.cmd(250, "RCPT TO:<bob@demo.test>")
	if c := s.chunk(msg[:20], false); c != 250 {
		t.Fatalf("chunk before the limit: %d", c)
	}
	if c := s.chunk(msg[20:40], false); c != 452 {
		t.Fatalf("chunk over the limit: %d, want 452", c)
	}
	if c := s.chunk(msg[40:], true); c/100 != 5 {
		t.Fatalf("chunk after the refusal: %d, want 5xx", c)
	}
	s.cmd(250, "RSET")
	txs := up.Transactions()
	if len(txs) != 2 || txs[1].Accepted || txs[1].Reply == nil || txs[1].Reply.Code != 452 || !txs[1].BDAT {
		t.Fatalf("transactions %+v, want the second refused with 452", txs)
	}
	up.SetFault(Fault{})
	s.cmd(250, "MAIL FROM:<alice@demo.test>")
	s.cmd(250, "RCPT TO:<bob@demo.test>")
	if c := s.chunk(msg, true); c != 250 {
		t.Fatalf("message after RSET: %d", c)
	}
	if n := len(up.Envelopes()); n != 2 {
		t.Errorf("%d messages accepted, want 2", n)
	}
}
