package imap

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"smimeproxy/config"
)

// OptionsFromConfig fills Options from the [imap] section and reads
// upstream_ca. The caller adds what the file does not hold: the
// listener's TLSConfig (config's [tls], or the built-in CA's certificate),
// the Viewer (whose cache takes imap.cache_size), AppendTransform,
// UnlockURL and Logger. imap.idle_timeout is not applied: go-imap
// v2.0.0-beta.8 fixes its server's inactivity timeout at 35 minutes.
func OptionsFromConfig(c *config.Config) (Options, error) {
	s := c.IMAP
	o := Options{
		Listen:      s.Listen,
		ListenTLS:   string(s.ListenTLS),
		Upstream:    s.Upstream,
		UpstreamTLS: string(s.UpstreamTLS),
		DialTimeout: s.DialTimeout.Std(),
	}
	if s.UpstreamCA != "" {
		pem, err := os.ReadFile(s.UpstreamCA)
		if err != nil {
			return Options{}, fmt.Errorf("imap.upstream_ca: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return Options{}, fmt.Errorf("imap.upstream_ca %s: no PEM certificate in it", s.UpstreamCA)
		}
		o.UpstreamTLSConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return o, nil
}
