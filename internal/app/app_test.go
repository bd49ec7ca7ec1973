package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"smimeproxy/config"
	"smimeproxy/crypto/ca"
	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
)

func TestPublicURL(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41234}
	any := &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}
	for _, tc := range []struct {
		name string
		c    config.Admin
		addr net.Addr
		want string
	}{
		{"configured", config.Admin{PublicURL: "https://proxy.example.org"}, addr, "https://proxy.example.org"},
		{"port 0 resolved", config.Admin{Listen: "127.0.0.1:0", ListenTLS: config.TLSNone}, addr, "http://127.0.0.1:41234"},
		{"https", config.Admin{ListenTLS: config.TLSImplicit}, addr, "https://127.0.0.1:41234"},
		{"all interfaces", config.Admin{ListenTLS: config.TLSNone}, any, "http://localhost:8080"},
	} {
		if got := publicURL(tc.c, tc.addr); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestOpenCAOperator: an operator's CA placed in the CA directory issues
// the certificates instead of a new built-in root.
func TestOpenCAOperator(t *testing.T) {
	p := mailtest.NewPKI(t)
	dir := t.TempDir()
	key, err := mailtest.KeyPEM(p.IntermediateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, OperatorKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, OperatorCertFile), mailtest.CertPEM(p.Intermediate, p.Root), 0o600); err != nil {
		t.Fatal(err)
	}
	authority, err := OpenCA(config.CA{Dir: dir, Org: "Operator Org"})
	if err != nil {
		t.Fatal(err)
	}
	if !authority.Root().Equal(p.Intermediate) {
		t.Errorf("issuing CA %s, want the operator's %s", authority.Root().Subject, p.Intermediate.Subject)
	}
	if _, err := os.Stat(filepath.Join(dir, ca.RootCertFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a built-in root was made next to the operator's CA: %v", err)
	}
}

// TestStartDemo starts the demo in process on free ports: demo.json names
// the bound addresses, alice and bob can sign at once, dave has nothing,
// and Close locks every Digital ID.
func TestStartDemo(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	d, err := StartDemo(ctx, DemoOptions{Dir: dir, IMAP: "127.0.0.1:0", SMTP: "127.0.0.1:0", Admin: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	var info DemoInfo
	data, err := os.ReadFile(filepath.Join(dir, DemoJSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatal(err)
	}
	if info.IMAP != d.App.IMAPAddr.String() || info.SMTP != d.App.SMTPAddr.String() || info.Admin != "http://"+d.App.AdminAddr.String() {
		t.Errorf("demo.json %+v does not name the bound listeners %s %s %s", info, d.App.IMAPAddr, d.App.SMTPAddr, d.App.AdminAddr)
	}
	cfg, err := config.Load(filepath.Join(dir, DemoConfigFile))
	if err != nil {
		t.Fatalf("smimeproxy.toml: %v", err)
	}
	if cfg.Admin.PublicURL != info.Admin || cfg.IMAP.Upstream != info.UpstreamIMAP {
		t.Errorf("smimeproxy.toml admin %s upstream %s; demo.json %s %s", cfg.Admin.PublicURL, cfg.IMAP.Upstream, info.Admin, info.UpstreamIMAP)
	}
	for _, u := range info.Users {
		_, _, _, _, err := d.App.Identity.SigningKey(ctx, u.Email)
		switch u.State {
		case "enrolled":
			if err != nil {
				t.Errorf("%s cannot sign: %v", u.Email, err)
			}
			if _, err := d.App.Identity.RecipientCertificate(ctx, u.Email, otherUser(info, u.Email)); err != nil {
				t.Errorf("%s has no certificate of %s: %v", u.Email, otherUser(info, u.Email), err)
			}
		case "none":
			if !errors.Is(err, identity.ErrNoIdentity) {
				t.Errorf("%s: %v, want ErrNoIdentity", u.Email, err)
			}
		}
	}
	ids := d.App.Identity
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := ids.DecryptionKeys(ctx, info.Users[0].Email); err == nil {
		t.Error("alice's keys still usable after Close")
	}
}

func otherUser(info DemoInfo, email string) string {
	if email == info.Users[0].Email {
		return info.Users[1].Email
	}
	return info.Users[0].Email
}
