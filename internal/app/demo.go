package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"smimeproxy/config"
	"smimeproxy/crypto/ca"
	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
)

// Demo defaults: ports next to, not on, the real mail ports.
const (
	DemoDomain    = "demo.test"
	DemoIMAPAddr  = "127.0.0.1:11143"
	DemoSMTPAddr  = "127.0.0.1:11587"
	DemoAdminAddr = "127.0.0.1:18080"
)

// File names the demo writes into its directory.
const (
	DemoJSONFile   = "demo.json"
	DemoConfigFile = "smimeproxy.toml"
)

// DemoUser is one demo mailbox. The passwords are fixed demo values, so
// the commands in the README work as printed; the demo listens on
// loopback only.
type DemoUser struct {
	Email         string `json:"email"`
	LoginPassword string `json:"login_password"`
	// IDPassword protects the Digital ID; for a user without one yet
	// (State "none") it is the password suggested for the enrolment.
	IDPassword     string `json:"id_password"`
	State          string `json:"state"` // enrolled | legacy | none
	LegacyFile     string `json:"legacy_file,omitempty"`
	LegacyPassword string `json:"legacy_password,omitempty"`
}

// DemoInfo is demo.json: everything a person or a test needs to reach the
// running demo.
type DemoInfo struct {
	IMAP         string     `json:"imap"`
	SMTP         string     `json:"smtp"`
	Admin        string     `json:"admin"`
	UpstreamIMAP string     `json:"upstream_imap"`
	UpstreamSMTP string     `json:"upstream_smtp"`
	CAPEM        string     `json:"ca_pem"`
	AdminToken   string     `json:"admin_token"`
	Users        []DemoUser `json:"users"`
}

// DemoOptions configures StartDemo.
type DemoOptions struct {
	Dir                 string // where store, CA, config and demo.json go; must exist
	IMAP, SMTP, Admin   string // listen addresses; port 0 picks a free port
	Logger              *slog.Logger
	LogLevel, LogFormat string // written into the demo's config; empty: info, text
}

// Demo is a running demo: an in-process upstream mail server, the gateway
// in front of it, and the demo users.
type Demo struct {
	App      *App
	Upstream *mailtest.Upstream
	Info     DemoInfo
	Dir      string
	// Enrolled is how long the enrolment of the demo users took.
	Enrolled time.Duration
}

func demoUsers() []DemoUser {
	return []DemoUser{
		{Email: "alice@" + DemoDomain, LoginPassword: "alice-mail", IDPassword: "alice-id-pw", State: "enrolled"},
		{Email: "bob@" + DemoDomain, LoginPassword: "bob-mail", IDPassword: "bob-id-pw", State: "enrolled"},
		{Email: "dave@" + DemoDomain, LoginPassword: "dave-mail", IDPassword: "dave-id-pw", State: "none"},
	}
}

