package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File names inside the CA directory.
const (
	RootKeyFile    = "root.key"
	RootCertFile   = "root.crt"
	EscrowKeyFile  = "escrow.key"
	EscrowCertFile = "escrow.crt"
	TLSKeyFile     = "tls.key"
	TLSCertFile    = "tls.crt"
)

const (
	keyMode  fs.FileMode = 0o600
	certMode fs.FileMode = 0o644
	dirMode  fs.FileMode = 0o700
)

// writeTemp writes data to a new temporary file beside path, synced, with
// the given mode, and returns its name.
func writeTemp(path string, data []byte, mode fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return name, nil
}

// replaceFile atomically replaces path with data (temporary file + rename).
func replaceFile(path string, data []byte, mode fs.FileMode) error {
	tmp, err := writeTemp(path, data, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install %s: %w", path, err)
	}
	return nil
}

// createFile atomically installs data at path unless a file is already
// there, and reports whether it did. A hard link never replaces an
// existing name, so two processes creating the same file race safely: the
// loser finds the winner's file and uses it.
func createFile(path string, data []byte, mode fs.FileMode) (bool, error) {
	tmp, err := writeTemp(path, data, mode)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("install %s: %w", path, err)
	}
	return true, nil
}

// exists reports whether path names an existing file.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("check %s: %w", path, err)
}

// readCerts reads every CERTIFICATE block of a PEM file, in order.
func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	certs, err := ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%w in %s", err, path)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return certs, nil
}

// ParseCertificatesPEM returns the certificates of every CERTIFICATE block
// in data, in order, skipping other blocks (keys, parameters) and text
// between them. None found is an empty result, not an error: callers
// decide whether DER or an empty file is acceptable.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return certs, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
}

// readKey reads a PEM private key file.
// loadOrCreateKey reads the PEM private key at path, first generating one
// of kind there when the file is missing. createFile never replaces a
// file, so processes starting at once all end up with the key that was
// written first.
func loadOrCreateKey(path string, kind KeyType) (crypto.Signer, error) {
	ok, err := exists(path)
	if err != nil {
		return nil, err
	}
	if !ok {
		k, err := GenerateKey(kind)
		if err != nil {
			return nil, err
		}
		data, err := MarshalPrivateKeyPEM(k)
		if err != nil {
			return nil, err
		}
		if _, err := createFile(path, data, keyMode); err != nil {
			return nil, err
		}
	}
	return readKey(path)
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	k, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
