package config

import (
	"bytes"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestEncodeRoundTrip checks that a written config reads back to the same
// values, including durations, sizes and enums.
func TestEncodeRoundTrip(t *testing.T) {
	c := Default()
	c.Store = Store{Driver: DriverPostgres, DSN: "postgres://proxy@db.internal/smimeproxy"}
	c.Keys.RememberDefault = Duration(90 * time.Minute)
	c.CA.Validity = Duration(825 * 24 * time.Hour)
	c.SMTP.MaxMessageSize = 12345
	c.TLS.Names = []string{"proxy.example.org", "192.0.2.10"}
	c.Trust.Roots = []string{"/etc/roots/a.pem"}
	c.Admin.PublicURL = "https://proxy.example.org"
	var buf bytes.Buffer
	if err := c.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := Parse("/written/smimeproxy.toml", buf.Bytes())
	if err != nil {
		t.Fatalf("encoded config has problems:\n%v\n%s", err, buf.String())
	}
	c.File = "/written/smimeproxy.toml"
	c.resolvePaths("/written")
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip\n got %+v\nwant %+v\n%s", got, c, buf.String())
	}
	if !strings.Contains(buf.String(), `remember_default = "1h30m"`) || !strings.Contains(buf.String(), `validity = "825d"`) {
		t.Errorf("durations not written as strings:\n%s", buf.String())
	}
}

func TestRedactedDSN(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://proxy:hunter2@db/p?sslmode=require", "postgres://proxy:***@db/p?sslmode=require"},
		{"postgres://db/p?password=hunter2&user=proxy", "postgres://db/p?password=***&user=proxy"},
		{"postgres://proxy@db/p", "postgres://proxy@db/p"},
		{"host=db password=hunter2 dbname=p", "host=db password=*** dbname=p"},
		{"host=db password='hunter2 x' dbname=p", "host=db password=***"},
		{"postgres://u:hunter2@[bad", "***"},
		{"smimeproxy.db", "smimeproxy.db"},
	}
	for _, tt := range tests {
		if got := (Store{DSN: tt.dsn}).RedactedDSN(); got != tt.want {
			t.Errorf("RedactedDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("start", "store", Store{Driver: DriverPostgres, DSN: tests[0].dsn})
	if strings.Contains(buf.String(), "hunter2") || !strings.Contains(buf.String(), "store.driver=postgres") {
		t.Errorf("log line %q", buf.String())
	}
}

func TestIdentityAllows(t *testing.T) {
	any := Identity{}
	if !any.Allows("x@anything.test") {
		t.Error("empty domains must allow every address")
	}
	id := Identity{Domains: []string{"example.org", "example.net"}}
	for addr, want := range map[string]bool{
		"alice@example.org":           true,
		"Bob@EXAMPLE.NET":             true,
		"carol@sub.example.org":       false,
		"dave@example.org.evil.test":  false,
		"\"a@example.org\"@evil.test": false,
		"no-at-sign":                  false,
	} {
		if got := id.Allows(addr); got != want {
			t.Errorf("Allows(%q) = %v, want %v", addr, got, want)
		}
	}
	if p := Default().Policy.Outbound(); p.Sign != "always" || p.Encrypt != "when-possible" {
		t.Errorf("Outbound() = %+v", p)
	}
}
