package identity

import (
	"crypto/x509"

	"smimeproxy/crypto/ca"
)

func verifyOpts(roots *x509.CertPool, c *ca.CA) x509.VerifyOptions {
	inter := x509.NewCertPool()
	for _, x := range c.Chain()[1:] {
		inter.AddCert(x)
	}
	return x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
}
