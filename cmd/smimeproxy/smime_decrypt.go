package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"smimeproxy/crypto/smime"
)

func runSmimeDecrypt(_ context.Context, s stdio, args []string) int {
	fs := flag.NewFlagSet("smimeproxy smime decrypt", flag.ContinueOnError)
	fs.SetOutput(s.err)
	certFile := fs.String("cert", "", "recipient certificate the message was encrypted to (PEM or DER; the first certificate of the file)")
	keyFile := fs.String("key", "", "private key of that certificate (PEM or DER, unencrypted; RSA or EC)")
	in := fs.String("in", "", "encrypted message (default stdin)")
	out := fs.String("out", "", "where to write the decrypted message (default stdout)")
	fs.Usage = func() {
		fmt.Fprintln(s.err, "usage: smimeproxy smime decrypt -cert C -key K [-in F] [-out F]")
		fmt.Fprintln(s.err, "Writes the decrypted message: the outer header fields, MIME-Version and the decrypted MIME entity, CRLF line ends.")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *certFile == "" || *keyFile == "" {
		return cryptUsageError(fs, "-cert and -key are both required")
	}
	fail := func(err error) int {
		fmt.Fprintf(s.err, "smimeproxy smime decrypt: %v\n", err)
		return exitFailed
	}
	certs, err := readCertificates(*certFile)
	if err != nil {
		return fail(err)
	}
	key, err := readPrivateKey(*keyFile)
	if err != nil {
		return fail(err)
	}
	if err := keyMatchesCert(key, certs[0]); err != nil {
		return fail(fmt.Errorf("%s and %s: %w", *keyFile, *certFile, err))
	}
	msg, err := readInput(s, *in, maxInput)
	if err != nil {
		return fail(err)
	}
	d, err := smime.Decrypt(msg, []smime.KeyPair{{Cert: certs[0], Key: key}})
	if err != nil {
		return fail(decryptHint(err, certs[0]))
	}
	err = writeOutputStream(s, *out, func(w io.Writer) error {
		return smime.Compose(w, d.Header, d.Entity)
	})
	if err != nil {
		return fail(err)
	}
	return exitOK
}

// keyMatchesCert refuses a key that is not the certificate's.
func keyMatchesCert(key crypto.PrivateKey, cert *x509.Certificate) error {
	k, ok := key.(interface{ Public() crypto.PublicKey })
	if !ok {
		return errors.New("the private key type is not supported")
	}
	pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return errors.New("the private key does not belong to the certificate; give the key of -cert")
	}
	return nil
}

// decryptHint adds what to do to each kind of failure.
func decryptHint(err error, cert *x509.Certificate) error {
	switch {
	case errors.Is(err, smime.ErrNotEncrypted):
		return fmt.Errorf("%w (for a signed message use 'smimeproxy smime verify')", err)
	case errors.Is(err, smime.ErrNoMatchingRecipient):
		return fmt.Errorf("%w (it is not addressed to %s; use the certificate and key it was encrypted to)", err, describeCert(cert))
	case errors.Is(err, smime.ErrDecryptFailed):
		return fmt.Errorf("%w (the key did not open the message: it was damaged in transit, or encrypted to another key with the same certificate name and serial)", err)
	case errors.Is(err, smime.ErrUnsupportedAlgorithm):
		return fmt.Errorf("%w (ask the sender for AES-CBC or AES-GCM with RSA or ECDH)", err)
	case errors.Is(err, smime.ErrMalformed):
		return fmt.Errorf("%w (the input must be a whole S/MIME message, application/pkcs7-mime, as received)", err)
	}
	return err
}

// describeCert names a certificate for a person: common name, addresses,
// serial number.
func describeCert(cert *x509.Certificate) string {
	d := fmt.Sprintf("%q", cert.Subject.CommonName)
	if len(cert.EmailAddresses) > 0 {
		d += " <" + strings.Join(cert.EmailAddresses, ", ") + ">"
	}
	return d + ", serial " + cert.SerialNumber.Text(16)
}
