package smtp

import (
	"smimeproxy/config"
)

// OptionsFromConfig fills Options from the [smtp] and [policy] sections and
// reads upstream_ca. The caller adds what the file does not hold: the
// listener's TLSConfig (config's [tls], or the built-in CA's certificate),
// Keys, UnlockURL, EnrollURL and Logger.
func OptionsFromConfig(c *config.Config) (Options, error) {
	s := c.SMTP
	o := Options{
		Listen:          s.Listen,
		ListenTLS:       string(s.ListenTLS),
		Hostname:        s.Hostname,
		Upstream:        s.Upstream,
		UpstreamTLS:     string(s.UpstreamTLS),
		MaxMessageBytes: int64(s.MaxMessageSize),
		MaxRecipients:   s.MaxRecipients,
		DialTimeout:     s.DialTimeout.Std(),
		CommandTimeout:  s.Timeout.Std(),
		Policy:          c.Policy.Outbound(),
	}
	up, err := config.UpstreamTLS("smtp.upstream_ca", s.UpstreamCA)
	if err != nil {
		return Options{}, err
	}
	o.UpstreamTLSConfig = up
	return o, nil
}
