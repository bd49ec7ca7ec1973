package smtp

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"smimeproxy/identity"
	"smimeproxy/policy"
)

// TLS modes of the listener and of the upstream connection, spelled as in
// the configuration file.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "implicit"
	TLSNone     = "none"
)

// Defaults of Options.
const (
	DefaultMaxMessageBytes  = 50 << 20
	DefaultDialTimeout      = 15 * time.Second
	DefaultCommandTimeout   = 2 * time.Minute
	DefaultDataTimeout      = 10 * time.Minute
	DefaultMaxRecipients    = 100
	DefaultMaxConnections   = 1000
	DefaultMaxInFlightBytes = 256 << 20
)

// Keys is what the proxy needs of the Digital IDs: the sending user's signing
// key and the certificates to encrypt to. *identity.Service implements it.
type Keys interface {
	// SigningKey returns the signing certificate and key of email's Digital
	// ID, the chain up to the root, and the encryption certificate to
	// announce. Errors: identity.ErrNoIdentity, identity.ErrPendingTrust,
	// identity.ErrLocked.
	SigningKey(ctx context.Context, email string) (*x509.Certificate, crypto.Signer, []*x509.Certificate, *x509.Certificate, error)
	// RecipientCertificate returns the certificate to encrypt to email as
	// owner sees it, with its capabilities; identity.ErrNoCertificate when
	// none is known.
	RecipientCertificate(ctx context.Context, owner, email string) (*identity.Recipient, error)
}

var _ Keys = (*identity.Service)(nil)

// Options configures a Proxy.
type Options struct {
	Listen    string      // host:port for clients
	ListenTLS string      // TLSStartTLS (default), TLSImplicit or TLSNone (loopback only)
	TLSConfig *tls.Config // server certificate; required unless ListenTLS is none
	Hostname  string      // greeting and EHLO name; default "localhost"

	Upstream          string      // host:port of the submission server
	UpstreamTLS       string      // TLSStartTLS (default), TLSImplicit or TLSNone
	UpstreamTLSConfig *tls.Config // nil: system roots, ServerName from Upstream

	MaxMessageBytes int64 // default DefaultMaxMessageBytes
	// MaxInFlightBytes bounds the message bytes held by all sessions
	// together (a message is held once while it is signed and encrypted;
	// an AES-GCM copy adds one encrypted copy). A message that does not fit gets 452 4.3.1
	// and the client retries. Default DefaultMaxInFlightBytes, at least
	// MaxMessageBytes.
	MaxInFlightBytes int64
	MaxRecipients    int // per message; default DefaultMaxRecipients
	// MaxConnections bounds the client connections served at once; one
	// more gets 421 4.7.0 and is closed. Default DefaultMaxConnections.
	MaxConnections int
	DialTimeout    time.Duration
	CommandTimeout time.Duration // per command, both sides
	DataTimeout    time.Duration // reading or writing one message

	Keys Keys
	// CertCacheTTL is how long a recipient certificate lookup (public
	// certificates and "none known") is reused across messages and
	// sessions: a revocation or a new certificate takes effect up to this
	// late. 0: DefaultCertCacheTTL; negative: every message asks Keys.
	CertCacheTTL time.Duration
	Policy       policy.Policy
	// UnlockURL and EnrollURL give the links put into 451 replies for a
	// locked Digital ID and for a mailbox without one.
	UnlockURL func(email string) string
	EnrollURL func(email string) string
	Logger    *slog.Logger
}

// Proxy is the submission proxy. Create it with NewProxy.
type Proxy struct {
	opts     Options
	log      *slog.Logger
	server   *server
	inFlight *semaphore.Weighted // message bytes held, all sessions
	certs    *certCache
	bufs     sync.Pool // *bytes.Buffer for reading messages (data.go)

	mu       sync.Mutex
	listener net.Listener
	closed   bool
}