// StartDemo starts the upstream stand-in and the gateway on loopback,
// enrols alice and bob (unlocked for keys.remember_max, root accepted) and
// writes smimeproxy.toml and, once everything listens, demo.json into
// opts.Dir.
func StartDemo(ctx context.Context, opts DemoOptions) (_ *Demo, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Demo{Dir: opts.Dir}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	users := demoUsers()
	logins := map[string]string{}
	for _, u := range users {
		logins[u.Email] = u.LoginPassword
	}
	upDir := filepath.Join(opts.Dir, "upstream")
	if err := os.MkdirAll(upDir, 0o700); err != nil {
		return nil, err
	}
	upTLS, err := mailtest.NewServerTLS(upDir)
	if err != nil {
		return nil, fmt.Errorf("upstream certificate: %w", err)
	}
	d.Upstream, err = mailtest.StartUpstream(ctx, mailtest.UpstreamOptions{
		Users: logins, TLS: upTLS.Server,
		SMTPAddr: "127.0.0.1:0", IMAPAddr: "127.0.0.1:0",
		Hostname:                "mail." + DemoDomain,
		RejectUnknownRecipients: true,
		Logger:                  log.With("component", "upstream"),
	})
	if err != nil {
		return nil, fmt.Errorf("upstream mail server: %w", err)
	}

	cfg := config.Default()
	cfg.Store.DSN = filepath.Join(opts.Dir, "smimeproxy.db")
	cfg.IMAP.Listen, cfg.SMTP.Listen, cfg.Admin.Listen = opts.IMAP, opts.SMTP, opts.Admin
	cfg.IMAP.Upstream, cfg.IMAP.UpstreamTLS, cfg.IMAP.UpstreamCA = d.Upstream.IMAPAddr(), config.TLSStartTLS, upTLS.CertFile
	cfg.SMTP.Upstream, cfg.SMTP.UpstreamTLS, cfg.SMTP.UpstreamCA = d.Upstream.SMTPAddr(), config.TLSStartTLS, upTLS.CertFile
	cfg.SMTP.Hostname = "smimeproxy." + DemoDomain
	cfg.Admin.TokenFile = filepath.Join(opts.Dir, "admin.token")
	cfg.CA.Dir, cfg.CA.Org = filepath.Join(opts.Dir, "ca"), "Demo Org"
	cfg.Legacy.Dir = "" // no legacy upgrade in the demo yet
	cfg.Identity.Domains = []string{DemoDomain}
	if opts.LogLevel != "" {
		cfg.Log.Level = config.LogLevel(opts.LogLevel)
	}
	if opts.LogFormat != "" {
		cfg.Log.Format = config.LogFormat(opts.LogFormat)
	}
	if cfg, err = reparse(cfg, opts.Dir); err != nil {
		return nil, err
	}
	if d.App, err = Start(ctx, cfg, log); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := d.enrol(ctx, users); err != nil {
		return nil, err
	}
	d.Enrolled = time.Since(start)

	// The file the admin CLI reads names the ports really bound.
	cfg.IMAP.Listen, cfg.SMTP.Listen = d.App.IMAPAddr.String(), d.App.SMTPAddr.String()
	cfg.Admin.Listen, cfg.Admin.PublicURL = d.App.AdminAddr.String(), d.App.PublicURL
	if _, err := reparse(cfg, opts.Dir); err != nil {
		return nil, err
	}
	d.Info = DemoInfo{
		IMAP: cfg.IMAP.Listen, SMTP: cfg.SMTP.Listen, Admin: d.App.PublicURL,
		UpstreamIMAP: d.Upstream.IMAPAddr(), UpstreamSMTP: d.Upstream.SMTPAddr(),
		CAPEM:      filepath.Join(cfg.CA.Dir, rootFile(d.App)),
		AdminToken: string(d.App.AdminToken),
		Users:      users,
	}
	data, err := json.MarshalIndent(d.Info, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(filepath.Join(opts.Dir, DemoJSONFile), append(data, '\n')); err != nil {
		return nil, err
	}
	return d, nil
}

// rootFile names the PEM file of the root clients must trust.
func rootFile(a *App) string {
	if exists(filepath.Join(a.CA.Dir(), ca.RootCertFile)) {
		return ca.RootCertFile
	}
	return OperatorCertFile
}

// reparse writes cfg as the demo's smimeproxy.toml and reads it back, so the
// demo runs on exactly what `smimeproxy admin -config` will read.
func reparse(cfg *config.Config, dir string) (*config.Config, error) {
	var buf bytes.Buffer
	if err := cfg.Encode(&buf); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, DemoConfigFile)
	parsed, err := config.Parse(path, buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("demo configuration: %w", err)
	}
	if err := writeAtomic(path, buf.Bytes()); err != nil {
		return nil, err
	}
	return parsed, nil
}

// enrol gives alice and bob their Digital IDs at once: each enrolment
// spends most of its time in Argon2 and RSA key generation.
func (d *Demo) enrol(ctx context.Context, users []DemoUser) error {
	ids := d.App.Identity
	remember := d.App.Config.Keys.RememberMax.Std()
	var wg sync.WaitGroup
	errs := make([]error, len(users))
	for i, u := range users {
		if u.State != "enrolled" {
			continue
		}
		wg.Go(func() {
			errs[i] = enrolOne(ctx, ids, u, remember)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func enrolOne(ctx context.Context, ids *identity.Service, u DemoUser, remember time.Duration) error {
	tok, _, err := ids.CreateToken(ctx, u.Email, identity.PurposeEnroll, 0)
	if err != nil {
		return fmt.Errorf("token for %s: %w", u.Email, err)
	}
	res, err := ids.Enroll(ctx, identity.EnrollRequest{
		Email: u.Email, Token: tok, Name: u.Email + " (demo)",
		Password: identity.Secret(u.IDPassword), Remember: remember,
	})
	if err != nil {
		return fmt.Errorf("enrol %s: %w", u.Email, err)
	}
	if !res.RootAccepted {
		if _, err := ids.AcceptRoot(ctx, u.Email, res.Root.Fingerprint); err != nil {
			return fmt.Errorf("accept the root for %s: %w", u.Email, err)
		}
	}
	return nil
}

// Close stops the gateway (locking every Digital ID) and the upstream.
func (d *Demo) Close() error {
	var errs []error
	if d.App != nil {
		errs = append(errs, d.App.Close())
	}
	if d.Upstream != nil {
		errs = append(errs, d.Upstream.Close())
	}
	return errors.Join(errs...)
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
