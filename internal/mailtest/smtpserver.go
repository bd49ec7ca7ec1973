package mailtest

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Reply is an SMTP reply an Upstream gives instead of accepting.
type Reply struct {
	Code     int    // 452, 554, …
	Enhanced [3]int // RFC 3463 status, e.g. {4, 2, 2}
	Text     string
}

// Fault makes the Upstream's SMTP side misbehave, for tests of what the
// proxy does when its upstream fails. The zero Fault means "behave".
// Recipient keys are compared case-insensitively; the key "*" matches
// every recipient.
type Fault struct {
	// Refuse closes the SMTP listeners, so new connections are refused by
	// the kernel (ECONNREFUSED); clearing it listens again on the same
	// addresses. Open connections are not affected.
	Refuse bool
	// Auth, when set, answers every AUTH (e.g. 454 4.7.0: the
	// authentication service is down).
	Auth *Reply
	// Mail, when set, answers every MAIL FROM.
	Mail *Reply
	// Rcpt answers RCPT TO for the listed recipients.
	Rcpt map[string]Reply
	// Data answers the end of DATA (after the whole message was read) when
	// any recipient of the transaction is listed. Nothing is delivered.
	Data map[string]Reply
	// DropDataAfter > 0 closes the connection, without a reply, after that
	// many bytes of DATA were read (or the whole message, if shorter).
	// Nothing is delivered.
	DropDataAfter int
	// RefuseDataAfter > 0 stops reading the message after that many bytes
	// (or at its end, if shorter) and refuses it with RefuseReply. Over
	// BDAT that is the reply to the chunk being read, so later chunks are
	// refused too (RFC 3030 section 4.1: the transaction failed); over DATA
	// it is the reply after the end of the data. Nothing is delivered.
	RefuseDataAfter int
	RefuseReply     Reply
	// DataDelay holds the reply to DATA back this long (for timeouts).
	DataDelay time.Duration
}

// Envelope is one SMTP transaction that reached DATA.
type Envelope struct {
	User     string   // authenticated login
	From     string   // MAIL FROM
	Rcpts    []string // RCPT TO that were accepted
	Data     []byte   // message bytes as read (partial when Dropped; nil with DiscardMail)
	Size     int64    // bytes read
	TLS      bool     // the session was encrypted
	BDAT     bool     // the message came in BDAT chunks (RFC 3030), not DATA
	Accepted bool     // answered 250 and delivered
	Dropped  bool     // connection closed by DropDataAfter
	Reply    *Reply   // the refusal, when neither accepted nor dropped
}

// SetFault replaces the current fault (Fault{} clears it). It fails only
// when Refuse is cleared and an address cannot be listened on again.
func (up *Upstream) SetFault(f Fault) error {
	up.mu.Lock()
	up.fault = f
	up.mu.Unlock()
	if f.Refuse {
		up.smtp.stop()
		return nil
	}
	return up.smtp.resume()
}

func (up *Upstream) currentFault() Fault {
	up.mu.Lock()
	defer up.mu.Unlock()
	return up.fault
}

// Envelopes returns the transactions the SMTP side accepted, in order.
func (up *Upstream) Envelopes() []Envelope {
	var out []Envelope
	for _, e := range up.Transactions() {
		if e.Accepted {
			out = append(out, e)
		}
	}
	return out
}

// Transactions returns every transaction that reached DATA, accepted,
// refused or dropped, so tests can check nothing arrived in clear even in
// part.
func (up *Upstream) Transactions() []Envelope {
	up.mu.Lock()
	defer up.mu.Unlock()
	return append([]Envelope(nil), up.txns...)
}

func (up *Upstream) record(e Envelope) {
	up.mu.Lock()
	up.txns = append(up.txns, e)
	up.mu.Unlock()
}

// matchReply finds the reply for rcpts in m ("*" matches all).
func matchReply(m map[string]Reply, rcpts ...string) *Reply {
	if r, ok := m["*"]; ok {
		return &r
	}
	for k, r := range m {
		for _, rcpt := range rcpts {
			if strings.EqualFold(k, rcpt) {
				return &r
			}
		}
	}
	return nil
}

// smtpListeners owns the go-smtp server and its listeners, which Refuse
// closes and reopens.
type smtpListeners struct {
	up        *Upstream
	srv       *smtp.Server
	plainAddr string
	tlsAddr   string

	mu      sync.Mutex
	lns     []net.Listener
	stopped bool
	closed  bool
}

func (up *Upstream) startSMTP() (*smtpListeners, error) {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{up: up, conn: c}, nil
	}))
	srv.Domain = up.opts.Hostname
	srv.TLSConfig = up.opts.TLS
	srv.AllowInsecureAuth = up.opts.TLS == nil || up.opts.InsecureAuth
	srv.MaxMessageBytes = up.opts.MaxMessageBytes
	srv.EnableSMTPUTF8 = true
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = logAdapter{up.log.With("server", "upstream-smtp")}
	s := &smtpListeners{up: up, srv: srv}
	for _, l := range []struct {
		addr *string
		want string
		tls  bool
	}{{&s.plainAddr, up.opts.SMTPAddr, false}, {&s.tlsAddr, up.opts.SMTPSAddr, true}} {
		if l.want == "" {
			continue
		}
		ln, err := s.listen(l.want, l.tls)
		if err != nil {
			s.close()
			return nil, err
		}
		*l.addr = ln.Addr().String()
	}
	return s, nil
}

