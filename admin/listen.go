package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ErrPlaintextRemote refuses plain HTTP on an address others can reach.
var ErrPlaintextRemote = errors.New("the admin endpoint listens on a non-loopback address without TLS: set [admin] listen_tls = \"implicit\", listen on 127.0.0.1, or set allow_remote_plaintext behind a TLS-terminating reverse proxy")

// ServeOptions says how Serve exposes a handler.
type ServeOptions struct {
	// TLS, when set, serves HTTPS.
	TLS *tls.Config
	// AllowRemotePlaintext permits plain HTTP on a non-loopback address.
	AllowRemotePlaintext bool
	// ShutdownTimeout bounds the graceful shutdown when ctx ends (0: 5 s).
	ShutdownTimeout time.Duration
}

// CheckListen refuses a plain-HTTP listener on a non-loopback address
// unless allowed; addr is host:port.
func CheckListen(addr string, tlsOn, allowRemotePlaintext bool) error {
	if tlsOn || allowRemotePlaintext {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin listen address %q: %w", addr, err)
	}
	if !isLoopbackName(host) {
		return fmt.Errorf("admin listen address %s: %w", addr, ErrPlaintextRemote)
	}
	return nil
}

// Serve serves h on l until ctx ends, then shuts down gracefully.
func Serve(ctx context.Context, l net.Listener, h http.Handler, opts ServeOptions) error {
	if err := CheckListen(l.Addr().String(), opts.TLS != nil, opts.AllowRemotePlaintext); err != nil {
		l.Close()
		return err
	}
	if opts.TLS != nil {
		l = tls.NewListener(l, opts.TLS)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute, // an enrolment with Argon2 and RSA key generation
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return fmt.Errorf("admin endpoint: %w", err)
	case <-ctx.Done():
	}
	timeout := opts.ShutdownTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("admin endpoint shutdown: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin endpoint: %w", err)
	}
	return nil
}

// ListenAndServe listens on addr (after CheckListen) and calls Serve.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, opts ServeOptions) error {
	if err := CheckListen(addr, opts.TLS != nil, opts.AllowRemotePlaintext); err != nil {
		return err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("admin endpoint: %w", err)
	}
	return Serve(ctx, l, h, opts)
}
