package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"smimeproxy/config"
	"smimeproxy/crypto/ca"
	"smimeproxy/identity"
	"smimeproxy/store"
	"smimeproxy/store/postgres"
	"smimeproxy/store/sqlite"
)

// Operator CA files: an external CA's certificate (with its chain after it)
// and private key, placed in the [ca] dir instead of the built-in root.
const (
	OperatorCertFile = "ca.crt"
	OperatorKeyFile  = "ca.key"
)

// NewLogger returns the slog logger [log] asks for, writing to w.
func NewLogger(w io.Writer, c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level.Slog()}
	if c.Format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// OpenCA opens the CA of [ca]: the built-in root in dir (created on first
// start), or an operator's CA when dir holds OperatorCertFile and
// OperatorKeyFile but no built-in root.
func OpenCA(c config.CA) (*ca.CA, error) {
	opts := ca.Options{Org: c.Org, Validity: c.Validity.Std()}
	_, rootErr := os.Stat(filepath.Join(c.Dir, ca.RootCertFile))
	opCert, opKey := filepath.Join(c.Dir, OperatorCertFile), filepath.Join(c.Dir, OperatorKeyFile)
	if errors.Is(rootErr, fs.ErrNotExist) && exists(opCert) && exists(opKey) {
		opts.CertFile, opts.KeyFile = opCert, opKey
	}
	authority, err := ca.Open(c.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("ca.dir %s: %w", c.Dir, err)
	}
	return authority, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// OpenStore opens the store of [store] and returns it with its Close.
func OpenStore(ctx context.Context, c config.Store) (store.Store, func() error, error) {
	switch c.Driver {
	case config.DriverSQLite:
		st, err := sqlite.Open(ctx, c.DSN)
		if err != nil {
			return nil, nil, fmt.Errorf("store (sqlite %s): %w", c.RedactedDSN(), err)
		}
		return st, st.Close, nil
	case config.DriverPostgres:
		st, err := postgres.Open(ctx, c.DSN)
		if err != nil {
			// pgx errors may quote the DSN; keep only what is safe to show.
			return nil, nil, fmt.Errorf("store (postgres %s): cannot open the database: %s", c.RedactedDSN(), redact(err.Error(), c.DSN))
		}
		return st, st.Close, nil
	default:
		return nil, nil, fmt.Errorf("store.driver %q: must be sqlite or postgres", c.Driver)
	}
}

// redact removes the password of dsn from text.
func redact(text, dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			text = strings.ReplaceAll(text, pw, "***")
		}
	}
	return text
}

// ListenerTLS returns the server TLS configuration of the client listeners:
// [tls] cert and key when given, else the built-in CA's certificate for the
// loopback names plus [tls] names.
func ListenerTLS(c config.TLS, authority *ca.CA) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	if c.Cert != "" {
		cert, err = tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("tls.cert %s / tls.key %s: %w", c.Cert, c.Key, err)
		}
	} else if cert, err = authority.TLSCertificate(c.Names); err != nil {
		return nil, fmt.Errorf("TLS certificate from the built-in CA: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: c.MinVersion.Uint16()}, nil
}

// upstreamTLS is the client TLS configuration towards an upstream: its CA
// file's roots, or nil (system roots).
func upstreamTLS(key, caFile, upstream string) (*tls.Config, error) {
	cfg, err := config.UpstreamTLS(key, caFile)
	if cfg == nil || err != nil {
		return cfg, err
	}
	cfg.ServerName, _, _ = net.SplitHostPort(upstream)
	return cfg, nil
}

func loadCerts(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	certs, err := ca.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return certs, nil
}

func newIdentity(cfg *config.Config, st store.Store, authority *ca.CA, imapUpTLS *tls.Config, log *slog.Logger) (*identity.Service, error) {
	auth, err := identity.NewIMAPAuthenticator(identity.IMAPAuthOptions{
		Addr: cfg.IMAP.Upstream, TLS: string(cfg.IMAP.UpstreamTLS), TLSConfig: imapUpTLS,
	})
	if err != nil {
		return nil, fmt.Errorf("upstream login check: %w", err)
	}
	keyType, err := ca.ParseKeyType(string(cfg.CA.KeyType))
	if err != nil {
		return nil, fmt.Errorf("ca.key_type: %w", err)
	}
	var roots []*x509.Certificate
	for _, f := range cfg.Trust.Roots {
		certs, err := loadCerts(f)
		if err != nil {
			return nil, fmt.Errorf("trust.roots: %w", err)
		}
		roots = append(roots, certs...)
	}
	ids, err := identity.New(st, identity.Options{
		CA: authority, CADir: authority.Dir(), Upstream: auth,
		Logger:      log.With("component", "identity"),
		KeyType:     keyType,
		Remember:    cfg.Keys.RememberDefault.Std(),
		RememberMax: cfg.Keys.RememberMax.Std(),
		IdleTimeout: cfg.Keys.IdleLock.Std(),
		OrgRoots:    roots,
		Domains:     cfg.Identity.Domains,
	})
	if err != nil {
		return nil, fmt.Errorf("identity service: %w", err)
	}
	return ids, nil
}

// publicURL is [admin] public_url, or the URL of the address the admin
// endpoint really listens on (configured port 0 included).
func publicURL(c config.Admin, addr net.Addr) string {
	if c.PublicURL != "" {
		return c.PublicURL
	}
	scheme := "http"
	if c.ListenTLS == config.TLSImplicit {
		scheme = "https"
	}
	host := addr.String()
	if h, p, err := net.SplitHostPort(host); err == nil && (h == "::" || h == "0.0.0.0" || h == "") {
		host = net.JoinHostPort("localhost", p)
	}
	return scheme + "://" + host
}
