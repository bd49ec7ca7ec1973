package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	gosmtp "github.com/emersion/go-smtp"
)

// dialUpstream connects to the submission server, secures the connection as
// configured and greets it. The context bounds the dial, TLS handshake and
// greeting as well as each command's CommandTimeout.
func (p *Proxy) dialUpstream(ctx context.Context) (*upClient, error) {
	d := net.Dialer{Timeout: p.opts.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", p.opts.Upstream)
	if err != nil {
		return nil, fmt.Errorf("dial upstream %s: %w", p.opts.Upstream, err)
	}
	if p.opts.UpstreamTLS == TLSImplicit {
		tc := tls.Client(conn, p.upstreamTLSConfig())
		hctx, cancel := context.WithTimeout(ctx, p.opts.CommandTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS with upstream %s: %w", p.opts.Upstream, err)
		}
		conn = tc
	}
	c := newUpClient(conn, p.opts.CommandTimeout, p.opts.DataTimeout)
	err = c.greet(ctx)
	if err == nil {
		err = c.hello(ctx, p.opts.Hostname)
	}
	if err == nil && p.opts.UpstreamTLS == TLSStartTLS {
		if err = c.startTLS(ctx, p.upstreamTLSConfig(), p.opts.Hostname); err != nil {
			err = fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("upstream %s: %w", p.opts.Upstream, err)
	}
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
func (p *Proxy) authUpstream(ctx context.Context, user, password string) (*upClient, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.DialTimeout+p.opts.CommandTimeout)
	defer cancel()
	c, err := p.dialUpstream(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case c.SupportsAuth("PLAIN"):
		err = c.authPlain(ctx, user, password)
	case c.SupportsAuth("LOGIN"):
		err = c.authLogin(ctx, user, password)
	default:
		c.Close()
		return nil, errors.New("upstream offers neither AUTH PLAIN nor AUTH LOGIN")
	}
	if err != nil {
		c.Close()
		var se *gosmtp.SMTPError
		if errors.As(err, &se) && se.Code/100 == 5 {
			return nil, fmt.Errorf("%w: %d %v", errUpstreamAuth, se.Code, se.EnhancedCode)
		}
		return nil, fmt.Errorf("AUTH at upstream: %w", err)
	}
	return c, nil
}
