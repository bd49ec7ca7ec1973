package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// upClient is the proxy's SMTP client to the submission server (RFC 5321,
// with STARTTLS RFC 3207, AUTH RFC 4954, ENHANCEDSTATUSCODES RFC 2034 and
// CHUNKING RFC 3030). One belongs to one client session and is used by one
// goroutine at a time.
//
// Errors: a reply of class 4 or 5 is a *gosmtp.SMTPError (the upstream
// refused; the connection is fine). Anything else (I/O error, timeout,
// cancelled context, errUpstreamProtocol) means the connection is gone or
// out of step: it is remembered, and every later call returns it without
// touching the connection.
type upClient struct {
	conn        net.Conn
	r           *bufio.Reader
	w           *bufio.Writer
	ext         map[string]string // EHLO keywords (upper case) → parameters
	cmdTimeout  time.Duration     // one command and its reply
	dataTimeout time.Duration     // one message, from its first byte to the reply
	chunkSize   int               // BDAT chunk size
	chunk       []byte            // BDAT buffer, kept between messages when small
	err         error             // the connection failed; sticky
}

// defaultChunkSize is the BDAT chunk size: large enough that the reply
// per chunk costs nothing next to the transfer.
const defaultChunkSize = 1 << 20

func newUpClient(conn net.Conn, cmdTimeout, dataTimeout time.Duration) *upClient {
	c := &upClient{cmdTimeout: cmdTimeout, dataTimeout: dataTimeout, chunkSize: defaultChunkSize}
	c.setConn(conn)
	return c
}

func (c *upClient) setConn(conn net.Conn) {
	c.conn = conn
	c.r = bufio.NewReaderSize(conn, maxReplyLine)
	// One TLS record's worth: DATA is written in pieces a line or more
	// long; a BDAT chunk goes past it but for its first bytes.
	c.w = bufio.NewWriterSize(conn, 16<<10)
}

// begin bounds one exchange by timeout and by ctx: the deadline is the
// earlier of the two, and cancelling ctx fails pending I/O. end stops the
// watch and returns ctx's error when that is why the exchange failed.
func (c *upClient) begin(ctx context.Context, timeout time.Duration) (end func(error) error) {
	dl := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.conn.SetDeadline(dl)
	// A deadline in the past makes pending I/O fail at once.
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	return func(err error) error {
		stop()
		if err == nil {
			return nil
		}
		cerr := ctx.Err()
		if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
			cerr = context.DeadlineExceeded // the socket's deadline was the context's
		}
		if cerr != nil {
			return fmt.Errorf("%w (%w)", cerr, err)
		}
		return err
	}
}

// fail records a connection failure; later calls return it.
func (c *upClient) fail(err error) error {
	if c.err == nil {
		c.err = err
	}
	return err
}

// exchange writes line (unless empty) and reads the reply, within one
// command timeout. want lists the reply class that means success (2 or
// 3, or both); a 4xx or 5xx reply is returned as *gosmtp.SMTPError; any other
// reply, and every I/O error, fails the connection.
func (c *upClient) exchange(ctx context.Context, line string, want ...int) (upReply, error) {
	if c.err != nil {
		return upReply{}, c.err
	}
	end := c.begin(ctx, c.cmdTimeout)
	rep, err := c.roundTrip(line)
	err = end(err)
	if err != nil {
		return upReply{}, c.fail(err)
	}
	return c.check(rep, want...)
}

func (c *upClient) roundTrip(line string) (upReply, error) {
	if line != "" {
		c.w.WriteString(line)
		c.w.WriteString("\r\n")
		if err := c.w.Flush(); err != nil {
			return upReply{}, fmt.Errorf("write command: %w", err)
		}
	}
	return readReply(c.r)
}

// check sorts a reply: success, refusal (SMTPError) or out of step.
func (c *upClient) check(rep upReply, want ...int) (upReply, error) {
	class := rep.code / 100
	if slices.Contains(want, class) {
		return rep, nil
	}
	switch {
	case class == 4 || class == 5:
		return rep, rep.smtpError()
	default:
		return rep, c.fail(fmt.Errorf("%w: unexpected reply %d", errUpstreamProtocol, rep.code))
	}
}

// cmd sends one command line and wants a 2xx reply.
func (c *upClient) cmd(ctx context.Context, verb, line string) error {
	if _, err := c.exchange(ctx, line, 2); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	return nil
}

// greet reads the 220 greeting.
func (c *upClient) greet(ctx context.Context) error {
	return c.cmd(ctx, "greeting", "")
}

// hello sends EHLO, or HELO when the upstream does not know EHLO (500 or
// 502), and records the extensions offered.
func (c *upClient) hello(ctx context.Context, name string) error {
	if strings.ContainsAny(name, "\r\n ") || name == "" {
		return fmt.Errorf("EHLO: invalid host name %q", name)
	}
	c.ext = map[string]string{}
	rep, err := c.exchange(ctx, "EHLO "+name, 2)
	if rep.code == 500 || rep.code == 502 {
		return c.cmd(ctx, "HELO", "HELO "+name)
	}
	if err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	for _, l := range rep.lines[1:] {
		kw, param, _ := strings.Cut(l, " ")
		kw = strings.ToUpper(kw)
		if rest, ok := strings.CutPrefix(kw, "AUTH="); ok { // pre-RFC 4954 spelling
			kw, param = "AUTH", strings.TrimSpace(rest+" "+param)
		}
		if kw != "" {
			c.ext[kw] = param
		}
	}
	return nil
}