// listen opens one listener and serves it. Callers other than startSMTP
// hold s.mu.
func (s *smtpListeners) listen(addr string, implicitTLS bool) (net.Listener, error) {
	cfg := s.up.opts.TLS
	if !implicitTLS {
		cfg = nil
	}
	ln, err := listen(addr, cfg)
	if err != nil {
		return nil, err
	}
	s.lns = append(s.lns, ln)
	go s.srv.Serve(ln) //nolint:errcheck // ends when ln is closed
	return ln, nil
}

// stop closes the listeners but keeps the server and its connections.
func (s *smtpListeners) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.lns {
		ln.Close()
	}
	s.lns = nil
	s.stopped = true
}

// resume listens again on the original addresses after stop.
func (s *smtpListeners) resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped || s.closed {
		return nil
	}
	s.stopped = false
	for _, l := range []struct {
		addr string
		tls  bool
	}{{s.plainAddr, false}, {s.tlsAddr, true}} {
		if l.addr == "" {
			continue
		}
		if _, err := s.listen(l.addr, l.tls); err != nil {
			return err
		}
	}
	return nil
}

func (s *smtpListeners) close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	// go-smtp's Close also closes the listeners it saw; those are closed
	// already, and a second Close reports net.ErrClosed.
	if err := s.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, smtp.ErrServerClosed) {
		return fmt.Errorf("mailtest: close smtp: %w", err)
	}
	return nil
}

// smtpSession is one submission connection. AUTH is required before MAIL.
type smtpSession struct {
	up    *Upstream
	conn  *smtp.Conn
	user  string
	from  string
	rcpts []string
}

var _ smtp.AuthSession = (*smtpSession)(nil)

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	if r := s.up.currentFault().Auth; r != nil {
		return nil, smtpReply(r)
	}
	check := func(identity, username, password string) error {
		if identity != "" && !strings.EqualFold(identity, username) {
			return smtp.ErrAuthFailed
		}
		if s.up.checkLogin(username, password) == nil {
			return smtp.ErrAuthFailed
		}
		s.user = strings.ToLower(username)
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(check), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	if r := s.up.currentFault().Mail; r != nil {
		return smtpReply(r)
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	if r := matchReply(s.up.currentFault().Rcpt, to); r != nil {
		return smtpReply(r)
	}
	if s.up.opts.RejectUnknownRecipients && s.up.user(to) == nil {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	f := s.up.currentFault()
	_, isTLS := s.conn.TLSConnectionState()
	// go-smtp hands the BDAT chunks over through a pipe and DATA through
	// its dot reader.
	_, bdat := r.(*io.PipeReader)
	env := Envelope{User: s.user, From: s.from, Rcpts: append([]string(nil), s.rcpts...), TLS: isTLS, BDAT: bdat}
	if f.RefuseDataAfter > 0 {
		env.Data, _ = io.ReadAll(io.LimitReader(r, int64(f.RefuseDataAfter)))
		env.Size = int64(len(env.Data))
		rep := f.RefuseReply
		env.Reply = &rep
		s.up.record(env)
		return smtpReply(&rep)
	}
	if f.DropDataAfter > 0 {
		env.Data, _ = io.ReadAll(io.LimitReader(r, int64(f.DropDataAfter)))
		env.Size = int64(len(env.Data))
		env.Dropped = true
		s.up.record(env)
		s.conn.Conn().Close()
		return errors.New("connection dropped by fault injection")
	}
	var err error
	if s.up.opts.DiscardMail {
		env.Size, err = io.Copy(io.Discard, r)
	} else {
		env.Data, err = io.ReadAll(r)
		env.Size = int64(len(env.Data))
	}
	if err != nil {
		// Too large or the client went away: go-smtp answers (552 for
		// size); nothing was accepted.
		return err
	}
	time.Sleep(f.DataDelay)
	if rep := matchReply(f.Data, env.Rcpts...); rep != nil {
		env.Reply = rep
		s.up.record(env)
		return smtpReply(rep)
	}
	if s.up.opts.DiscardMail {
		env.Accepted = true
		s.up.record(env)
		return nil
	}
	for _, rcpt := range env.Rcpts {
		if s.up.user(rcpt) == nil {
			continue // not local: recorded only, as if relayed
		}
		if err := s.up.Deliver(rcpt, env.Data); err != nil {
			s.up.log.Error("upstream delivery failed", "rcpt", rcpt, "err", err)
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local delivery failed"}
		}
	}
	env.Accepted = true
	s.up.record(env)
	return nil
}

func (s *smtpSession) Reset() {
	s.from = ""
	s.rcpts = nil
}

func (s *smtpSession) Logout() error { return nil }

// loginServer is the server side of the obsolete but common SASL LOGIN
// mechanism (draft-murchison-sasl-login), which go-sasl only has as a
// client.
type loginServer struct {
	check    func(identity, username, password string) error
	username string
	step     int
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) == 0 {
			return []byte("Username:"), false, nil
		}
		l.username = string(response) // initial response carries the user
		l.step++
		return []byte("Password:"), false, nil
	case 1:
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.check("", l.username, string(response))
	}
	return nil, false, errors.New("unexpected SASL LOGIN response")
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// logAdapter lets go-smtp's and go-imap's loggers write to slog.
type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Printf(format string, v ...any) { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a logAdapter) Println(v ...any)               { a.l.Warn(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }
