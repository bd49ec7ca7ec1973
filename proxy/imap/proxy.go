package imap

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
)

// TLS modes of the client side (ListenTLS) and of the upstream side
// (UpstreamTLS); the values are those of the config file.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "implicit"
	TLSNone     = "none"
)

// AppendTransformFunc rewrites a message the client stores in its Sent or
// Drafts mailbox before it reaches the upstream (encryption to the user).
type AppendTransformFunc func(ctx context.Context, user, mailbox string, raw []byte) ([]byte, error)

// Options configures NewProxy.
type Options struct {
	Listen    string      // host:port for clients
	ListenTLS string      // starttls (default) | implicit | none (loopback only)
	TLSConfig *tls.Config // server certificate; needed unless ListenTLS is none

	Upstream          string      // host:port of the upstream IMAP server
	UpstreamTLS       string      // implicit (default) | starttls | none (loopback only)
	UpstreamTLSConfig *tls.Config // client TLS config; nil: system roots, ServerName from Upstream

	// Viewer turns S/MIME messages into what the client sees. Nil: PassThrough.
	Viewer Viewer
	// UnlockURL returns the page where email unlocks its Digital ID; it is
	// named in the [ALERT] of a FETCH refused for a locked key.
	UnlockURL func(email string) string
	// AppendTransform, when set, receives messages APPENDed to Sent or
	// Drafts (by special-use attribute, or by name when the upstream has
	// none). Nil: such messages pass unchanged.
	AppendTransform AppendTransformFunc

	// MaxMessageBytes bounds a message the proxy holds whole in memory
	// (S/MIME messages for the Viewer, APPENDs for AppendTransform).
	// Larger S/MIME messages stream through like plain ones. Default 64 MiB.
	MaxMessageBytes int64
	// DialTimeout bounds connecting and logging in to the upstream.
	// Default 15 s.
	DialTimeout time.Duration
	// CommandTimeout bounds how long the upstream may stay silent while
	// a command waits for it (LOGIN, FETCH, …); the upstream connection
	// is then closed and the client told NO [UNAVAILABLE]. Default 60 s.
	CommandTimeout time.Duration
	// IdleKeepalive is how often an upstream IDLE is ended and started
	// again (DONE, then IDLE), which keeps it alive and bounds the
	// upstream's silence during IDLE. Default 10 min.
	IdleKeepalive time.Duration
	// IdleTimeout disconnects a client that sends nothing (no command,
	// no DONE) for this long. Default 30 min.
	IdleTimeout time.Duration

	Logger *slog.Logger // default slog.Default()
}

// Proxy is an IMAP proxy listening for clients.
type Proxy struct {
	opts   Options
	log    *slog.Logger
	ln     net.Listener
	srv    *imapserver.Server
	viewer Viewer

	closeOnce sync.Once
}

// proxyCaps are the capabilities offered to clients. Each one is either
// handled by imapserver itself or passed on to the upstream, which must
// support it (Dovecot and most servers do); MOVE falls back to COPY, STORE
// and EXPUNGE when the upstream lacks it.
func proxyCaps() imap.CapSet {
	return imap.CapSet{
		imap.CapIMAP4rev1:   {},
		imap.CapNamespace:   {},
		imap.CapUIDPlus:     {},
		imap.CapMove:        {},
		imap.CapLiteralPlus: {},
		imap.CapSpecialUse:  {},
		imap.CapBinary:      {},
		imap.CapUnselect:    {},
		imap.CapIdle:        {},
		imap.CapEnable:      {},
	}
}