// startTLS upgrades the connection (RFC 3207) and says EHLO again: what
// the upstream offered in clear no longer counts.
func (c *upClient) startTLS(ctx context.Context, cfg *tls.Config, name string) error {
	if _, ok := c.ext["STARTTLS"]; !ok {
		return errors.New("upstream does not offer STARTTLS")
	}
	if err := c.cmd(ctx, "STARTTLS", "STARTTLS"); err != nil {
		return err
	}
	// Bytes after the 220 were sent before TLS and could be injected by
	// anyone on the path (CVE-2011-0411 style): refuse them.
	if c.r.Buffered() > 0 {
		return c.fail(fmt.Errorf("%w: data after the STARTTLS reply", errUpstreamProtocol))
	}
	tc := tls.Client(c.conn, cfg)
	end := c.begin(ctx, c.cmdTimeout)
	if err := end(tc.HandshakeContext(ctx)); err != nil {
		return c.fail(fmt.Errorf("TLS handshake: %w", err))
	}
	c.setConn(tc)
	return c.hello(ctx, name)
}

// Extension reports whether the upstream offered the EHLO keyword ext,
// and its parameters.
func (c *upClient) Extension(ext string) (bool, string) {
	p, ok := c.ext[strings.ToUpper(ext)]
	return ok, p
}

// SupportsAuth reports whether the upstream offers the SASL mechanism.
func (c *upClient) SupportsAuth(mech string) bool {
	for _, m := range strings.Fields(c.ext["AUTH"]) {
		if strings.EqualFold(m, mech) {
			return true
		}
	}
	return false
}

// MaxMessageSize is the upstream's SIZE (RFC 1870); ok is false when it
// gives none (or 0, no limit).
func (c *upClient) MaxMessageSize() (int, bool) {
	n, err := strconv.Atoi(c.ext["SIZE"])
	return n, err == nil && n > 0
}

// authPlain logs in with AUTH PLAIN and an initial response (RFC 4616).
// The credentials never appear in an error.
func (c *upClient) authPlain(ctx context.Context, user, password string) error {
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	rep, err := c.exchange(ctx, "AUTH PLAIN "+ir, 2, 3)
	if err != nil {
		return fmt.Errorf("AUTH PLAIN: %w", err)
	}
	if rep.code/100 == 2 {
		return nil
	}
	// The upstream ignored the initial response and asks for it.
	if _, err := c.exchange(ctx, ir, 2); err != nil {
		return fmt.Errorf("AUTH PLAIN: %w", err)
	}
	return nil
}

// authLogin logs in with AUTH LOGIN (draft-murchison-sasl-login): user
// name and password, each after a 334 challenge.
func (c *upClient) authLogin(ctx context.Context, user, password string) error {
	if _, err := c.exchange(ctx, "AUTH LOGIN", 3); err != nil {
		return fmt.Errorf("AUTH LOGIN: %w", err)
	}
	if _, err := c.exchange(ctx, base64.StdEncoding.EncodeToString([]byte(user)), 3); err != nil {
		return fmt.Errorf("AUTH LOGIN: %w", err)
	}
	if _, err := c.exchange(ctx, base64.StdEncoding.EncodeToString([]byte(password)), 2); err != nil {
		return fmt.Errorf("AUTH LOGIN: %w", err)
	}
	return nil
}

// mailOptions are the MAIL FROM parameters the proxy passes on.
type mailOptions struct {
	UTF8 bool // SMTPUTF8 (RFC 6531): the header may hold UTF-8
}

// Mail starts a transaction. Every copy is 7-bit apart from a UTF-8
// header, so BODY=8BITMIME is declared only with SMTPUTF8 (RFC 6531
// section 3.4), when the upstream offers it.
func (c *upClient) Mail(ctx context.Context, from string, o mailOptions) error {
	if err := checkPath(from); err != nil {
		return err
	}
	line := "MAIL FROM:<" + from + ">"
	if o.UTF8 {
		if _, ok := c.ext["SMTPUTF8"]; !ok {
			return errUTF8 // the session checks this before; a reply, not a lost connection
		}
		if _, ok := c.ext["8BITMIME"]; ok {
			line += " BODY=8BITMIME"
		}
		line += " SMTPUTF8"
	}
	return c.cmd(ctx, "MAIL", line)
}

// Rcpt adds a recipient.
func (c *upClient) Rcpt(ctx context.Context, to string) error {
	if err := checkPath(to); err != nil {
		return err
	}
	return c.cmd(ctx, "RCPT", "RCPT TO:<"+to+">")
}

// Reset ends the transaction (RSET).
func (c *upClient) Reset(ctx context.Context) error {
	return c.cmd(ctx, "RSET", "RSET")
}

// Quit says QUIT (bounded by the command timeout) and closes the
// connection whatever the reply.
func (c *upClient) Quit() error {
	err := c.cmd(context.Background(), "QUIT", "QUIT")
	c.conn.Close()
	return err
}

// Close closes the connection without QUIT.
func (c *upClient) Close() error {
	c.fail(net.ErrClosed)
	return c.conn.Close()
}

// checkPath refuses an address that would change the command line. The
// session passes only addresses its server parsed, so this is a local
// refusal, as a reply so the session answers it.
func checkPath(addr string) error {
	if strings.ContainsAny(addr, "\r\n\x00") {
		return reply(553, "5.1.3", "The address contains characters SMTP does not carry")
	}
	return nil
}
