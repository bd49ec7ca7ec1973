package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"smimeproxy/crypto/smime"
)

// certList is a repeatable -to flag.
type certList []string

func (c *certList) String() string     { return strings.Join(*c, ",") }
func (c *certList) Set(v string) error { *c = append(*c, v); return nil }

func runSmimeEncrypt(_ context.Context, s stdio, args []string) int {
	fs := flag.NewFlagSet("smimeproxy smime encrypt", flag.ContinueOnError)
	fs.SetOutput(s.err)
	var to certList
	fs.Var(&to, "to", "recipient certificate (PEM or DER; the first certificate of the file); repeat for several recipients. EC certificates get ECDH key agreement")
	cipherName := fs.String("cipher", "aes256-cbc", "content encryption: aes256-cbc (enveloped-data), aes128-gcm or aes256-gcm (authEnveloped-data)")
	oaep := fs.Bool("oaep", false, "RSA recipients get RSAES-OAEP with SHA-256 instead of PKCS#1 v1.5")
	in := fs.String("in", "", "message to encrypt, RFC 5322 with CRLF or LF (default stdin)")
	out := fs.String("out", "", "where to write the encrypted message (default stdout)")
	fs.Usage = func() {
		fmt.Fprintln(s.err, "usage: smimeproxy smime encrypt -to CERT [-to CERT…] [-cipher aes256-cbc|aes128-gcm|aes256-gcm] [-oaep] [-in F] [-out F]")
		fmt.Fprintln(s.err, "Encrypts the message body to every -to certificate; From, To, Subject and the other header fields stay readable.")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if len(to) == 0 {
		return cryptUsageError(fs, "at least one -to certificate is required")
	}
	cipher, err := smime.ParseCipher(*cipherName)
	if err != nil {
		return cryptUsageError(fs, fmt.Sprintf("unknown -cipher %q; use aes256-cbc, aes128-gcm or aes256-gcm", *cipherName))
	}
	fail := func(err error) int {
		fmt.Fprintf(s.err, "smimeproxy smime encrypt: %v\n", err)
		return exitFailed
	}
	recipients := make([]smime.Recipient, 0, len(to))
	for _, path := range to {
		certs, err := readCertificates(path)
		if err != nil {
			return fail(err)
		}
		recipients = append(recipients, smime.Recipient{Cert: certs[0], OAEP: *oaep})
	}
	msg, err := readInput(s, *in, maxInput)
	if err != nil {
		return fail(err)
	}
	err = writeOutputStream(s, *out, func(w io.Writer) error {
		return smime.Encrypt(w, msg, recipients, smime.EncryptOptions{Cipher: cipher})
	})
	if err != nil {
		return fail(encryptHint(err))
	}
	return exitOK
}

// encryptHint adds what to do to the errors a user can fix.
func encryptHint(err error) error {
	switch {
	case errors.Is(err, smime.ErrUnusableRecipient):
		return fmt.Errorf("%w (give the recipient's encryption certificate)", err)
	case errors.Is(err, smime.ErrUnsupportedAlgorithm):
		return fmt.Errorf("%w (recipients need an RSA or EC P-256/P-384/P-521 certificate)", err)
	case errors.Is(err, smime.ErrMalformedMIME), errors.Is(err, smime.ErrHeaderTooLarge), errors.Is(err, smime.ErrLineTooLong):
		return fmt.Errorf("%w (the input must be an RFC 5322 message: header fields, an empty line, the body)", err)
	}
	return err
}

// writeOutputStream lets write produce the output straight into the named
// file (0600, replaced atomically once complete) or stdout for "" or "-",
// so a large message is not held in memory a second time.
func writeOutputStream(s stdio, path string, write func(io.Writer) error) error {
	if path == "" || path == "-" {
		bw := bufio.NewWriterSize(s.out, 64<<10)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write output: %w", cerr)
	}
	if err == nil {
		if err = os.Rename(tmp, path); err != nil {
			err = fmt.Errorf("write output: %w", err)
		}
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}

func cryptUsageError(fs *flag.FlagSet, msg string) int {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), msg)
	fs.Usage()
	return exitUsage
}
