package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Authenticator checks a mailbox's own login. The mail server stays the
// authority over mailbox passwords; the proxy keeps none.
type Authenticator interface {
	// Authenticate returns nil for a good login, ErrAuthFailed when the
	// server refused it, ErrUpstreamUnavailable when it could not ask.
	Authenticate(ctx context.Context, username string, password Secret) error
}

// Authentication errors.
var (
	ErrAuthFailed          = errors.New("the mail server refused this login: check address and mail password")
	ErrUpstreamUnavailable = errors.New("the mail server could not be reached to check the login: try again later")
)

// Upstream TLS modes, as config's upstream_tls spells them.
const (
	TLSImplicit = "implicit"
	TLSStartTLS = "starttls"
	TLSNone     = "none"
)

// IMAPAuthOptions configures an IMAPAuthenticator.
type IMAPAuthOptions struct {
	Addr      string      // host:port of the upstream IMAP server
	TLS       string      // TLSImplicit (default), TLSStartTLS or TLSNone
	TLSConfig *tls.Config // nil: system roots, ServerName from Addr
	Timeout   time.Duration
	// CacheTTL is how long a successful login is remembered (in memory
	// only), so a burst of calls does not log in upstream each time.
	// 0: DefaultAuthCacheTTL; negative: no cache.
	CacheTTL time.Duration
	Clock    Clock
}

// Authenticator defaults.
const (
	DefaultAuthTimeout  = 15 * time.Second
	DefaultAuthCacheTTL = 2 * time.Minute
	authCacheMax        = 10000
)

// IMAPAuthenticator checks logins with IMAP LOGIN (RFC 9051 §6.2.3) against
// the upstream server and caches successes briefly, keyed by user and a
// keyed hash of the password (the key is random per process, so the cache
// holds nothing a memory dump could test passwords against offline).
type IMAPAuthenticator struct {
	opts    IMAPAuthOptions
	hashKey []byte

	mu    sync.Mutex
	cache map[string]time.Time // user\x00hmac(password) → expiry
}

var _ Authenticator = (*IMAPAuthenticator)(nil)

// NewIMAPAuthenticator returns an authenticator for the upstream in opts.
func NewIMAPAuthenticator(opts IMAPAuthOptions) (*IMAPAuthenticator, error) {
	switch opts.TLS {
	case "":
		opts.TLS = TLSImplicit
	case TLSImplicit, TLSStartTLS, TLSNone:
	default:
		return nil, fmt.Errorf("upstream IMAP TLS mode %q: want implicit, starttls or none", opts.TLS)
	}
	if _, _, err := net.SplitHostPort(opts.Addr); err != nil {
		return nil, fmt.Errorf("upstream IMAP address %q: %w", opts.Addr, err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultAuthTimeout
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultAuthCacheTTL
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("authentication cache key: %w", err)
	}
	return &IMAPAuthenticator{opts: opts, hashKey: key, cache: map[string]time.Time{}}, nil
}

// Authenticate implements Authenticator.
func (a *IMAPAuthenticator) Authenticate(ctx context.Context, username string, password Secret) error {
	if username == "" || password == "" {
		return ErrAuthFailed
	}
	key := a.cacheKey(username, password)
	if a.cached(key) {
		return nil
	}
	if err := a.login(ctx, username, password); err != nil {
		return err
	}
	a.remember(key)
	return nil
}

func (a *IMAPAuthenticator) cacheKey(username string, password Secret) string {
	m := hmac.New(sha256.New, a.hashKey)
	m.Write([]byte(password))
	return username + "\x00" + string(m.Sum(nil))
}

func (a *IMAPAuthenticator) cached(key string) bool {
	if a.opts.CacheTTL < 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.cache[key]
	if ok && a.opts.Clock.Now().Before(exp) {
		return true
	}
	delete(a.cache, key)
	return false
}

func (a *IMAPAuthenticator) remember(key string) {
	if a.opts.CacheTTL < 0 {
		return
	}
	now := a.opts.Clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= authCacheMax {
		for k, exp := range a.cache {
			if !now.Before(exp) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= authCacheMax {
			clear(a.cache) // a flood of distinct logins: start over rather than grow
		}
	}
	a.cache[key] = now.Add(a.opts.CacheTTL)
}

// Forget drops cached logins of username (after a password change upstream
// is reported, or a user logs out).
func (a *IMAPAuthenticator) Forget(username string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.cache {
		if len(k) > len(username) && k[:len(username)] == username && k[len(username)] == 0 {
			delete(a.cache, k)
		}
	}
}

// login runs one IMAP session: greeting, (STARTTLS,) LOGIN, LOGOUT, all
// under one deadline.
func (a *IMAPAuthenticator) login(ctx context.Context, username string, password Secret) error {
	ctx, cancel := context.WithTimeout(ctx, a.opts.Timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", a.opts.Addr)
	if err != nil {
		return fmt.Errorf("%w: dial %s: %v", ErrUpstreamUnavailable, a.opts.Addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("%w: %v", ErrUpstreamUnavailable, err)
	}
	// A cancelled context cuts the connection, which ends any wait.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	tlsConfig := a.opts.TLSConfig
	if tlsConfig == nil {
		host, _, _ := net.SplitHostPort(a.opts.Addr)
		tlsConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	copts := &imapclient.Options{TLSConfig: tlsConfig}
	var c *imapclient.Client
	switch a.opts.TLS {
	case TLSImplicit:
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("%w: TLS with %s: %v", ErrUpstreamUnavailable, a.opts.Addr, err)
		}
		c = imapclient.New(tc, copts)
	case TLSStartTLS:
		c, err = imapclient.NewStartTLS(conn, copts)
		if err != nil {
			return fmt.Errorf("%w: STARTTLS with %s: %v", ErrUpstreamUnavailable, a.opts.Addr, err)
		}
	default:
		c = imapclient.New(conn, copts)
	}
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		return fmt.Errorf("%w: greeting from %s: %v", ErrUpstreamUnavailable, a.opts.Addr, err)
	}
	if err := c.Login(username, string(password)).Wait(); err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
			return ErrAuthFailed
		}
		return fmt.Errorf("%w: LOGIN at %s: %v", ErrUpstreamUnavailable, a.opts.Addr, err)
	}
	// The login is proven; a failing LOGOUT changes nothing.
	_ = c.Logout().Wait()
	return nil
}
