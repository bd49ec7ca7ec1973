package smtp

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// Buffer sizes of a connection. A large read buffer lets DATA arrive in
// few system calls and be scanned in bulk; it must hold an AUTH line.
const (
	readBufSize  = 32 << 10
	writeBufSize = 4 << 10
)

// maxBadCommands is how many unknown, malformed or out-of-sequence
// commands a connection may send before it is closed with 421.
const maxBadCommands = 10

// conn is one client connection. Replies are buffered and written when the
// server is about to wait for input (flushReader): a pipelined group of
// commands (RFC 2920) gets its replies in one write, and a client waiting
// for a reply always gets it before the server waits.
type conn struct {
	srv  *server
	raw  net.Conn // the accepted connection; closed by server.Close
	nc   net.Conn // raw, or the TLS connection over it
	br   *bufio.Reader
	w    *bufio.Writer
	werr error // first write error; the connection is then dropped
	info connInfo
	log  *slog.Logger
	sess serverSession

	greeted bool // EHLO or HELO was accepted
	authed  bool
	mailOK  bool // MAIL was accepted; a transaction is open
	rcpts   int  // RCPT commands accepted in the transaction
	bad     int  // bad commands so far
	bdat    *bdatTransfer
}

func newConn(s *server, nc net.Conn) *conn {
	var b [6]byte
	rand.Read(b[:])
	c := &conn{srv: s, raw: nc, nc: nc, info: connInfo{id: hex.EncodeToString(b[:]), remote: nc.RemoteAddr()}}
	c.br = bufio.NewReaderSize(flushReader{c}, readBufSize)
	c.w = bufio.NewWriterSize(nc, writeBufSize)
	c.log = s.log.With("session", c.info.id, "remote", c.info.remote.String())
	return c
}

// flushReader reads from the connection after writing out the buffered
// replies. bufio.Reader calls it only when its buffer cannot satisfy a
// read, that is when the client's pipelined input is used up.
type flushReader struct{ c *conn }

func (f flushReader) Read(p []byte) (int, error) {
	if err := f.c.flush(); err != nil {
		return 0, err
	}
	return f.c.nc.Read(p)
}

func (c *conn) flush() error {
	if c.werr != nil {
		return c.werr
	}
	if c.w.Buffered() == 0 {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.opts.CommandTimeout))
	c.werr = c.w.Flush()
	return c.werr
}

// serve runs the connection until the client quits, fails or times out,
// or the server closes it. A panic ends only this connection, with 421.
func (c *conn) serve() {
	defer c.close()
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("panic in SMTP connection", "panic", v, "stack", string(debug.Stack()))
			c.reply(421, "4.3.0", fmt.Sprintf("Internal error; closing the connection (session %s)", c.info.id))
			c.flush()
		}
	}()
	if tc, ok := c.nc.(*tls.Conn); ok {
		c.nc.SetDeadline(time.Now().Add(c.srv.opts.CommandTimeout))
		if err := tc.Handshake(); err != nil {
			c.log.Info("TLS handshake failed", "err", err)
			return
		}
		c.nc.SetDeadline(time.Time{})
		c.info.tls = true
	}
	c.sess = c.srv.opts.NewSession(c.info)
	c.reply(220, "", c.srv.opts.Hostname+" ESMTP Service Ready")
	for c.werr == nil {
		c.nc.SetReadDeadline(time.Now().Add(c.srv.opts.CommandTimeout))
		line, err := c.readLine(maxAuthLine)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				if c.protocolError(500, "5.5.2", "Line too long") {
					continue
				}
				return
			}
			c.readFailed(err)
			return
		}
		if !c.handle(line) {
			return
		}
	}
}

// readFailed answers a failed read of a command when there is still
// someone to answer.
func (c *conn) readFailed(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.log.Info("client timed out")
		c.reply(421, "4.4.2", "Timeout; closing the connection")
		c.flush()
	}
}

func (c *conn) close() {
	c.abortBdat()
	if c.sess != nil {
		c.sess.Logout()
		c.sess = nil
	}
	c.nc.Close()
}

