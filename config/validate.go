package config

import (
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"smimeproxy/crypto/ca"
	"smimeproxy/policy"
)

// Limits enforced by validation.
const (
	// MaxRemember caps keys.remember_max: an unlocked key in memory for
	// more than a working day defeats the point of the password.
	MaxRemember = 24 * time.Hour
	// MaxValidity caps ca.validity, the CA/Browser Forum's historic limit
	// that Apple platforms still enforce for TLS certificates.
	MaxValidity = 825 * 24 * time.Hour
)

func validate(c *Config, v *validator) {
	validateStore(c, v)
	validateProxy(v, "imap", c.IMAP.Listen, c.IMAP.ListenTLS, c.IMAP.Upstream, c.IMAP.UpstreamTLS)
	validateProxy(v, "smtp", c.SMTP.Listen, c.SMTP.ListenTLS, c.SMTP.Upstream, c.SMTP.UpstreamTLS)
	positive(v, "imap.dial_timeout", c.IMAP.DialTimeout)
	positive(v, "imap.idle_timeout", c.IMAP.IdleTimeout)
	positive(v, "smtp.dial_timeout", c.SMTP.DialTimeout)
	positive(v, "smtp.timeout", c.SMTP.Timeout)
	if c.IMAP.CacheSize < 0 {
		v.bad("imap.cache_size", "must not be negative")
	}
	if s := c.SMTP.MaxMessageSize; s < 1*KB || s > 4*GB {
		v.bad("smtp.max_message_size", "is %s; must be between 1KB and 4GB", s)
	}
	if n := c.SMTP.MaxRecipients; n < 1 || n > 10000 {
		v.bad("smtp.max_recipients", "is %d; must be between 1 and 10000", n)
	}
	if h := c.SMTP.Hostname; h != "" && !validDNSName(h, false) {
		v.bad("smtp.hostname", "%q is not a valid host name", h)
	}

	validateTLS(c, v)
	validateAdmin(c, v)
	checkDistinct(v, map[string]string{"imap.listen": c.IMAP.Listen, "smtp.listen": c.SMTP.Listen, "admin.listen": c.Admin.Listen})

	if strings.TrimSpace(c.CA.Dir) == "" {
		v.bad("ca.dir", "must not be empty")
	}
	if strings.TrimSpace(c.CA.Org) == "" {
		v.bad("ca.org", "must not be empty; it is the organisation name in issued certificates")
	}
	enum(v, "ca.key_type", c.CA.KeyType, ca.KeyTypes()...)
	if d := c.CA.Validity.Std(); d < 24*time.Hour || d > MaxValidity {
		v.bad("ca.validity", "is %s; must be between 1d and 825d", c.CA.Validity)
	}

	validateKeys(c, v)

	enum(v, "policy.sign", c.Policy.Sign, policy.Modes()...)
	enum(v, "policy.encrypt", c.Policy.Encrypt, policy.Modes()...)

	seen := map[string]bool{}
	for i, d := range c.Identity.Domains {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		c.Identity.Domains[i] = d
		switch {
		case !validDNSName(d, false) || !strings.Contains(d, ".") && d != "localhost":
			v.bad("identity.domains", "%q is not a mail domain (write example.org, without @)", d)
		case seen[d]:
			v.bad("identity.domains", "%q is listed twice", d)
		}
		seen[d] = true
	}
	seen = map[string]bool{}
	for _, r := range c.Trust.Roots {
		switch {
		case strings.TrimSpace(r) == "":
			v.bad("trust.roots", "contains an empty path")
		case seen[r]:
			v.bad("trust.roots", "%s is listed twice", r)
		}
		seen[r] = true
	}
	enum(v, "log.level", c.Log.Level, LogDebug, LogInfo, LogWarn, LogError)
	enum(v, "log.format", c.Log.Format, LogText, LogJSON)
}

