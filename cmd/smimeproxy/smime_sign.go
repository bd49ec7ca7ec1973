package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"

	"smimeproxy/crypto/smime"
)

func runSmimeSign(_ context.Context, s stdio, args []string) int {
	fs := flag.NewFlagSet("smimeproxy smime sign", flag.ContinueOnError)
	fs.SetOutput(s.err)
	certFile := fs.String("cert", "", "signing certificate (PEM or DER); further certificates in the file are sent as the chain")
	keyFile := fs.String("key", "", "private key of the signing certificate (PEM or DER, unencrypted)")
	chainFile := fs.String("chain", "", "issuing CA certificates to include (PEM)")
	encFile := fs.String("enc-cert", "", "encryption certificate to include and announce (SMIMEEncryptionKeyPreference)")
	in := fs.String("in", "", "message to sign (default stdin)")
	out := fs.String("out", "", "where to write the signed message (default stdout)")
	opaque := fs.Bool("opaque", false, "opaque signed-data (application/pkcs7-mime) instead of multipart/signed")
	fs.Usage = func() {
		fmt.Fprintln(s.err, "usage: smimeproxy smime sign -cert C -key K [-chain F] [-enc-cert F] [-in F] [-out F] [-opaque]")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *certFile == "" || *keyFile == "" {
		return usageError(s, fs, "-cert and -key are both required")
	}
	fail := func(err error) int {
		fmt.Fprintf(s.err, "smimeproxy smime sign: %v\n", err)
		return exitFailed
	}
	certs, err := readCertificates(*certFile)
	if err != nil {
		return fail(err)
	}
	opts := smime.SignOptions{Cert: certs[0], Chain: certs[1:]}
	key, err := readPrivateKey(*keyFile)
	if err != nil {
		return fail(err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return fail(fmt.Errorf("%s: the key cannot sign; give the private key of the signing certificate", *keyFile))
	}
	opts.Key = signer
	if *chainFile != "" {
		chain, err := readCertificates(*chainFile)
		if err != nil {
			return fail(err)
		}
		opts.Chain = append(opts.Chain, chain...)
	}
	if *encFile != "" {
		enc, err := readCertificates(*encFile)
		if err != nil {
			return fail(err)
		}
		opts.EncryptionCert = enc[0]
	}
	opts.Opaque = *opaque
	msg, err := readInput(s, *in, maxInput)
	if err != nil {
		return fail(err)
	}
	var b bytes.Buffer
	if err := smime.Sign(&b, msg, opts); err != nil {
		return fail(signHint(err, opts.Cert))
	}
	if err := writeOutput(s, *out, b.Bytes()); err != nil {
		return fail(err)
	}
	return exitOK
}

// signHint adds what to do to the errors a user can fix.
func signHint(err error, cert *x509.Certificate) error {
	switch {
	case errors.Is(err, smime.ErrBadSigner):
		return fmt.Errorf("%w (check that -key is the key of -cert %q)", err, cert.Subject.CommonName)
	case errors.Is(err, smime.ErrMalformedMIME), errors.Is(err, smime.ErrHeaderTooLarge),
		errors.Is(err, smime.ErrLineTooLong), errors.Is(err, smime.ErrTooDeep), errors.Is(err, smime.ErrTooManyParts):
		return fmt.Errorf("%w (the input must be an RFC 5322 message: header fields, an empty line, the body)", err)
	}
	return err
}

func usageError(s stdio, fs *flag.FlagSet, msg string) int {
	fmt.Fprintf(s.err, "%s: %s\n", fs.Name(), msg)
	fs.Usage()
	return exitUsage
}