// errLineTooLong: a command line longer than its limit; the line was
// read to its end, so the next command is in sync.
var errLineTooLong = errors.New("line too long")

// readLine reads one line (LF or CRLF terminated) of at most limit octets
// with its ending, and returns it without the ending.
func (c *conn) readLine(limit int) (string, error) {
	long := false
	for {
		b, err := c.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = true
			continue
		}
		if err != nil {
			if err == io.EOF && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if long || len(b) > limit {
			return "", errLineTooLong
		}
		b = b[:len(b)-1]
		if len(b) > 0 && b[len(b)-1] == '\r' {
			b = b[:len(b)-1]
		}
		return string(b), nil
	}
}

// reply writes one reply (buffered). enhanced "" sends none (greeting,
// EHLO, 334, 354); text lines are split on LF.
func (c *conn) reply(code int, enhanced, text string) {
	if c.werr != nil {
		return
	}
	lines := strings.Split(strings.ReplaceAll(text, "\r", ""), "\n")
	prefix := strconv.Itoa(code)
	for i, l := range lines {
		sep := " "
		if i < len(lines)-1 {
			sep = "-"
		}
		c.w.WriteString(prefix)
		c.w.WriteString(sep)
		if enhanced != "" {
			c.w.WriteString(enhanced)
			c.w.WriteByte(' ')
		}
		c.w.WriteString(l)
		c.w.WriteString("\r\n")
	}
}

// replyErr answers with err, which should be a *gosmtp.SMTPError.
// Anything else is logged and answered with a fixed 451: internal text is
// not for the client.
func (c *conn) replyErr(err error) {
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) {
		c.log.Error("session returned an error that is not a reply", "err", err)
		se = errInternal(c.info.id)
	}
	c.reply(se.Code, enhancedString(se.EnhancedCode, se.Code), se.Message)
}

// enhancedString formats an RFC 3463 status; a missing one becomes X.0.0.
func enhancedString(e gosmtp.EnhancedCode, code int) string {
	if e == gosmtp.NoEnhancedCode {
		return ""
	}
	if e == gosmtp.EnhancedCodeNotSet || !enhancedOK(e, code) {
		e = gosmtp.EnhancedCode{code / 100, 0, 0}
	}
	return fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2])
}

// protocolError answers a bad command and reports whether the connection
// goes on; after maxBadCommands it is closed with 421.
func (c *conn) protocolError(code int, enhanced, text string) bool {
	c.reply(code, enhanced, text)
	c.bad++
	if c.bad > maxBadCommands {
		c.log.Info("too many bad commands; closing")
		c.reply(421, "4.7.0", "Too many errors; closing the connection")
		c.flush()
		return false
	}
	return true
}

// handle runs one command line and reports whether the connection goes on.
func (c *conn) handle(line string) bool {
	verb, arg, err := parseCommand(line)
	if err != nil {
		return c.protocolError(500, "5.5.2", "Syntax error, command unrecognized")
	}
	if verb != "AUTH" && len(line)+2 > maxCommandLine {
		return c.protocolError(500, "5.5.2", "Line too long")
	}
	switch verb {
	case "EHLO", "HELO":
		return c.handleHello(verb, arg)
	case "MAIL":
		return c.handleMail(arg)
	case "RCPT":
		return c.handleRcpt(arg)
	case "DATA":
		return c.handleData(arg)
	case "BDAT":
		return c.handleBdat(arg)
	case "RSET":
		c.resetTx()
		c.reply(250, "2.0.0", "Reset")
	case "NOOP":
		c.reply(250, "2.0.0", "OK")
	case "VRFY":
		c.reply(252, "2.5.0", "Cannot VRFY user, but will accept the message")
	case "HELP":
		c.reply(214, "2.0.0", "See RFC 5321")
	case "QUIT":
		c.reply(221, "2.0.0", "Bye")
		c.flush()
		return false
	case "AUTH":
		return c.handleAuth(arg)
	case "STARTTLS":
		return c.handleStartTLS(arg)
	default:
		return c.protocolError(500, "5.5.2", "Command not recognized")
	}
	return true
}

