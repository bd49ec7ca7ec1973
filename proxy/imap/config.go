package imap

import (
	"smimeproxy/config"
)

// OptionsFromConfig fills Options from the [imap] section and reads
// upstream_ca. The caller adds what the file does not hold: the
// listener's TLSConfig (config's [tls], or the built-in CA's certificate),
// the Viewer (whose cache takes imap.cache_size), AppendTransform,
// UnlockURL and Logger. imap.idle_timeout becomes IdleTimeout, which caps
// go-imap's own 35-minute wait for a client's next command or DONE.
func OptionsFromConfig(c *config.Config) (Options, error) {
	s := c.IMAP
	o := Options{
		Listen:      s.Listen,
		ListenTLS:   string(s.ListenTLS),
		Upstream:    s.Upstream,
		UpstreamTLS: string(s.UpstreamTLS),
		DialTimeout: s.DialTimeout.Std(),
		IdleTimeout: s.IdleTimeout.Std(),
	}
	up, err := config.UpstreamTLS("imap.upstream_ca", s.UpstreamCA)
	if err != nil {
		return Options{}, err
	}
	o.UpstreamTLSConfig = up
	return o, nil
}