func validateStore(c *Config, v *validator) {
	if !enum(v, "store.driver", c.Store.Driver, DriverSQLite, DriverPostgres) {
		return
	}
	// The DSN may hold a password, so messages never quote it.
	dsn := strings.TrimSpace(c.Store.DSN)
	isURL := strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
	switch {
	case dsn == "":
		v.bad("store.dsn", "must not be empty")
	case c.Store.Driver == DriverSQLite && (isURL || strings.Contains(dsn, "://") && !strings.HasPrefix(dsn, "file:")):
		v.bad("store.dsn", "is a URL, but driver = \"sqlite\" needs a file path; set driver = \"postgres\" or give a path")
	case c.Store.Driver == DriverPostgres && isURL:
		if u, err := url.Parse(dsn); err != nil || u.Host == "" && u.Query().Get("host") == "" {
			v.bad("store.dsn", "is not a valid postgres:// URL with a host")
		}
	case c.Store.Driver == DriverPostgres && !strings.Contains(dsn, "="):
		v.bad("store.dsn", "driver = \"postgres\" needs a postgres:// URL or a key=value connection string such as \"host=/run/postgresql dbname=smimeproxy\"")
	}
}

// validateProxy checks one proxy's listen and upstream pair.
func validateProxy(v *validator, table, listen string, listenTLS TLSMode, upstream string, upstreamTLS TLSMode) {
	host, ok := checkAddr(v, table+".listen", listen, true)
	if enum(v, table+".listen_tls", listenTLS, TLSStartTLS, TLSImplicit, TLSNone) && ok &&
		listenTLS == TLSNone && !isLoopback(host) {
		v.bad(table+".listen_tls", "\"none\" is allowed only when %s.listen is a loopback address (127.0.0.1, ::1, localhost): mail passwords would cross the network in clear", table)
	}
	uhost, ok := checkAddr(v, table+".upstream", upstream, false)
	if enum(v, table+".upstream_tls", upstreamTLS, TLSStartTLS, TLSImplicit, TLSNone) && ok &&
		upstreamTLS == TLSNone && !isLoopback(uhost) {
		v.bad(table+".upstream_tls", "\"none\" is allowed only when %s.upstream is a loopback address (127.0.0.1, ::1, localhost)", table)
	}
}

func validateTLS(c *Config, v *validator) {
	switch {
	case c.TLS.Cert != "" && c.TLS.Key == "":
		v.bad("tls.cert", "is set but tls.key is not; give both, or neither to use the built-in CA")
	case c.TLS.Cert == "" && c.TLS.Key != "":
		v.bad("tls.key", "is set but tls.cert is not; give both, or neither to use the built-in CA")
	}
	for _, n := range c.TLS.Names {
		if net.ParseIP(n) == nil && !validDNSName(n, true) {
			v.bad("tls.names", "%q is neither a host name nor an IP address", n)
		}
	}
	enum(v, "tls.min_version", c.TLS.MinVersion, TLS12, TLS13)
}

func validateAdmin(c *Config, v *validator) {
	a := &c.Admin
	host, ok := checkAddr(v, "admin.listen", a.Listen, true)
	tlsOK := enum(v, "admin.listen_tls", a.ListenTLS, TLSNone, TLSImplicit)
	if ok && tlsOK && a.ListenTLS == TLSNone && !isLoopback(host) && !a.AllowRemotePlaintext {
		v.bad("admin.listen", "is not a loopback address: set admin.listen_tls = \"implicit\" (HTTPS), or allow_remote_plaintext = true when a reverse proxy in front terminates TLS")
	}
	if strings.TrimSpace(a.TokenFile) == "" {
		v.bad("admin.token_file", "must not be empty")
	}
	if a.PublicURL != "" {
		u, err := url.Parse(a.PublicURL)
		switch {
		case err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https":
			v.bad("admin.public_url", "must be an absolute http:// or https:// URL")
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			v.bad("admin.public_url", "must not contain credentials, a query or a fragment")
		default:
			a.PublicURL = strings.TrimRight(a.PublicURL, "/")
		}
	} else if ok && tlsOK {
		a.PublicURL = derivePublicURL(v, a.Listen, a.ListenTLS)
	}
	if d := a.SessionTTL.Std(); d < time.Minute || d > 7*24*time.Hour {
		v.bad("admin.session_ttl", "is %s; must be between 1m and 7d", a.SessionTTL)
	}
	if s := a.MaxRequestSize; s < 1*KB || s > 100*MB {
		v.bad("admin.max_request_size", "is %s; must be between 1KB and 100MB", s)
	}
}

