package imap

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"smimeproxy/config"
	"smimeproxy/internal/mailtest"
)

func TestOptionsFromConfig(t *testing.T) {
	dir := t.TempDir()
	srv, err := mailtest.NewServerTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "smimeproxy.toml")
	toml := `[imap]
listen = "127.0.0.1:2143"
listen_tls = "implicit"
upstream = "127.0.0.1:143"
upstream_tls = "starttls"
upstream_ca = "` + srv.CertFile + `"
dial_timeout = "4s"
idle_timeout = "31m"
`
	if err := os.WriteFile(file, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(file, []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	o, err := OptionsFromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if o.Listen != "127.0.0.1:2143" || o.ListenTLS != TLSImplicit || o.Upstream != "127.0.0.1:143" ||
		o.UpstreamTLS != TLSStartTLS || o.DialTimeout != 4*time.Second || o.IdleTimeout != 31*time.Minute {
		t.Errorf("options %+v", o)
	}
	if o.UpstreamTLSConfig == nil || !o.UpstreamTLSConfig.RootCAs.Equal(srv.Roots) {
		t.Errorf("upstream_ca not loaded as the only root")
	}
	c.IMAP.UpstreamCA = filepath.Join(dir, "missing.pem")
	if _, err := OptionsFromConfig(c); err == nil {
		t.Errorf("missing upstream_ca accepted")
	}
}