// NewProxy validates opts and opens the client listener; Serve then
// accepts connections.
func NewProxy(opts Options) (*Proxy, error) {
	if opts.ListenTLS == "" {
		opts.ListenTLS = TLSStartTLS
	}
	if opts.UpstreamTLS == "" {
		opts.UpstreamTLS = TLSImplicit
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 64 << 20
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 15 * time.Second
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = 60 * time.Second
	}
	if opts.IdleKeepalive <= 0 {
		opts.IdleKeepalive = 10 * time.Minute
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 30 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Upstream == "" {
		return nil, errors.New("imap proxy: no upstream address")
	}
	switch opts.UpstreamTLS {
	case TLSImplicit, TLSStartTLS, TLSNone:
	default:
		return nil, fmt.Errorf("imap proxy: upstream TLS mode %q: want implicit, starttls or none", opts.UpstreamTLS)
	}
	if opts.UpstreamTLS == TLSNone && !isLoopback(opts.Upstream) {
		return nil, fmt.Errorf("imap proxy: upstream %s without TLS: only loopback addresses may go unencrypted", opts.Upstream)
	}
	viewer := opts.Viewer
	if viewer == nil {
		viewer = PassThrough{}
	}
	p := &Proxy{opts: opts, log: opts.Logger.With("proxy", "imap"), viewer: viewer}
	srvOpts := &imapserver.Options{
		NewSession: p.newSession,
		Caps:       proxyCaps(),
		Logger:     logAdapter{p.log},
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("imap proxy: listen %s: %w", opts.Listen, err)
	}
	ln = idleListener{Listener: ln, idle: opts.IdleTimeout}
	switch opts.ListenTLS {
	case TLSStartTLS:
		if opts.TLSConfig == nil {
			ln.Close()
			return nil, errors.New("imap proxy: starttls needs a TLS certificate")
		}
		srvOpts.TLSConfig = opts.TLSConfig
	case TLSImplicit:
		if opts.TLSConfig == nil {
			ln.Close()
			return nil, errors.New("imap proxy: implicit TLS needs a TLS certificate")
		}
		ln = tls.NewListener(ln, opts.TLSConfig)
		srvOpts.InsecureAuth = true // the connection is TLS from the first byte
	case TLSNone:
		if !isLoopback(ln.Addr().String()) {
			ln.Close()
			return nil, fmt.Errorf("imap proxy: listen %s without TLS: only loopback addresses may go unencrypted", opts.Listen)
		}
		srvOpts.InsecureAuth = true
	default:
		ln.Close()
		return nil, fmt.Errorf("imap proxy: listen TLS mode %q: want starttls, implicit or none", opts.ListenTLS)
	}
	p.ln = ln
	p.srv = imapserver.New(srvOpts)
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Serve accepts client connections until ctx is done or Close is called.
func (p *Proxy) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { p.Close() })
	defer stop()
	err := p.srv.Serve(p.ln)
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Close stops listening and closes every client connection (and with it
// each upstream connection).
func (p *Proxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		err = p.srv.Close()
		p.ln.Close()
	})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (p *Proxy) newSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	var b [6]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		p:      p,
		conn:   conn,
		id:     id,
		log:    p.log.With("session", id),
		ctx:    ctx,
		cancel: cancel,
		notify: make(chan struct{}, 1),
	}
	// The client connection reports when a command has been answered;
	// the watchdog stops counting the upstream's silence then.
	nc := conn.NetConn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if ic, ok := nc.(*idleConn); ok {
		ic.onWait = func() { s.watch.disarm() }
	}
	return s, nil, nil
}

// dialUpstream connects to the upstream and waits for its greeting; the
// session logs in afterwards.
func (p *Proxy) dialUpstream(ctx context.Context, handler *imapclient.UnilateralDataHandler) (*imapclient.Client, *watchConn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.DialTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", p.opts.Upstream)
	if err != nil {
		return nil, nil, fmt.Errorf("dial upstream %s: %w", p.opts.Upstream, err)
	}
	conn := &watchConn{Conn: raw}
	// The handshake and greeting must finish within the dial timeout.
	conn.SetDeadline(time.Now().Add(p.opts.DialTimeout))
	cfg := p.opts.UpstreamTLSConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(p.opts.Upstream)
	}
	copts := &imapclient.Options{TLSConfig: cfg, UnilateralDataHandler: handler}
	var c *imapclient.Client
	switch p.opts.UpstreamTLS {
	case TLSImplicit:
		tc := tls.Client(conn, cfg)
		if err = tc.HandshakeContext(ctx); err == nil {
			c = imapclient.New(tc, copts)
		}
	case TLSStartTLS:
		c, err = imapclient.NewStartTLS(conn, copts)
	default:
		c = imapclient.New(conn, copts)
	}
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("upstream %s %s: %w", p.opts.UpstreamTLS, p.opts.Upstream, err)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("upstream greeting: %w", err)
	}
	// From here the session's watchdog bounds each wait.
	conn.SetDeadline(time.Time{})
	return c, conn, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// logAdapter sends imapserver's internal errors to slog.
type logAdapter struct{ log *slog.Logger }

func (l logAdapter) Printf(format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...))
}