// derivePublicURL builds the link base from the admin listen address. An
// address on all interfaces gives no host a user could reach, and port 0
// is only known once bound (serve fills it in then).
func derivePublicURL(v *validator, listen string, mode TLSMode) string {
	host, port, _ := net.SplitHostPort(listen)
	if port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		v.bad("admin.public_url", "must be set when admin.listen has no specific host (%s): links sent to users need an address they can reach", listen)
		return ""
	}
	scheme := "http"
	if mode == TLSImplicit {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

func validateKeys(c *Config, v *validator) {
	def, max := c.Keys.RememberDefault.Std(), c.Keys.RememberMax.Std()
	if def < time.Minute {
		v.bad("keys.remember_default", "is %s; must be at least 1m", c.Keys.RememberDefault)
	}
	if max > MaxRemember {
		v.bad("keys.remember_max", "is %s; must be at most 24h", c.Keys.RememberMax)
	}
	if def > max && max > 0 {
		v.bad("keys.remember_default", "%s is longer than keys.remember_max (%s)", c.Keys.RememberDefault, c.Keys.RememberMax)
	}
	if max <= 0 {
		v.bad("keys.remember_max", "is %s; must be positive", c.Keys.RememberMax)
	}
	if idle := c.Keys.IdleLock.Std(); idle < 0 || (idle > 0 && idle < time.Minute) {
		v.bad("keys.idle_lock", "is %s; must be 0 (off) or at least 1m", c.Keys.IdleLock)
	}
}

// checkDistinct reports listen addresses (with a fixed port) used twice.
func checkDistinct(v *validator, addrs map[string]string) {
	for _, a := range []string{"imap.listen", "smtp.listen", "admin.listen"} {
		for _, b := range []string{"imap.listen", "smtp.listen", "admin.listen"} {
			if a >= b {
				continue
			}
			ha, pa, errA := net.SplitHostPort(addrs[a])
			hb, pb, errB := net.SplitHostPort(addrs[b])
			if errA != nil || errB != nil || pa != pb || pa == "0" {
				continue
			}
			if strings.EqualFold(ha, hb) || ha == "" || hb == "" {
				later := b
				if v.lines.line(a) > v.lines.line(b) {
					later = a
				}
				other := a
				if later == a {
					other = b
				}
				v.bad(later, "uses the same port as %s (%s)", other, addrs[other])
			}
		}
	}
}

// checkAddr checks a host:port address; listen addresses may have an
// empty host (all interfaces) and port 0 (any free port).
func checkAddr(v *validator, key, addr string, listen bool) (host string, ok bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.bad(key, "%q is not host:port (write IPv6 addresses as [::1]:143)", addr)
		return "", false
	}
	n, err := strconv.Atoi(port)
	min := 1
	if listen {
		min = 0
	}
	if err != nil || n < min || n > 65535 {
		v.bad(key, "port %q must be a number from %d to 65535", port, min)
		return "", false
	}
	switch {
	case host == "" && !listen:
		v.bad(key, "%q has no host", addr)
		return "", false
	case host != "" && net.ParseIP(host) == nil && !validDNSName(host, false):
		v.bad(key, "%q is not a valid host name or IP address", host)
		return "", false
	}
	return host, true
}

func positive(v *validator, key string, d Duration) {
	if d <= 0 {
		v.bad(key, "is %s; must be positive", d)
	}
}

// enum reports whether val is one of allowed, and a problem if not.
func enum[T ~string](v *validator, key string, val T, allowed ...T) bool {
	ok, list := oneOf(val, allowed...)
	if !ok {
		v.bad(key, "%q is not one of: %s", string(val), list)
	}
	return ok
}

// isLoopback reports whether host names the local machine only.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validDNSName checks RFC 1123 host name syntax; wildcard allows a
// leading "*." label as in certificate names.
func validDNSName(name string, wildcard bool) bool {
	if wildcard {
		name = strings.TrimPrefix(name, "*.")
	}
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
