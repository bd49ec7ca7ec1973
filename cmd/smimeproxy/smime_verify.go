package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"strings"

	"smimeproxy/crypto/smime"
)

func runSmimeVerify(_ context.Context, s stdio, args []string) int {
	fs := flag.NewFlagSet("smimeproxy smime verify", flag.ContinueOnError)
	fs.SetOutput(s.err)
	rootsFile := fs.String("roots", "", "trusted root certificates (PEM)")
	in := fs.String("in", "", "signed message (default stdin)")
	out := fs.String("out", "", "where to write the signed content (the inner entity) when valid (default stdout)")
	fs.Usage = func() {
		fmt.Fprintln(s.err, "usage: smimeproxy smime verify -roots R [-in F] [-out F]")
		fmt.Fprintln(s.err, "Exits 0 only when the signature is intact and the signer's certificate chains to -roots with fitting key usage.")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *rootsFile == "" {
		return usageError(s, fs, "-roots is required (the CA certificates you trust, PEM)")
	}
	fail := func(err error) int {
		fmt.Fprintf(s.err, "smimeproxy smime verify: %v\n", err)
		return exitFailed
	}
	roots, err := readCertificates(*rootsFile)
	if err != nil {
		return fail(err)
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	msg, err := readInput(s, *in, maxInput)
	if err != nil {
		return fail(err)
	}
	res, err := smime.Verify(msg, smime.VerifyOptions{Roots: pool})
	if err != nil {
		if errors.Is(err, smime.ErrNotSigned) {
			return fail(fmt.Errorf("%w; give a multipart/signed or application/pkcs7-mime signed-data message", err))
		}
		return fail(fmt.Errorf("%w; the message or its signature is damaged: ask the sender to send it again", err))
	}
	if res.Signer != nil {
		addrs := smime.CertAddresses(res.Signer)
		addr := "no e-mail address"
		if len(addrs) > 0 {
			addr = strings.Join(addrs, ", ")
		}
		fmt.Fprintf(s.err, "signer: %s <%s>\n", subjectName(res.Signer), addr)
		if !res.SigningTime.IsZero() {
			fmt.Fprintf(s.err, "signed at: %s\n", res.SigningTime.UTC().Format("2006-01-02 15:04:05 MST"))
		}
	}
	for _, r := range res.Reasons {
		fmt.Fprintf(s.err, "%s\n", r)
	}
	for _, w := range res.Weak {
		fmt.Fprintf(s.err, "warning: weak algorithm: %s\n", w)
	}
	if !res.Valid {
		fmt.Fprintln(s.err, "verification failed: the lines above say why; a changed message cannot be repaired, an untrusted signer needs its root CA in -roots")
		return exitFailed
	}
	fmt.Fprintln(s.err, "verification successful")
	if err := writeOutput(s, *out, res.Entity); err != nil {
		return fail(err)
	}
	return exitOK
}

// subjectName gives a readable subject: common name and organisation
// (Go's Name.String prints an emailAddress attribute as hex).
func subjectName(c *x509.Certificate) string {
	parts := []string{}
	if c.Subject.CommonName != "" {
		parts = append(parts, c.Subject.CommonName)
	}
	parts = append(parts, c.Subject.Organization...)
	if len(parts) == 0 {
		return c.Subject.String()
	}
	return strings.Join(parts, ", ")
}
