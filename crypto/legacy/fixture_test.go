package legacy

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"smimeproxy/internal/mailtest"
)

// pki is a small test PKI made with openssl in a temporary directory.
type pki struct {
	t       *testing.T
	openssl string
	dir     string
}

func (p *pki) run(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(p.openssl, args...)
	cmd.Dir = p.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

func (p *pki) read(name string) []byte {
	p.t.Helper()
	data, err := os.ReadFile(p.path(name))
	if err != nil {
		p.t.Fatal(err)
	}
	return data
}

func (p *pki) cert(name string) *x509.Certificate {
	p.t.Helper()
	block, _ := pem.Decode(p.read(name))
	if block == nil {
		p.t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

const (
	extSign = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=emailProtection\nsubjectAltName=email:alice@example.test\n"
	extEnc  = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\nextendedKeyUsage=emailProtection\nsubjectAltName=email:alice@example.test\n"
	extDual = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=emailProtection\nsubjectAltName=email:bob@example.test\n"
)

// shared holds the one test PKI of this test binary: openssl key
// generation is slow on a busy machine, and every test reads the same keys.
var shared struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// newPKI returns the shared PKI, made on first use: ca (RSA-2048 root),
// alice-sign and alice-enc (RSA-2048, separate signing and encryption
// certificates), bob (EC P-256, one dual-use certificate). Tests may add
// files of their own names to its directory.
func newPKI(t *testing.T) *pki {
	t.Helper()
	openssl := mailtest.LookTool(t, "openssl", "openssl")
	shared.once.Do(func() { shared.dir, shared.err = makePKI(openssl) })
	if shared.err != nil {
		t.Fatalf("test PKI: %v", shared.err)
	}
	return &pki{t: t, openssl: openssl, dir: shared.dir}
}

func makePKI(openssl string) (string, error) {
	dir, err := os.MkdirTemp("", "legacy-pki-")
	if err != nil {
		return "", err
	}
	run := func(args ...string) error {
		cmd := exec.Command(openssl, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
		"-subj", "/O=smimeproxy test/CN=Test Root CA",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"); err != nil {
		return dir, err
	}
	for _, u := range []struct{ name, alg, opt, ext, subj string }{
		{"alice-sign", "RSA", "rsa_keygen_bits:2048", extSign, "/CN=Alice Example/emailAddress=alice@example.test"},
		{"alice-enc", "RSA", "rsa_keygen_bits:2048", extEnc, "/CN=Alice Example/emailAddress=alice@example.test"},
		{"bob", "EC", "ec_paramgen_curve:P-256", extDual, "/CN=Bob Example/emailAddress=bob@example.test"},
	} {
		if err := os.WriteFile(filepath.Join(dir, u.name+".ext"), []byte(u.ext), 0o600); err != nil {
			return dir, err
		}
		for _, args := range [][]string{
			{"genpkey", "-algorithm", u.alg, "-pkeyopt", u.opt, "-out", u.name + ".key"},
			{"req", "-new", "-key", u.name + ".key", "-subj", u.subj, "-out", u.name + ".csr"},
			{"x509", "-req", "-in", u.name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
				"-days", "30", "-extfile", u.name + ".ext", "-out", u.name + ".crt"},
		} {
			if err := run(args...); err != nil {
				return dir, err
			}
		}
	}
	return dir, nil
}
