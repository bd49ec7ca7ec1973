package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"smimeproxy/crypto/ca"
	"smimeproxy/policy"
)

const examplePath = "../config.example.toml"

// schemaKeys walks the toml tags of Config and returns every leaf key as
// "table.key", so the tests follow the schema without a hand-kept list.
func schemaKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, schemaKeys(f.Type, key)...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

func TestDefaultIsValid(t *testing.T) {
	probs := &Problems{}
	cfg := Default()
	validate(cfg, &validator{file: "defaults", lines: keyLines{}, probs: probs})
	if err := probs.err(); err != nil {
		t.Fatalf("defaults have problems:\n%v", err)
	}
	if cfg.Admin.PublicURL != "http://127.0.0.1:8080" {
		t.Errorf("derived public_url = %q", cfg.Admin.PublicURL)
	}
}

// TestEmptyFileGivesDefaults checks that every key missing from a file
// takes its default, with relative paths moved to the file's directory.
func TestEmptyFileGivesDefaults(t *testing.T) {
	cfg, err := Parse("/etc/smimeproxy/smimeproxy.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.File = "/etc/smimeproxy/smimeproxy.toml"
	want.Admin.PublicURL = "http://127.0.0.1:8080"
	want.resolvePaths("/etc/smimeproxy")
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("empty file\n got %+v\nwant %+v", cfg, want)
	}
	if cfg.Store.DSN != "/etc/smimeproxy/smimeproxy.db" || cfg.CA.Dir != "/etc/smimeproxy/ca" {
		t.Errorf("paths not resolved: dsn %q ca %q", cfg.Store.DSN, cfg.CA.Dir)
	}
	if cfg.SMTP.MaxMessageSize != 50*MB || cfg.IMAP.CacheSize != 256*MB ||
		cfg.Keys.RememberDefault.Std() != 30*time.Minute || cfg.Keys.RememberMax.Std() != 5*time.Hour ||
		cfg.Policy.Sign != policy.Always || cfg.Policy.Encrypt != policy.WhenPossible ||
		cfg.CA.KeyType != KeyRSA2048 || cfg.Log.Level != LogInfo {
		t.Errorf("defaults differ from DESIGN.md: %+v", cfg)
	}
}

// TestExampleParsesToDefaults keeps config.example.toml and Default in
// step: the example must load with no problems and its values must be
// exactly the built-in defaults.
func TestExampleParsesToDefaults(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("config.example.toml", data)
	if err != nil {
		t.Fatalf("config.example.toml has problems:\n%v", err)
	}
	want := Default()
	want.File = "config.example.toml"
	want.Admin.PublicURL = "http://127.0.0.1:8080"
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config.example.toml values differ from Default()\n got %+v\nwant %+v", cfg, want)
	}
}

// TestExampleDocumentsEveryKey checks that every key of the schema is set
// in config.example.toml with a comment right above it or on its line.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	found := scanKeyLines(data)
	keys := schemaKeys(reflect.TypeFor[Config](), "")
	if len(keys) < 40 {
		t.Fatalf("schema walk found only %d keys", len(keys))
	}
	for _, key := range keys {
		n, ok := found[key]
		if !ok {
			t.Errorf("config.example.toml does not document %s", key)
			continue
		}
		if !commented(lines, n) {
			t.Errorf("config.example.toml:%d: %s has no comment", n, key)
		}
	}
}

// commented reports whether line n (1-based) has a trailing comment or
// sits in a block of key lines directly under a comment.
func commented(lines []string, n int) bool {
	if strings.Contains(lines[n-1], "#") {
		return true
	}
	for i := n - 2; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(l, "#"):
			return true
		case l == "" || strings.HasPrefix(l, "["):
			return false
		}
	}
	return false
}

func TestResolvePaths(t *testing.T) {
	doc := `
[store]
dsn = "file:data/proxy.db?_pragma=busy_timeout(5000)"
[tls]
cert = "tls/cert.pem"
key = "/abs/key.pem"
[admin]
token_file = "secrets/admin.token"
[ca]
dir = "../shared-ca"
[legacy]
dir = ""
[trust]
roots = ["roots/org.pem", "/etc/ssl/other.pem"]
[imap]
upstream_ca = "upstream.pem"
`
	cfg, err := Parse("/srv/proxy/conf/smimeproxy.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{
		"dsn": cfg.Store.DSN, "cert": cfg.TLS.Cert, "key": cfg.TLS.Key, "token": cfg.Admin.TokenFile,
		"ca": cfg.CA.Dir, "legacy": cfg.Legacy.Dir, "root0": cfg.Trust.Roots[0], "root1": cfg.Trust.Roots[1],
		"imapca": cfg.IMAP.UpstreamCA, "smtpca": cfg.SMTP.UpstreamCA,
	}
	want := map[string]string{
		"dsn": "file:/srv/proxy/conf/data/proxy.db?_pragma=busy_timeout(5000)", "cert": "/srv/proxy/conf/tls/cert.pem",
		"key": "/abs/key.pem", "token": "/srv/proxy/conf/secrets/admin.token", "ca": "/srv/proxy/shared-ca",
		"legacy": "", "root0": "/srv/proxy/conf/roots/org.pem", "root1": "/etc/ssl/other.pem",
		"imapca": "/srv/proxy/conf/upstream.pem", "smtpca": "",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resolved\n got %v\nwant %v", got, want)
	}
	for _, dsn := range []string{":memory:", "file::memory:?cache=shared", "/var/lib/p.db"} {
		if r := resolveSQLite(dsn, "/x"); r != dsn {
			t.Errorf("resolveSQLite(%q) = %q, want unchanged", dsn, r)
		}
	}
	pg, err := Parse("/srv/p.toml", []byte("[store]\ndriver = \"postgres\"\ndsn = \"host=db dbname=p\"\n"))
	if err != nil || pg.Store.DSN != "host=db dbname=p" {
		t.Errorf("postgres dsn changed: %q, %v", pg.Store.DSN, err)
	}
}

