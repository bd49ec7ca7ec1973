// Package app wires smimeproxy's packages into a running gateway, as
// `smimeproxy serve` and `smimeproxy demo` run it: the store, the built-in
// CA, the identity service, the admin endpoint (HTTP, RFC 9110) and the SMTP
// (RFC 6409) and IMAP (RFC 9051) proxies, all from one config.Config.
//
// Start binds every listener before it returns, so addresses configured with
// port 0 are known (App.IMAPAddr …) and links handed to users name the real
// port. Close stops the listeners and locks every Digital ID.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"smimeproxy/admin"
	"smimeproxy/config"
	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/seal"
	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
	imapproxy "smimeproxy/proxy/imap"
	smtpproxy "smimeproxy/proxy/smtp"
)

// ShutdownTimeout bounds how long Close waits for the admin endpoint's open
// requests; the proxies close their connections at once.
const ShutdownTimeout = time.Second

// The IMAP viewer learns from the identity service when a key locks.
var _ imapproxy.UnlockReporter = (*identity.Service)(nil)

// App is a running gateway.
type App struct {
	Config     *config.Config
	CA         *ca.CA
	Identity   *identity.Service
	AdminToken seal.Secret
	// PublicURL is the admin endpoint's base for links ("http://127.0.0.1:8080").
	PublicURL string

	IMAPAddr, SMTPAddr, AdminAddr net.Addr

	viewer    *imapproxy.SMIMEViewer
	log       *slog.Logger
	cancel    context.CancelFunc
	closers   []func() error // listeners and proxies, closed in reverse order
	resources []func() error // store, identity service: closed after the servers ended
	wg        sync.WaitGroup
	errs      chan error
	once      sync.Once
	doneErr   error
}

// Start opens everything cfg describes and starts serving. cfg must come
// from config.Load or config.Parse (validated, paths absolute). The
// listeners stop when ctx ends or Close is called; Close must be called
// either way to release the store and lock the Digital IDs.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *App, err error) {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &App{Config: cfg, log: log, cancel: cancel, errs: make(chan error, 3)}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	smime.ConfigureLibrary()

	if a.CA, err = OpenCA(cfg.CA); err != nil {
		return nil, err
	}
	st, closeStore, err := OpenStore(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	a.resources = append(a.resources, closeStore)
	listenerTLS, err := ListenerTLS(cfg.TLS, a.CA)
	if err != nil {
		return nil, err
	}
	imapUpTLS, err := upstreamTLS("imap.upstream_ca", cfg.IMAP.UpstreamCA, cfg.IMAP.Upstream)
	if err != nil {
		return nil, err
	}
	if a.Identity, err = newIdentity(cfg, st, a.CA, imapUpTLS, log); err != nil {
		return nil, err
	}
	a.resources = append(a.resources, a.Identity.Close)
	if a.AdminToken, err = admin.LoadOrCreateToken(cfg.Admin.TokenFile); err != nil {
		return nil, fmt.Errorf("admin token_file: %w", err)
	}

	// Listeners first: with port 0 the links need the port chosen.
	adminL, err := a.listen(ctx, "admin", cfg.Admin.Listen)
	if err != nil {
		return nil, err
	}
	a.AdminAddr = adminL.Addr()
	a.PublicURL = publicURL(cfg.Admin, a.AdminAddr)
	unlockURL := func(string) string { return a.PublicURL + "/unlock" }
	enrollURL := func(string) string { return a.PublicURL + "/enroll" }

	if err := a.startAdmin(ctx, adminL, listenerTLS); err != nil {
		return nil, err
	}
	if err := a.startIMAP(ctx, listenerTLS, imapUpTLS, unlockURL); err != nil {
		return nil, err
	}
	if err := a.startSMTP(ctx, listenerTLS, unlockURL, enrollURL); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *App) listen(ctx context.Context, what, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", what, addr, err)
	}
	a.closers = append(a.closers, func() error { l.Close(); return nil })
	return l, nil
}

// serve runs fn in the background; its error, if any, ends the App.
func (a *App) serve(what string, fn func() error) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, net.ErrClosed) {
			select {
			case a.errs <- fmt.Errorf("%s: %w", what, err):
			default:
			}
		}
	}()
}