// NewProxy checks opts and returns a proxy ready to Serve.
func NewProxy(opts Options) (*Proxy, error) {
	if opts.Keys == nil {
		return nil, errors.New("smtp proxy: Keys is required")
	}
	if opts.Upstream == "" {
		return nil, errors.New("smtp proxy: Upstream is required")
	}
	if !opts.Policy.Sign.Valid() || !opts.Policy.Encrypt.Valid() {
		return nil, fmt.Errorf("smtp proxy: %w", policy.ErrInvalidMode)
	}
	if opts.ListenTLS == "" {
		opts.ListenTLS = TLSStartTLS
	}
	if opts.UpstreamTLS == "" {
		opts.UpstreamTLS = TLSStartTLS
	}
	for _, m := range []string{opts.ListenTLS, opts.UpstreamTLS} {
		if m != TLSStartTLS && m != TLSImplicit && m != TLSNone {
			return nil, fmt.Errorf("smtp proxy: TLS mode %q: must be starttls, implicit or none", m)
		}
	}
	if opts.ListenTLS != TLSNone && opts.TLSConfig == nil {
		return nil, errors.New("smtp proxy: TLSConfig is required unless ListenTLS is none")
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.MaxInFlightBytes <= 0 {
		opts.MaxInFlightBytes = max(DefaultMaxInFlightBytes, opts.MaxMessageBytes)
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = DefaultMaxRecipients
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	if opts.DataTimeout <= 0 {
		opts.DataTimeout = DefaultDataTimeout
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.UnlockURL == nil {
		opts.UnlockURL = func(string) string { return "the unlock page" }
	}
	if opts.EnrollURL == nil {
		opts.EnrollURL = func(string) string { return "the enrolment page" }
	}
	if opts.CertCacheTTL == 0 {
		opts.CertCacheTTL = DefaultCertCacheTTL
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Proxy{opts: opts, log: log.With("component", "smtp"), inFlight: semaphore.NewWeighted(opts.MaxInFlightBytes),
		certs: newCertCache(opts.Keys, opts.CertCacheTTL, nil)}

	so := serverOptions{
		Hostname:        opts.Hostname,
		MaxMessageBytes: opts.MaxMessageBytes,
		MaxRecipients:   opts.MaxRecipients,
		MaxConnections:  opts.MaxConnections,
		CommandTimeout:  opts.CommandTimeout,
		DataTimeout:     opts.DataTimeout,
		NewSession:      p.newSession,
		Logger:          p.log,
		// AUTH in clear only on a listener configured without TLS, which
		// config validation restricts to loopback.
		InsecureAuth: opts.ListenTLS == TLSNone,
	}
	if opts.ListenTLS == TLSStartTLS {
		so.TLSConfig = opts.TLSConfig
	}
	p.server = newServer(so)
	return p, nil
}

// ListenAndServe listens on Options.Listen and serves until ctx is done or
// Close is called.
func (p *Proxy) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", p.opts.Listen)
	if err != nil {
		return fmt.Errorf("smtp proxy: listen on %s: %w", p.opts.Listen, err)
	}
	return p.Serve(ctx, l)
}

// Serve accepts clients on l until ctx is done or Close is called. Before
// accepting it asks the upstream which extensions it offers (SMTPUTF8, SIZE),
// so the proxy advertises only what it can pass on.
func (p *Proxy) Serve(ctx context.Context, l net.Listener) error {
	if p.opts.ListenTLS == TLSImplicit {
		l = tls.NewListener(l, p.opts.TLSConfig)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.Close()
		return errServerClosed
	}
	p.listener = l
	p.mu.Unlock()

	p.probeUpstream(ctx)

	stop := context.AfterFunc(ctx, func() { p.Close() })
	defer stop()
	err := p.server.Serve(l)
	if errors.Is(err, errServerClosed) || ctx.Err() != nil {
		return nil
	}
	return err
}

// Addr is the address the proxy listens on (once Serve runs).
func (p *Proxy) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listener == nil {
		return nil
	}
	return p.listener.Addr()
}

// Close stops listening and closes every client connection (and with it
// each session's upstream connection).
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.server.Close()
	if errors.Is(err, errServerClosed) {
		return nil
	}
	return err
}

// probeUpstream reads the upstream's EHLO: SMTPUTF8 is advertised only when
// the upstream offers it, and SIZE is lowered so that a message that grows by
// encryption (base64 of the CMS, about 4/3) still fits the upstream's limit.
// An unreachable upstream leaves the defaults (no SMTPUTF8).
func (p *Proxy) probeUpstream(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.DialTimeout)
	defer cancel()
	c, err := p.dialUpstream(ctx)
	if err != nil {
		p.log.Warn("upstream probe failed; SMTPUTF8 not advertised", "upstream", p.opts.Upstream, "err", err)
		return
	}
	defer c.Close()
	if ok, _ := c.Extension("SMTPUTF8"); ok {
		p.server.opts.SMTPUTF8 = true
	}
	if n, ok := c.MaxMessageSize(); ok && n > 0 {
		fit := (int64(n) - 64<<10) * 3 / 4
		if fit > 0 && fit < p.server.opts.MaxMessageBytes {
			p.server.opts.MaxMessageBytes = fit
		}
	}
	c.Quit()
}
