package mailtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// defaultIMAPCaps is IMAP4rev1 plus the extensions imapmemserver
// implements; IDLE, UNSELECT, ENABLE and LITERAL- come with IMAP4rev1.
func defaultIMAPCaps() imap.CapSet {
	return imap.CapSet{
		imap.CapIMAP4rev1:    {},
		imap.CapNamespace:    {},
		imap.CapUIDPlus:      {},
		imap.CapESearch:      {},
		imap.CapListExtended: {},
		imap.CapListStatus:   {},
		imap.CapMove:         {},
		imap.CapStatusSize:   {},
		imap.CapLiteralPlus:  {},
		imap.CapBinary:       {},
		imap.CapSASLIR:       {},
		imap.CapLiteralMinus: {},
		imap.CapUnselect:     {},
		imap.CapIdle:         {},
		imap.CapEnable:       {},
		imap.CapUTF8Accept:   {},
	}
}

// imapListeners owns the public IMAP server and a private one, without
// TLS, that Upstream.Messages reads through.
type imapListeners struct {
	srv         *imapserver.Server
	inspect     *imapserver.Server
	plainAddr   string
	tlsAddr     string
	inspectAddr string
}

func (up *Upstream) startIMAP() (*imapListeners, error) {
	newSession := func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
		return &imapSession{up: up}, nil, nil
	}
	logger := logAdapter{up.log.With("server", "upstream-imap")}
	l := &imapListeners{
		srv: imapserver.New(&imapserver.Options{
			NewSession:   newSession,
			Caps:         up.opts.IMAPCaps,
			Logger:       logger,
			TLSConfig:    up.opts.TLS,
			InsecureAuth: up.opts.TLS == nil || up.opts.InsecureAuth,
		}),
		inspect: imapserver.New(&imapserver.Options{
			NewSession:   newSession,
			Caps:         defaultIMAPCaps(),
			Logger:       logger,
			InsecureAuth: true,
		}),
	}
	for _, ls := range []struct {
		srv  *imapserver.Server
		addr string
		tls  *tls.Config
		out  *string
	}{
		{l.srv, up.opts.IMAPAddr, nil, &l.plainAddr},
		{l.srv, up.opts.IMAPSAddr, up.opts.TLS, &l.tlsAddr},
		{l.inspect, "127.0.0.1:0", nil, &l.inspectAddr},
	} {
		ln, err := listen(ls.addr, ls.tls)
		if err != nil {
			l.close()
			return nil, err
		}
		if ln == nil {
			continue
		}
		*ls.out = ln.Addr().String()
		go ls.srv.Serve(ln) //nolint:errcheck // ends on Close
	}
	return l, nil
}

func (l *imapListeners) close() error {
	var errs []error
	for _, s := range []*imapserver.Server{l.srv, l.inspect} {
		if err := s.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("mailtest: close imap: %w", err))
		}
	}
	return errors.Join(errs...)
}

// imapSession checks logins against the Upstream's passwords and then
// hands every command to imapmemserver's user session (SELECT, FETCH,
// IDLE, MOVE, APPEND with UIDPLUS, …).
type imapSession struct {
	*imapmemserver.UserSession // nil until LOGIN succeeds
	up                         *Upstream
}

var _ imapserver.SessionIMAP4rev2 = (*imapSession)(nil)

func (s *imapSession) Login(username, password string) error {
	u := s.up.checkLogin(username, password)
	if u == nil {
		return imapserver.ErrAuthFailed
	}
	s.UserSession = imapmemserver.NewUserSession(u)
	return nil
}

// Idle replaces imapmemserver's IDLE, which misses an update that arrives
// between the "+ idling" reply and its tracker registration (go-imap
// v2.0.0-beta.8): a client that makes a change right after entering IDLE
// would wait forever. Polling the session's update queue closes that gap
// at a cost of 20 wake-ups a second per idling connection.
func (s *imapSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := s.UserSession.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
	}
}
