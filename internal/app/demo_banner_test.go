package app

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"smimeproxy/config"
)

// TestWriteBanner: the banner gives everything needed to try the demo, taken
// from the demo's own values: listener addresses with their TLS mode, each
// user's login and passwords, the admin and unlock URLs, the CA root path,
// a swaks command and the mutt line.
func TestWriteBanner(t *testing.T) {
	for _, mode := range []config.TLSMode{config.TLSStartTLS, config.TLSImplicit} {
		t.Run(string(mode), func(t *testing.T) {
			cfg := config.Default()
			cfg.IMAP.ListenTLS, cfg.SMTP.ListenTLS = mode, mode
			dir := filepath.Join(t.TempDir(), "demo dir")
			d := &Demo{Dir: dir, App: &App{Config: cfg}, Info: DemoInfo{
				IMAP: "127.0.0.1:40143", SMTP: "127.0.0.1:40587", Admin: "http://127.0.0.1:40080",
				UpstreamIMAP: "127.0.0.1:40993", UpstreamSMTP: "127.0.0.1:40025",
				CAPEM: filepath.Join(dir, "ca", "root.pem"), AdminToken: "admin-token-value", Users: demoUsers(),
			}}
			var b bytes.Buffer
			d.WriteBanner(&b, "/opt/bin/smimeproxy")
			out := b.String()
			lines := strings.Split(out, "\n")
			// lineWith returns the first line holding every one of parts.
			lineWith := func(parts ...string) string {
				for _, l := range lines {
					all := true
					for _, p := range parts {
						all = all && strings.Contains(l, p)
					}
					if all {
						return l
					}
				}
				t.Errorf("no line holds all of %q in:\n%s", parts, out)
				return ""
			}
			i := d.Info
			lineWith("IMAP", i.IMAP, TLSModeName(mode))
			lineWith("SMTP", i.SMTP, TLSModeName(mode))
			if TLSModeName(mode) == string(mode) {
				t.Errorf("TLS mode %q has no name for people", mode)
			}
			for _, u := range i.Users {
				lineWith(u.Email, u.LoginPassword, u.IDPassword)
			}
			lineWith(i.Admin, i.AdminToken)
			lineWith(i.Admin + "/unlock")
			lineWith(i.Admin + "/enroll")
			lineWith(i.CAPEM)
			alice, bob, dave := i.Users[0], i.Users[1], i.Users[2]
			lineWith("swaks", "--server "+i.SMTP, i.CAPEM)
			lineWith("--auth-user "+alice.Email, "--auth-password "+alice.LoginPassword)
			lineWith("--from "+alice.Email, "--to "+bob.Email)
			lineWith("mutt -F " + filepath.Join(dir, MuttFile(bob.Email)))
			lineWith("/opt/bin/smimeproxy admin -config "+filepath.Join(dir, DemoConfigFile), "token create -email "+dave.Email)
			lineWith(i.UpstreamIMAP, i.UpstreamSMTP)
		})
	}
}
