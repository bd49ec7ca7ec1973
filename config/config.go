// Package config reads, checks and defaults smimeproxy's TOML configuration
// (TOML v1.0.0, decoded with github.com/BurntSushi/toml).
//
// Decoding is strict: a key the schema does not know is an error, and so is
// a value of the wrong type. Every problem in a file is collected, not just
// the first, and each one carries the file and line of the key it is about,
// so `smimeproxy config test` can print them all as `file:line: key: message`.
//
// Keys missing from the file take the defaults of Default, which are the
// values written in config.example.toml at the repository root (a test keeps
// the two in step). Relative paths in the file (store dsn for sqlite, tls
// cert and key, admin token_file, ca dir, legacy dir, trust roots, upstream
// CA files) are resolved against the directory of the configuration file,
// not the working directory, so a service manager can start the proxy from
// anywhere.
package config

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"smimeproxy/policy"
)

// DefaultPath is the configuration file used when none is named.
const DefaultPath = "smimeproxy.toml"

// Config is the whole configuration. The toml tags are the schema.
type Config struct {
	Store    Store    `toml:"store"`
	IMAP     IMAP     `toml:"imap"`
	SMTP     SMTP     `toml:"smtp"`
	TLS      TLS      `toml:"tls"`
	Admin    Admin    `toml:"admin"`
	CA       CA       `toml:"ca"`
	Keys     Keys     `toml:"keys"`
	Policy   Policy   `toml:"policy"`
	Legacy   Legacy   `toml:"legacy"`
	Identity Identity `toml:"identity"`
	Trust    Trust    `toml:"trust"`
	Log      Log      `toml:"log"`

	// File is the path the configuration was read from; empty for the
	// built-in defaults.
	File string `toml:"-"`
}

// Source names where c came from, for messages.
func (c *Config) Source() string {
	if c.File == "" {
		return "built-in defaults (the values of config.example.toml)"
	}
	return c.File
}

// Store selects and opens the key and certificate store.
type Store struct {
	Driver StoreDriver `toml:"driver"`
	// DSN is a file path for sqlite (or a "file:" URI), a postgres:// URL
	// or key=value connection string for postgres. It may hold a password:
	// never log it.
	DSN string `toml:"dsn"`
}

// IMAP is the IMAP proxy: where clients connect and which server it fronts.
type IMAP struct {
	Listen      string   `toml:"listen"`
	ListenTLS   TLSMode  `toml:"listen_tls"`
	Upstream    string   `toml:"upstream"`
	UpstreamTLS TLSMode  `toml:"upstream_tls"`
	UpstreamCA  string   `toml:"upstream_ca"` // PEM roots for the upstream; empty: system roots
	CacheSize   Size     `toml:"cache_size"`  // decrypted-message cache, bytes; 0 disables it
	DialTimeout Duration `toml:"dial_timeout"`
	IdleTimeout Duration `toml:"idle_timeout"` // client inactivity before logout
}

// SMTP is the submission proxy.
type SMTP struct {
	Listen         string   `toml:"listen"`
	ListenTLS      TLSMode  `toml:"listen_tls"`
	Upstream       string   `toml:"upstream"`
	UpstreamTLS    TLSMode  `toml:"upstream_tls"`
	UpstreamCA     string   `toml:"upstream_ca"`
	Hostname       string   `toml:"hostname"` // greeting and EHLO name; empty: "localhost"
	MaxMessageSize Size     `toml:"max_message_size"`
	MaxRecipients  int      `toml:"max_recipients"`
	DialTimeout    Duration `toml:"dial_timeout"`
	Timeout        Duration `toml:"timeout"` // per command read/write deadline
}

// TLS is the certificate offered to clients on the IMAP, SMTP and (with
// listen_tls = "implicit") admin listeners.
type TLS struct {
	Cert       string     `toml:"cert"`
	Key        string     `toml:"key"`
	Names      []string   `toml:"names"`
	MinVersion TLSVersion `toml:"min_version"`
}

// Admin is the HTTP admin endpoint (API, web pages, /healthz, /metrics).
type Admin struct {
	Listen    string  `toml:"listen"`
	ListenTLS TLSMode `toml:"listen_tls"` // "none" or "implicit" (HTTPS)
	// AllowRemotePlaintext permits listen_tls = "none" on a non-loopback
	// address, for running behind a reverse proxy that terminates TLS.
	AllowRemotePlaintext bool   `toml:"allow_remote_plaintext"`
	TokenFile            string `toml:"token_file"`
	// PublicURL is the base of links handed to users (unlock, enrol);
	// Load fills it in from Listen when the file leaves it empty.
	PublicURL      string   `toml:"public_url"`
	SessionTTL     Duration `toml:"session_ttl"`
	MaxRequestSize Size     `toml:"max_request_size"`
}

// CA is the built-in certificate authority (or an external CA's key and
// certificate placed in Dir).
type CA struct {
	Dir      string   `toml:"dir"`
	Org      string   `toml:"org"`
	KeyType  KeyType  `toml:"key_type"`
	Validity Duration `toml:"validity"` // of issued end-entity certificates
}

