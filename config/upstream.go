package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// UpstreamTLS is the client TLS configuration towards an upstream server
// whose certificates chain to the PEM roots in caFile ([imap] or [smtp]
// upstream_ca); key names the setting in errors. An empty caFile means the
// system roots: nil is returned.
func UpstreamTLS(key, caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", key, caFile)
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}
