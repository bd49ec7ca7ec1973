package smtp

import (
	"encoding/base64"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// rawSession is a line-level client for input go-smtp's client would clean
// up (bare LF, NUL).
type rawSession struct {
	t    testing.TB
	conn net.Conn
	tp   *textproto.Conn
}

func (e *env) raw(user string) *rawSession {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := &rawSession{t: e.t, conn: conn, tp: textproto.NewConn(conn)}
	r.expect(220)
	r.cmd(250, "EHLO raw.test")
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + mailPW))
	r.cmd(235, "AUTH PLAIN "+ir)
	return r
}

func (r *rawSession) expect(code int) string {
	r.t.Helper()
	_, msg, err := r.tp.ReadResponse(code)
	if err != nil {
		r.t.Fatalf("expected %d: %v", code, err)
	}
	return msg
}

func (r *rawSession) cmd(code int, line string) string {
	r.t.Helper()
	if err := r.tp.PrintfLine("%s", line); err != nil {
		r.t.Fatal(err)
	}
	return r.expect(code)
}

// data sends MAIL, RCPTs and DATA with body written byte for byte (body
// must end with the terminating CRLF.CRLF) and returns the final reply.
func (r *rawSession) data(from string, rcpts []string, body []byte) (int, string) {
	r.t.Helper()
	return r.dataWith("", from, rcpts, body)
}

// dataWith is data with MAIL FROM parameters (e.g. "BODY=8BITMIME").
func (r *rawSession) dataWith(params, from string, rcpts []string, body []byte) (int, string) {
	r.t.Helper()
	r.cmd(250, strings.TrimSpace("MAIL FROM:<"+from+"> "+params))
	for _, rc := range rcpts {
		r.cmd(250, "RCPT TO:<"+rc+">")
	}
	r.cmd(354, "DATA")
	if _, err := r.conn.Write(body); err != nil {
		r.t.Fatal(err)
	}
	code, msg, err := r.tp.ReadResponse(0)
	if err != nil && code == 0 {
		r.t.Fatalf("reply to DATA: %v", err)
	}
	return code, msg
}

// rawConn connects without logging in.
func (e *env) rawConn() *rawSession {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawSession{t: e.t, conn: conn, tp: textproto.NewConn(conn)}
}