func (a *App) startAdmin(ctx context.Context, l net.Listener, listenerTLS *tls.Config) error {
	c := a.Config.Admin
	srv, err := admin.New(admin.Options{
		Identity:        a.Identity,
		Auth:            a.Identity,
		AdminToken:      a.AdminToken,
		PublicURL:       a.PublicURL,
		CARootPEM:       a.CA.RootPEM(),
		Logger:          a.log.With("component", "admin"),
		SessionTTL:      c.SessionTTL.Std(),
		MaxRequestSize:  int64(c.MaxRequestSize),
		RememberDefault: a.Config.Keys.RememberDefault.Std(),
		RememberMax:     a.Config.Keys.RememberMax.Std(),
	})
	if err != nil {
		return fmt.Errorf("admin endpoint: %w", err)
	}
	opts := admin.ServeOptions{AllowRemotePlaintext: c.AllowRemotePlaintext, ShutdownTimeout: ShutdownTimeout}
	if c.ListenTLS == config.TLSImplicit {
		opts.TLS = listenerTLS
	}
	if err := admin.CheckListen(l.Addr().String(), opts.TLS != nil, opts.AllowRemotePlaintext); err != nil {
		return err
	}
	a.serve("admin endpoint", func() error { return admin.Serve(ctx, l, srv, opts) })
	a.log.Info("listening", "service", "admin", "addr", l.Addr().String(), "tls", string(c.ListenTLS), "url", a.PublicURL)
	return nil
}

func (a *App) startIMAP(ctx context.Context, listenerTLS, upTLS *tls.Config, unlockURL func(string) string) error {
	c := a.Config.IMAP
	cache := int64(c.CacheSize)
	if cache == 0 {
		cache = -1 // config: 0 turns the cache off; the viewer's 0 means its default
	}
	logger := a.log.With("component", "imap")
	viewer, err := imapproxy.NewSMIMEViewer(imapproxy.ViewerOptions{Keys: a.Identity, CacheBytes: cache, Logger: logger})
	if err != nil {
		return fmt.Errorf("imap viewer: %w", err)
	}
	// Plaintext read with a key must go when the key does: the viewer asks
	// Identity.Unlocked on every cache hit, and every lock (admin or page,
	// revocation, expiry, shutdown) drops the user's views at once.
	a.Identity.OnLock(viewer.Wipe)
	a.viewer = viewer
	p, err := imapproxy.NewProxy(imapproxy.Options{
		Listen: c.Listen, ListenTLS: string(c.ListenTLS), TLSConfig: listenerTLS,
		Upstream: c.Upstream, UpstreamTLS: string(c.UpstreamTLS), UpstreamTLSConfig: upTLS,
		Viewer:          viewer,
		UnlockURL:       unlockURL,
		AppendTransform: viewer.AppendTransform,
		DialTimeout:     c.DialTimeout.Std(),
		Logger:          logger,
	})
	if err != nil {
		return fmt.Errorf("imap proxy: %w", err)
	}
	a.closers = append(a.closers, p.Close)
	a.IMAPAddr = p.Addr()
	a.serve("imap proxy", func() error { return p.Serve(ctx) })
	a.log.Info("listening", "service", "imap", "addr", a.IMAPAddr.String(), "tls", string(c.ListenTLS), "upstream", c.Upstream, "upstream_tls", string(c.UpstreamTLS))
	return nil
}

func (a *App) startSMTP(ctx context.Context, listenerTLS *tls.Config, unlockURL, enrollURL func(string) string) error {
	c := a.Config.SMTP
	opts, err := smtpproxy.OptionsFromConfig(a.Config)
	if err != nil {
		return err
	}
	opts.TLSConfig = listenerTLS
	opts.Keys = a.Identity
	opts.UnlockURL, opts.EnrollURL = unlockURL, enrollURL
	opts.Logger = a.log // the proxy adds component=smtp itself
	p, err := smtpproxy.NewProxy(opts)
	if err != nil {
		return fmt.Errorf("smtp proxy: %w", err)
	}
	l, err := a.listen(ctx, "smtp proxy", c.Listen)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, p.Close)
	a.SMTPAddr = l.Addr()
	a.serve("smtp proxy", func() error { return p.Serve(ctx, l) })
	a.log.Info("listening", "service", "smtp", "addr", a.SMTPAddr.String(), "tls", string(c.ListenTLS), "upstream", c.Upstream, "upstream_tls", string(c.UpstreamTLS))
	return nil
}

// Wait blocks until ctx ends or a listener fails, and returns that failure.
func (a *App) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-a.errs:
		return err
	}
}

// Close stops every listener and connection, waits for the servers to end
// (the admin endpoint at most ShutdownTimeout), locks every Digital ID
// (wiping the unlock cache) and closes the store.
func (a *App) Close() error {
	a.once.Do(func() {
		a.cancel()
		var errs []error
		run := func(fns []func() error) {
			for i := len(fns) - 1; i >= 0; i-- {
				if err := fns[i](); err != nil && !errors.Is(err, net.ErrClosed) {
					errs = append(errs, err)
				}
			}
		}
		run(a.closers)
		a.wg.Wait()
		run(a.resources)
		a.doneErr = errors.Join(errs...)
	})
	return a.doneErr
}
