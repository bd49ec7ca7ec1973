package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// handleAuth runs an RFC 4954 exchange: the optional initial response,
// then 334 challenges until the mechanism is done. Nothing of the exchange
// is logged: the lines carry the password.
func (c *conn) handleAuth(arg string) bool {
	switch {
	case !c.greeted:
		return c.protocolError(503, "5.5.1", "Send EHLO first")
	case c.authed:
		return c.protocolError(503, "5.5.1", "Already authenticated")
	case c.mailOK:
		return c.protocolError(503, "5.5.1", "AUTH is not allowed during a mail transaction")
	case !c.authAllowed():
		c.reply(530, "5.7.0", "Must issue a STARTTLS command first")
		return true
	}
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 {
		return c.protocolError(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
	}
	var resp []byte // nil: no initial response
	if len(f) == 2 {
		var err error
		if resp, err = decodeSASL(f[1]); err != nil {
			c.reply(501, "5.5.2", "Invalid base64 data")
			return true
		}
	}
	mech, err := c.sess.Auth(strings.ToUpper(f[0]))
	if err != nil {
		c.authFailed(err)
		return true
	}
	for {
		challenge, done, err := mech.Next(resp)
		if err != nil {
			c.authFailed(err)
			return true
		}
		if done {
			break
		}
		c.reply(334, "", base64.StdEncoding.EncodeToString(challenge))
		c.nc.SetReadDeadline(time.Now().Add(c.srv.opts.CommandTimeout))
		line, err := c.readLine(maxAuthLine)
		if errors.Is(err, errLineTooLong) {
			return c.protocolError(500, "5.5.6", "Authentication line too long")
		}
		if err != nil {
			c.readFailed(err)
			return false
		}
		if line == "*" {
			c.reply(501, "5.0.0", "Authentication cancelled")
			return true
		}
		if resp, err = decodeSASL(line); err != nil {
			c.reply(501, "5.5.2", "Invalid base64 data")
			return true
		}
	}
	c.authed = true
	c.reply(235, "2.7.0", "Authentication successful")
	return true
}

// authFailed answers a failed exchange. The session's refusals are
// replies; an error of the SASL mechanism itself (a malformed PLAIN
// message) is not, and gets a fixed one.
func (c *conn) authFailed(err error) {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		c.replyErr(se)
		return
	}
	c.log.Info("authentication exchange failed", "err", err)
	c.reply(501, "5.5.2", "Malformed authentication data")
}

// handleStartTLS upgrades the connection (RFC 3207). Input the client sent
// after STARTTLS, before the handshake, is dropped: it came in clear and
// would otherwise be read as if it had come over TLS (the command
// injection of CVE-2011-0411). The session starts over, as the RFC
// requires: no EHLO, no login, no transaction carries over.
func (c *conn) handleStartTLS(arg string) bool {
	switch {
	case c.srv.opts.TLSConfig == nil:
		return c.protocolError(502, "5.5.1", "STARTTLS is not offered")
	case c.info.tls:
		return c.protocolError(503, "5.5.1", "TLS is already active")
	case arg != "":
		return c.protocolError(501, "5.5.4", "STARTTLS takes no argument")
	}
	c.reply(220, "2.0.0", "Ready to start TLS")
	if c.flush() != nil {
		return false
	}
	if n := c.br.Buffered(); n > 0 {
		c.log.Warn("discarded input sent in clear after STARTTLS", "bytes", n)
	}
	c.br.Reset(flushReader{c})
	tc := tls.Server(c.raw, c.srv.opts.TLSConfig)
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.opts.CommandTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.log.Info("STARTTLS handshake failed", "err", err)
		return false
	}
	c.nc = tc
	c.w = bufio.NewWriterSize(tc, writeBufSize)
	c.abortBdat()
	c.sess.Logout()
	c.info.tls = true
	c.sess = c.srv.opts.NewSession(c.info)
	c.greeted, c.authed, c.mailOK, c.rcpts = false, false, false, 0
	return true
}