// Keys governs how long unlocked Digital IDs stay unlocked.
type Keys struct {
	RememberDefault Duration `toml:"remember_default"`
	RememberMax     Duration `toml:"remember_max"`
	// IdleLock locks an unlocked Digital ID after this long without use,
	// before its remembered period ends; 0 leaves only the period.
	IdleLock Duration `toml:"idle_lock"`
}

// Policy is the outbound signing and encryption policy.
type Policy struct {
	Sign    policy.Mode `toml:"sign"`
	Encrypt policy.Mode `toml:"encrypt"`
}

// Outbound returns the policy in the form policy.Decide takes.
func (p Policy) Outbound() policy.Policy {
	return policy.Policy{Sign: p.Sign, Encrypt: p.Encrypt}
}

// Legacy is where legacy key files (PKCS#12, PEM, PKCS#8) for the upgrade
// on first connect are looked up. An empty Dir turns the upgrade off.
type Legacy struct {
	Dir string `toml:"dir"`
}

// Identity restricts which mailboxes may hold a Digital ID.
type Identity struct {
	// Domains, when not empty, are the only mail domains that may enrol.
	Domains []string `toml:"domains"`
}

// Allows reports whether a mailbox address may hold a Digital ID: any
// address when Domains is empty, else one whose domain (after the last
// "@", compared case-insensitively) is listed.
func (id Identity) Allows(addr string) bool {
	if len(id.Domains) == 0 {
		return true
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	domain := strings.TrimSuffix(addr[at+1:], ".")
	for _, d := range id.Domains {
		if strings.EqualFold(domain, d) {
			return true
		}
	}
	return false
}

// Trust lists organisation-wide trusted roots, in addition to the
// built-in CA and roots users accept themselves.
type Trust struct {
	Roots []string `toml:"roots"` // PEM files
}

// Log configures log/slog output (to stderr).
type Log struct {
	Level  LogLevel  `toml:"level"`
	Format LogFormat `toml:"format"`
}

// Default returns the built-in configuration: the values documented in
// config.example.toml. Relative paths in it are relative to the working
// directory.
func Default() *Config {
	return &Config{
		Store: Store{Driver: DriverSQLite, DSN: "smimeproxy.db"},
		IMAP: IMAP{
			Listen: "127.0.0.1:1143", ListenTLS: TLSStartTLS,
			Upstream: "imap.example.com:993", UpstreamTLS: TLSImplicit,
			CacheSize:   256 * MB,
			DialTimeout: Duration(30 * time.Second), IdleTimeout: Duration(30 * time.Minute),
		},
		SMTP: SMTP{
			Listen: "127.0.0.1:1587", ListenTLS: TLSStartTLS,
			Upstream: "smtp.example.com:587", UpstreamTLS: TLSStartTLS,
			MaxMessageSize: 50 * MB, MaxRecipients: 100,
			DialTimeout: Duration(30 * time.Second), Timeout: Duration(5 * time.Minute),
		},
		TLS: TLS{Names: []string{}, MinVersion: TLS12},
		Admin: Admin{
			Listen: "127.0.0.1:8080", ListenTLS: TLSNone, TokenFile: "admin.token",
			SessionTTL: Duration(time.Hour), MaxRequestSize: 1 * MB,
		},
		CA:       CA{Dir: "ca", Org: "Example Org", KeyType: KeyRSA2048, Validity: Duration(365 * 24 * time.Hour)},
		Keys:     Keys{RememberDefault: Duration(30 * time.Minute), RememberMax: Duration(5 * time.Hour)},
		Policy:   Policy{Sign: policy.Always, Encrypt: policy.WhenPossible},
		Legacy:   Legacy{Dir: "legacy"},
		Identity: Identity{Domains: []string{}},
		Trust:    Trust{Roots: []string{}},
		Log:      Log{Level: LogInfo, Format: LogText},
	}
}

// Encode writes c as a TOML file that Parse reads back to the same values
// (the demo writes its smimeproxy.toml this way). Paths are written as
// they are in c, so a config from Load, whose paths are absolute, can be
// written anywhere.
func (c *Config) Encode(w io.Writer) error {
	if err := toml.NewEncoder(w).Encode(c); err != nil {
		return fmt.Errorf("encode configuration: %w", err)
	}
	return nil
}

// LogValue logs the store settings with any password in the DSN replaced.
func (s Store) LogValue() slog.Value {
	return slog.GroupValue(slog.String("driver", string(s.Driver)), slog.String("dsn", s.RedactedDSN()))
}

// RedactedDSN returns the DSN with its password replaced by "***", for
// logs and messages.
func (s Store) RedactedDSN() string {
	dsn := s.DSN
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "***"
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "***")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "***")
			u.RawQuery = q.Encode()
		}
		return strings.Replace(u.String(), "%2A%2A%2A", "***", -1)
	}
	// key=value form: password=... up to the next space (quoted values
	// may hold spaces, so a quoted password hides everything after it).
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if k, _, ok := strings.Cut(f, "="); ok && strings.EqualFold(strings.TrimSpace(k), "password") {
			if strings.Contains(f, "'") {
				return strings.Join(append(fields[:i:i], "password=***"), " ")
			}
			fields[i] = "password=***"
		}
	}
	return strings.Join(fields, " ")
}
