package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// dialUpstream connects to the submission server, secures the connection as
// configured and greets it. The context bounds the dial, TLS handshake and
// greeting; later commands are bounded by CommandTimeout.
func (p *Proxy) dialUpstream(ctx context.Context) (*gosmtp.Client, error) {
	d := net.Dialer{Timeout: p.opts.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", p.opts.Upstream)
	if err != nil {
		return nil, fmt.Errorf("dial upstream %s: %w", p.opts.Upstream, err)
	}
	// Until the greeting is done, the context's deadline (or the dial
	// timeout) bounds every wait; context cancellation closes the socket.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}

	var c *gosmtp.Client
	switch p.opts.UpstreamTLS {
	case TLSImplicit:
		tc := tls.Client(conn, p.upstreamTLSConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS with upstream %s: %w", p.opts.Upstream, err)
		}
		c = gosmtp.NewClient(tc)
	case TLSStartTLS:
		c, err = gosmtp.NewClientStartTLS(conn, p.upstreamTLSConfig())
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("STARTTLS with upstream %s: %w", p.opts.Upstream, err)
		}
	default:
		c = gosmtp.NewClient(conn)
	}
	c.CommandTimeout = p.opts.CommandTimeout
	c.SubmissionTimeout = p.opts.DataTimeout
	if err := c.Hello(p.opts.Hostname); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO to upstream %s: %w", p.opts.Upstream, err)
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

func (p *Proxy) upstreamTLSConfig() *tls.Config {
	if p.opts.UpstreamTLSConfig != nil {
		cfg := p.opts.UpstreamTLSConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = hostOf(p.opts.Upstream)
		}
		return cfg
	}
	return &tls.Config{ServerName: hostOf(p.opts.Upstream), MinVersion: tls.VersionTLS12}
}

func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// errUpstreamAuth: the upstream refused the credentials (5xx to AUTH).
var errUpstreamAuth = errors.New("upstream refused the login")

// authUpstream opens a connection for one client session and logs in with
// the client's own credentials, which the proxy keeps no longer than this
// call. PLAIN is used when offered, else LOGIN.
func (p *Proxy) authUpstream(ctx context.Context, user, password string) (*gosmtp.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.DialTimeout+p.opts.CommandTimeout)
	defer cancel()
	c, err := p.dialUpstream(ctx)
	if err != nil {
		return nil, err
	}
	var mech sasl.Client
	switch {
	case c.SupportsAuth("PLAIN"):
		mech = sasl.NewPlainClient("", user, password)
	case c.SupportsAuth("LOGIN"):
		mech = sasl.NewLoginClient(user, password)
	default:
		c.Close()
		return nil, errors.New("upstream offers neither AUTH PLAIN nor AUTH LOGIN")
	}
	if err := c.Auth(mech); err != nil {
		c.Close()
		var se *gosmtp.SMTPError
		if errors.As(err, &se) && se.Code/100 == 5 {
			return nil, fmt.Errorf("%w: %d %v", errUpstreamAuth, se.Code, se.EnhancedCode)
		}
		return nil, fmt.Errorf("AUTH at upstream: %w", err)
	}
	return c, nil
}
