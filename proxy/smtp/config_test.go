package smtp

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"smimeproxy/config"
	"smimeproxy/internal/mailtest"
	"smimeproxy/policy"
)

func TestOptionsFromConfig(t *testing.T) {
	dir := t.TempDir()
	srv, err := mailtest.NewServerTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "smimeproxy.toml")
	toml := `[smtp]
listen = "127.0.0.1:2587"
listen_tls = "implicit"
upstream = "127.0.0.1:587"
upstream_tls = "starttls"
upstream_ca = "` + srv.CertFile + `"
max_message_size = "10MB"
max_recipients = 7
dial_timeout = "3s"
timeout = "1m"
[policy]
sign = "when-possible"
encrypt = "always"
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
	if o.Listen != "127.0.0.1:2587" || o.ListenTLS != TLSImplicit || o.Upstream != "127.0.0.1:587" || o.UpstreamTLS != TLSStartTLS ||
		o.MaxMessageBytes != 10<<20 || o.MaxRecipients != 7 || o.DialTimeout != 3*time.Second || o.CommandTimeout != time.Minute ||
		o.Policy != (policy.Policy{Sign: policy.WhenPossible, Encrypt: policy.Always}) {
		t.Errorf("options %+v", o)
	}
	if o.UpstreamTLSConfig == nil || !o.UpstreamTLSConfig.RootCAs.Equal(srv.Roots) {
		t.Errorf("upstream_ca not loaded as the only root")
	}
	c.SMTP.UpstreamCA = filepath.Join(dir, "missing.pem")
	if _, err := OptionsFromConfig(c); err == nil {
		t.Errorf("missing upstream_ca accepted")
	}
}
