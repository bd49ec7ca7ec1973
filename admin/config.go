package admin

import (
	"crypto/tls"
	"fmt"

	"smimeproxy/config"
)

// OptionsFromConfig fills what the configuration decides: public URL,
// session lifetime, body cap, remember periods ([keys]) and the admin
// token (token_file, created on first start). The caller adds Identity,
// Auth, CARootPEM, Logger, Registry and Clock. With listen port 0 the
// configuration has no public URL; set PublicURL from the listener.
func OptionsFromConfig(c *config.Config) (Options, error) {
	a := c.Admin
	tok, err := LoadOrCreateToken(a.TokenFile)
	if err != nil {
		return Options{}, fmt.Errorf("admin.token_file: %w", err)
	}
	return Options{
		AdminToken:      tok,
		PublicURL:       a.PublicURL,
		SessionTTL:      a.SessionTTL.Std(),
		MaxRequestSize:  int64(a.MaxRequestSize),
		RememberDefault: c.Keys.RememberDefault.Std(),
		RememberMax:     c.Keys.RememberMax.Std(),
	}, nil
}

// ServeOptionsFromConfig says how to serve the endpoint: TLS (the
// listeners' certificate, given by the caller) when listen_tls is
// "implicit", and whether plain HTTP may face the network.
func ServeOptionsFromConfig(c *config.Config, tlsConfig *tls.Config) (ServeOptions, error) {
	o := ServeOptions{AllowRemotePlaintext: c.Admin.AllowRemotePlaintext}
	if c.Admin.ListenTLS == config.TLSImplicit {
		if tlsConfig == nil {
			return ServeOptions{}, fmt.Errorf("admin.listen_tls = %q needs a TLS certificate", c.Admin.ListenTLS)
		}
		o.TLS = tlsConfig
	}
	return o, nil
}