func (c *conn) handleHello(verb, arg string) bool {
	domain, _, _ := strings.Cut(arg, " ")
	if domain == "" {
		return c.protocolError(501, "5.5.4", "Syntax: "+verb+" hostname")
	}
	// A repeated EHLO resets the transaction (RFC 5321 section 4.1.4).
	c.resetTx()
	c.greeted = true
	if verb == "HELO" {
		c.reply(250, "2.0.0", c.srv.opts.Hostname+" Hello "+domain)
		return true
	}
	o := c.srv.opts
	caps := []string{c.srv.opts.Hostname + " Hello " + domain, "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING"}
	if o.TLSConfig != nil && !c.info.tls {
		caps = append(caps, "STARTTLS")
	}
	if c.authAllowed() {
		if mechs := c.sess.AuthMechanisms(); len(mechs) > 0 {
			caps = append(caps, "AUTH "+strings.Join(mechs, " "))
		}
	}
	if o.SMTPUTF8 {
		caps = append(caps, "SMTPUTF8")
	}
	caps = append(caps, "SIZE "+strconv.FormatInt(o.MaxMessageBytes, 10))
	if o.MaxRecipients > 0 {
		caps = append(caps, "LIMITS RCPTMAX="+strconv.Itoa(o.MaxRecipients))
	}
	c.reply(250, "", strings.Join(caps, "\n"))
	return true
}

func (c *conn) handleMail(arg string) bool {
	switch {
	case !c.greeted:
		return c.protocolError(503, "5.5.1", "Send EHLO first")
	case c.mailOK:
		return c.protocolError(503, "5.5.1", "Nested MAIL command")
	}
	m, r := parseMail(arg, c.srv.opts.SMTPUTF8)
	if r != nil {
		if r.Code == 501 || r.Code == 555 {
			return c.protocolError(r.Code, enhancedString(r.EnhancedCode, r.Code), r.Message)
		}
		c.replyErr(r)
		return true
	}
	if max := c.srv.opts.MaxMessageBytes; max > 0 && m.opts.Size > max {
		c.replyErr(reply(552, "5.3.4", "Message size exceeds the limit of %d octets", max))
		return true
	}
	if err := c.sess.Mail(m.from, &m.opts); err != nil {
		c.replyErr(err)
		return true
	}
	c.mailOK, c.rcpts = true, 0
	c.reply(250, "2.1.0", "Sender <"+m.from+"> OK")
	return true
}

func (c *conn) handleRcpt(arg string) bool {
	switch {
	case !c.mailOK:
		return c.protocolError(503, "5.5.1", "MAIL first")
	case c.bdat != nil:
		return c.protocolError(503, "5.5.1", "RCPT not allowed during BDAT")
	}
	to, r := parseRcpt(arg, c.srv.opts.SMTPUTF8)
	if r != nil {
		if r.Code == 501 || r.Code == 555 {
			return c.protocolError(r.Code, enhancedString(r.EnhancedCode, r.Code), r.Message)
		}
		c.replyErr(r)
		return true
	}
	if max := c.srv.opts.MaxRecipients; max > 0 && c.rcpts >= max {
		c.replyErr(reply(452, "4.5.3", "Too many recipients; at most %d per message", max))
		return true
	}
	if err := c.sess.Rcpt(to, &gosmtp.RcptOptions{}); err != nil {
		c.replyErr(err)
		return true
	}
	c.rcpts++
	c.reply(250, "2.1.5", "Recipient <"+to+"> OK")
	return true
}

// resetTx ends the transaction here and in the session (RSET semantics).
func (c *conn) resetTx() {
	c.abortBdat()
	c.mailOK, c.rcpts = false, 0
	if c.sess != nil {
		c.sess.Reset()
	}
}

func (c *conn) authAllowed() bool {
	return c.info.tls || c.srv.opts.InsecureAuth
}
