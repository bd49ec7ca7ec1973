package admin

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"smimeproxy/crypto/seal"
)

// minTokenLen refuses a token file too short to be a credential.
const minTokenLen = 16

// LoadOrCreateToken reads the admin bearer credential from path, or, when
// the file does not exist, creates it (mode 0600, exclusively, so two
// processes starting at once agree) with 256 random bits in base64url.
// A file others can read or write is refused: it is a credential.
func LoadOrCreateToken(path string) (seal.Secret, error) {
	tok, err := ReadToken(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createToken(path)
	}
	return tok, err
}

// ReadToken reads the admin bearer credential from path without creating
// it (the CLI's side); the error wraps fs.ErrNotExist when it is missing.
func ReadToken(path string) (seal.Secret, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("admin token file %s has mode %04o: other users may read it; chmod 600 it", path, fi.Mode().Perm())
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) < minTokenLen {
		return "", fmt.Errorf("admin token file %s holds fewer than %d characters: delete it to have a new one made", path, minTokenLen)
	}
	return seal.Secret(tok), nil
}

func createToken(path string) (seal.Secret, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateToken(path) // another process made it first
	}
	if err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("admin token file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("admin token file: %w", err)
	}
	return seal.Secret(tok), nil
}
