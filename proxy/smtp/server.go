package smtp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// The client-facing SMTP server (RFC 5321 with PIPELINING, 8BITMIME,
// SMTPUTF8, SIZE, ENHANCEDSTATUSCODES, CHUNKING, STARTTLS and AUTH). It
// reads commands and message data in bulk from a buffered reader and drives
// a serverSession per connection; serverconn.go holds the command loop,
// serverdata.go DATA and BDAT, serverauth.go AUTH and STARTTLS.

// serverSession is what the server drives for one connection. Every error a
// method returns should be a *gosmtp.SMTPError: its code, enhanced status
// and text are the reply. Any other error is logged and answered with a
// fixed reply, so internal text never reaches the client.
type serverSession interface {
	AuthMechanisms() []string
	Auth(mech string) (sasl.Server, error)
	Mail(from string, opts *gosmtp.MailOptions) error
	Rcpt(to string, opts *gosmtp.RcptOptions) error
	// Data reads the message from r (dot-unstuffed, or the BDAT chunks
	// joined) and returns the reply to its end; the server reads what
	// Data left unread before replying.
	Data(r io.Reader) error
	Reset()
	Logout() error
}

// connInfo describes the connection a session is created for.
type connInfo struct {
	id     string // for logs and replies; kept across STARTTLS
	remote net.Addr
	tls    bool
}

// serverOptions configures a server. Fields may be changed before Serve
// starts (the proxy lowers MaxMessageBytes after asking the upstream), not
// while it runs.
type serverOptions struct {
	Hostname string
	// STARTTLS is offered with this configuration when set; nil when the
	// listener is implicit TLS or plain.
	TLSConfig *tls.Config
	// InsecureAuth allows AUTH without TLS (a plain loopback listener).
	InsecureAuth    bool
	MaxMessageBytes int64
	MaxRecipients   int
	MaxConnections  int // served at once; 0: no limit
	SMTPUTF8        bool
	CommandTimeout  time.Duration // each command line, and each reply write
	DataTimeout     time.Duration // a whole DATA, or one BDAT chunk
	NewSession      func(connInfo) serverSession
	Logger          *slog.Logger
}

// errServerClosed: Serve was called on, or ended by, a closed server.
var errServerClosed = errors.New("smtp server closed")

type server struct {
	opts serverOptions
	log  *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
}

func newServer(opts serverOptions) *server {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &server{opts: opts, log: log, listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}}
}

// Serve accepts connections on l until Close; each is served in a
// goroutine of its own. The connections of an implicit-TLS listener are
// *tls.Conn, whose handshake the connection does first.
func (s *server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return errServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return errServerClosed
			}
			// Too many open files and the like: net reports them
			// through the deprecated Temporary method only.
			var t interface{ Temporary() bool }
			if errors.As(err, &t) && t.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := newConn(s, nc)
		switch s.track(c) {
		case trackClosed:
			nc.Close()
			return errServerClosed
		case trackFull:
			go s.refuse(nc)
			continue
		}
		go func() {
			defer s.untrack(c)
			c.serve()
		}()
	}
}

func (s *server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Outcomes of track.
const (
	tracked = iota
	trackClosed
	trackFull
)

func (s *server) track(c *conn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return trackClosed
	case s.opts.MaxConnections > 0 && len(s.conns) >= s.opts.MaxConnections:
		return trackFull
	}
	s.conns[c] = struct{}{}
	return tracked
}

// refuse answers a connection over MaxConnections with 421 (RFC 5321
// §3.1: the client tries again later) and closes it. A TLS listener's
// connection gets the reply after its handshake, bounded like any write.
func (s *server) refuse(nc net.Conn) {
	defer nc.Close()
	s.log.Warn("connection refused: too many connections", "remote", nc.RemoteAddr(), "max", s.opts.MaxConnections)
	wait := s.opts.CommandTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	nc.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(nc, "421 4.7.0 %s Too many connections; try again later\r\n", s.opts.Hostname)
}

func (s *server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// Close stops every listener and closes every connection; each
// connection's goroutine then ends its session (Logout).
func (s *server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errServerClosed
	}
	s.closed = true
	var err error
	for l := range s.listeners {
		if e := l.Close(); e != nil && err == nil {
			err = e
		}
	}
	for c := range s.conns {
		c.raw.Close()
	}
	return err
}