func TestPublicURL(t *testing.T) {
	tests := []struct{ doc, want string }{
		{"[admin]\nlisten = \"[::1]:9000\"\n", "http://[::1]:9000"},
		{"[admin]\nlisten = \"localhost:8443\"\nlisten_tls = \"implicit\"\n", "https://localhost:8443"},
		{"[admin]\nlisten = \"127.0.0.1:0\"\n", ""},
		{"[admin]\nlisten = \"0.0.0.0:443\"\nlisten_tls = \"implicit\"\npublic_url = \"https://proxy.example.org/\"\n", "https://proxy.example.org"},
	}
	for _, tt := range tests {
		cfg, err := Parse("t.toml", []byte(tt.doc))
		if err != nil {
			t.Errorf("%q: %v", tt.doc, err)
			continue
		}
		if cfg.Admin.PublicURL != tt.want {
			t.Errorf("%q: public_url %q, want %q", tt.doc, cfg.Admin.PublicURL, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30m", 30 * time.Minute, false},
		{"5h", 5 * time.Hour, false},
		{"1h30m", 90 * time.Minute, false},
		{"825d", 825 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{" 90s ", 90 * time.Second, false},
		{"", 0, true},
		{"30", 0, true},
		{"d", 0, true},
		{"1.5d", 0, true},
		{"5 hours", 0, true},
		{"99999999d", 0, true},
		{"1d-5h", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.err || got.Std() != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", tt.in, got.Std(), err, tt.want, tt.err)
		}
		if err == nil {
			back, err := ParseDuration(got.String())
			if err != nil || back != got {
				t.Errorf("round trip of %q via %q = %v, %v", tt.in, got.String(), back, err)
			}
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		err  bool
	}{
		{"50MB", 50 << 20, false},
		{"256 MB", 256 << 20, false},
		{"1GiB", 1 << 30, false},
		{"512k", 512 << 10, false},
		{"1048576", 1 << 20, false},
		{"10B", 10, false},
		{"", 0, true},
		{"MB", 0, true},
		{"-5MB", 0, true},
		{"5TB", 0, true},
		{"99999999999GB", 0, true},
		{"99999999999999999999", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil {
			back, err := ParseSize(got.String())
			if err != nil || back != got {
				t.Errorf("round trip of %q via %q = %v, %v", tt.in, got.String(), back, err)
			}
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("cert.pem", "x")
	good := write("good.toml", "[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n")
	_, err := Load(good)
	var probs *Problems
	if !errors.As(err, &probs) || len(probs.List) != 1 || probs.List[0].Key != "tls.key" || probs.List[0].Line != 3 {
		t.Fatalf("missing key file: got %v", err)
	}
	write("key.pem", "x")
	cfg, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS.Cert != filepath.Join(dir, "cert.pem") || cfg.Source() != good {
		t.Errorf("cert %q source %q", cfg.TLS.Cert, cfg.Source())
	}
	if _, err := Load(filepath.Join(dir, "absent.toml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent file: %v, want fs.ErrNotExist", err)
	}
	bad := write("bad.toml", "[trust]\nroots = [\"nope.pem\"]\n")
	if _, err := LoadOrDefault(bad); !errors.As(err, &probs) || probs.List[0].Line != 2 {
		t.Errorf("missing trust root: %v", err)
	}
}

func TestLoadOrDefault(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg, err := LoadOrDefault("")
	if err != nil || cfg.File != "" || !strings.Contains(cfg.Source(), "config.example.toml") {
		t.Fatalf("no file: %+v, %v", cfg, err)
	}
	if err := os.WriteFile(DefaultPath, []byte("[log]\nlevel = \"debug\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = LoadOrDefault("")
	if err != nil || cfg.File != DefaultPath || cfg.Log.Level != LogDebug {
		t.Fatalf("./smimeproxy.toml: %+v, %v", cfg, err)
	}
}

// TestKeyTypesAreWhatTheCAMakes: every key type the configuration accepts
// is one crypto/ca generates, and the reverse, so the two cannot drift.
func TestKeyTypesAreWhatTheCAMakes(t *testing.T) {
	for _, k := range ca.KeyTypes() {
		if _, err := Parse("t.toml", []byte("[ca]\nkey_type = \""+string(k)+"\"\n")); err != nil {
			t.Errorf("key type %s: %v", k, err)
		}
		if got, err := ca.ParseKeyType(string(k)); err != nil || got != k {
			t.Errorf("ca.ParseKeyType(%s) = %s, %v", k, got, err)
		}
	}
}
