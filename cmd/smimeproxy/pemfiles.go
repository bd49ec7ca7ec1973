package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"smimeproxy/crypto/ca"
)

// readCertificates reads every certificate of a PEM (or single DER) file.
func readCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificates: %w", err)
	}
	certs, err := ca.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(certs) == 0 {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, fmt.Errorf("%s: no PEM CERTIFICATE block and not a DER certificate", path)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// readPrivateKey reads an unencrypted private key in PEM (PKCS#8, PKCS#1 or
// SEC1) or DER PKCS#8 form.
func readPrivateKey(path string) (crypto.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Headers["Proc-Type"] != "" || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, fmt.Errorf("%s: the private key is encrypted; decrypt it first (openssl pkey -in %s -out plain.key)", path, path)
		}
		der = block.Bytes
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return checkKeyType(path, k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("%s: not a private key in PKCS#8, PKCS#1 or SEC1 form (PEM or DER)", path)
}

func checkKeyType(path string, k any) (crypto.PrivateKey, error) {
	switch k.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%s: unsupported private key type %T", path, k)
}

// openInput returns the named file, or stdin for "" or "-".
func openInput(s stdio, path string) (io.ReadCloser, error) {
	if path == "" || path == "-" {
		return io.NopCloser(s.in), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	return f, nil
}

// readInput reads the whole input named by path (stdin for "" or "-"),
// refusing more than limit bytes.
func readInput(s stdio, path string, limit int64) ([]byte, error) {
	r, err := openInput(s, path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("input is larger than %d bytes", limit)
	}
	return data, nil
}

// writeOutput writes data to the named file (0600, replaced atomically) or
// to stdout for "" or "-".
func writeOutput(s stdio, path string, data []byte) error {
	return writeOutputStream(s, path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// parseFlags parses args; done reports that the command should end now
// with code (help: 0, bad flags or stray arguments: 2).
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, true
		}
		return exitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q; input is given with -in\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, true
	}
	return 0, false
}

// maxInput bounds what the offline commands read into memory.
const maxInput = 256 << 20
