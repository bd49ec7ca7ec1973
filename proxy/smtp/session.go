package smtp

import (
	"context"
	"log/slog"
	"strings"

	gosmtp "github.com/emersion/go-smtp"
)

var _ serverSession = (*session)(nil)

// session is one client connection. Its upstream connection is opened at
// AUTH, with the client's credentials, and lives as long as the session.
type session struct {
	p      *Proxy
	id     string // in logs and in replies, to find one in the other
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	up      *upClient
	broken  bool   // the upstream connection failed; nothing more goes over it
	user    string // login name
	mailbox string // login name as a normalised address ("" if it is none)

	// The current transaction, mirrored upstream as the client issues it.
	from     string
	mailOpts gosmtp.MailOptions
	rcpts    []string
	inTx     bool // MAIL was accepted upstream and not yet ended
}

func (p *Proxy) newSession(c connInfo) serverSession {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{
		p: p, id: c.id, ctx: ctx, cancel: cancel,
		log: p.log.With("session", c.id, "remote", c.remote.String(), "tls", c.tls),
	}
}

// usable returns the reply for a session that cannot send, or nil.
func (s *session) usable() *gosmtp.SMTPError {
	if s.up == nil {
		return errAuthRequired
	}
	if s.broken {
		return errUpstreamLost(s.id)
	}
	return nil
}

// Mail implements serverSession. MAIL FROM goes to the upstream at once, so
// its refusals reach the client unchanged (sanitised). SIZE is not passed on:
// the message the upstream receives is larger than the client's.
func (s *session) Mail(from string, opts *gosmtp.MailOptions) error {
	if r := s.usable(); r != nil {
		return r
	}
	s.resetTx()
	var o gosmtp.MailOptions
	if opts != nil {
		o = *opts
	}
	if o.UTF8 {
		if ok, _ := s.up.Extension("SMTPUTF8"); !ok {
			return errUTF8
		}
	}
	if err := s.up.Mail(s.ctx, from, mailOptions{UTF8: o.UTF8}); err != nil {
		return s.upstreamErr("MAIL", err)
	}
	s.from, s.mailOpts, s.inTx = from, o, true
	return nil
}

// Rcpt implements serverSession. Each RCPT TO goes to the upstream at once,
// so a recipient it refuses is refused to the client, recipient by recipient.
func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if r := s.usable(); r != nil {
		return r
	}
	if !s.inTx {
		return reply(503, "5.5.1", "MAIL first")
	}
	for _, r := range s.rcpts {
		if strings.EqualFold(r, to) {
			return nil // already accepted; one envelope entry is enough
		}
	}
	if err := s.up.Rcpt(s.ctx, to); err != nil {
		return s.upstreamErr("RCPT", err)
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

// upstreamErr maps an upstream failure to the client's reply and marks the
// connection broken when it was not an SMTP reply.
func (s *session) upstreamErr(cmd string, err error) *gosmtp.SMTPError {
	r, lost := fromUpstream(err, s.id)
	if lost {
		s.broken = true
		s.log.Warn("upstream connection lost", "command", cmd, "err", err)
	} else {
		s.log.Info("upstream refused", "command", cmd, "code", r.Code, "reply", r.Message)
	}
	return r
}

// Reset implements serverSession: the client's RSET (or the end of a
// transaction) ends the upstream transaction too.
func (s *session) Reset() {
	s.resetTx()
}

func (s *session) resetTx() {
	if s.inTx && s.up != nil && !s.broken {
		if err := s.up.Reset(s.ctx); err != nil {
			s.broken = true
			s.log.Warn("upstream RSET failed", "err", err)
		}
	}
	s.from, s.mailOpts, s.rcpts, s.inTx = "", gosmtp.MailOptions{}, nil, false
}

// Logout implements serverSession.
func (s *session) Logout() error {
	s.cancel()
	if s.up != nil {
		if s.broken || s.up.Quit() != nil {
			s.up.Close()
		}
		s.up = nil
	}
	return nil
}
