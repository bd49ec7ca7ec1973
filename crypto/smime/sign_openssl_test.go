package smime

import (
	"bytes"
	"crypto/x509"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"smimeproxy/internal/mailtest"
)

// Quick cross-checks of signing against OpenSSL's CMS implementation; the
// full interop matrix (gpgsm, the CLI) lives in e2e/.

func sigOpenSSL(t *testing.T, bin string, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Logf("openssl %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		return nil, err
	}
	return out.Bytes(), nil
}

type sigFiles struct {
	root string
	user mailtest.UserFiles
}

func writeSigFiles(t *testing.T, pki *mailtest.PKI, u *mailtest.User) sigFiles {
	t.Helper()
	dir := t.TempDir()
	pf, err := pki.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	uf, err := u.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	return sigFiles{root: pf.Root, user: uf}
}

// TestOpenSSLVerifiesOurSignatures: openssl cms -verify (purpose
// smimesign, chain to the root) accepts what Sign writes and returns the
// canonical entity as the content.
func TestOpenSSLVerifiesOurSignatures(t *testing.T) {
	bin := mailtest.LookTool(t, "openssl", "openssl")
	pki := mailtest.NewPKI(t)
	for _, kt := range []mailtest.KeyType{mailtest.RSA, mailtest.P256, mailtest.P384} {
		u := pki.User(t, "alice@example.test", kt)
		files := writeSigFiles(t, pki, u)
		for _, opaque := range []bool{false, true} {
			for name, msg := range map[string]string{"8bit": msg8bit, "nested": msgNested} {
				t.Run(kt.String()+"/"+name+"/"+map[bool]string{false: "detached", true: "opaque"}[opaque], func(t *testing.T) {
					in := signed(t, u, msg, opaque)
					out, err := sigOpenSSL(t, bin, in, "cms", "-verify", "-CAfile", files.root, "-purpose", "smimesign")
					if err != nil {
						t.Fatal("openssl refused our signature")
					}
					_, entity, _ := SplitMessage([]byte(msg))
					want, _ := Canonicalize(entity)
					if !bytes.Equal(out, want) {
						t.Errorf("openssl content = %q, want %q", out, want)
					}
				})
			}
		}
	}
}

// TestVerifyOpenSSLSignatures: what openssl cms -sign writes verifies here,
// with LF line ends too, and SHA-1 is flagged weak without failing.
func TestVerifyOpenSSLSignatures(t *testing.T) {
	bin := mailtest.LookTool(t, "openssl", "openssl")
	pki := mailtest.NewPKI(t)
	rsaUser := pki.User(t, "alice@example.test", mailtest.RSA)
	ecUser := pki.User(t, "alice@example.test", mailtest.P256)
	content := []byte("Content-Type: text/plain; charset=us-ascii\r\n\r\nHello S/MIME\r\n")
	tests := []struct {
		name     string
		user     *mailtest.User
		args     []string
		opaque   bool
		wantWeak []string
	}{
		{"detached rsa", rsaUser, nil, false, nil},
		{"opaque rsa", rsaUser, []string{"-nodetach"}, true, nil},
		{"detached ecdsa", ecUser, nil, false, nil},
		{"rsa-pss", rsaUser, []string{"-keyopt", "rsa_padding_mode:pss"}, false, nil},
		{"sha1 digest", rsaUser, []string{"-md", "sha1"}, false, []string{"SHA-1 digest"}},
		{"md5 digest", rsaUser, []string{"-md", "md5"}, false, []string{"MD5 digest"}},
		{"no signed attributes", rsaUser, []string{"-noattr"}, false, nil},
		{"signer named by subjectKeyIdentifier", rsaUser, []string{"-keyid"}, false, nil},
		{"opaque ecdsa by subjectKeyIdentifier", ecUser, []string{"-keyid", "-nodetach"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := writeSigFiles(t, pki, tt.user)
			args := append([]string{"cms", "-sign", "-signer", files.user.SignCert, "-inkey", files.user.SignKey,
				"-certfile", files.user.Chain}, tt.args...)
			out, err := sigOpenSSL(t, bin, content, args...)
			if err != nil {
				t.Fatal(err)
			}
			msg := append([]byte("From: alice@example.test\r\nSubject: from openssl\r\n"), out...)
			for _, form := range []struct {
				name string
				msg  []byte
			}{{"crlf", ToCRLF(msg)}, {"lf", bytes.ReplaceAll(ToCRLF(msg), []byte("\r\n"), []byte("\n"))}} {
				res, err := Verify(form.msg, VerifyOptions{Roots: pki.Roots()})
				if err != nil {
					t.Fatalf("%s: %v", form.name, err)
				}
				if !res.Valid || !res.FromMatches || res.Opaque != tt.opaque {
					t.Fatalf("%s: Valid=%v FromMatches=%v Opaque=%v reasons %v", form.name, res.Valid, res.FromMatches, res.Opaque, res.Reasons)
				}
				if !slices.Equal(res.Weak, tt.wantWeak) {
					t.Errorf("%s: Weak = %v, want %v", form.name, res.Weak, tt.wantWeak)
				}
				if !bytes.Equal(res.Entity, content) {
					t.Errorf("%s: entity = %q", form.name, res.Entity)
				}
			}
		})
	}
}

// TestVerifySignerCertificateLeftOut: openssl -nocerts sends no
// certificates; the signer's, given in Intermediates, is found there.
func TestVerifySignerCertificateLeftOut(t *testing.T) {
	bin := mailtest.LookTool(t, "openssl", "openssl")
	pki := mailtest.NewPKI(t)
	u := pki.User(t, "alice@example.test", mailtest.RSA)
	files := writeSigFiles(t, pki, u)
	out, err := sigOpenSSL(t, bin, []byte("Content-Type: text/plain\r\n\r\nno certificates\r\n"),
		"cms", "-sign", "-nocerts", "-signer", files.user.SignCert, "-inkey", files.user.SignKey)
	if err != nil {
		t.Fatal(err)
	}
	msg := append([]byte("From: alice@example.test\r\n"), out...)
	res, err := Verify(msg, VerifyOptions{Roots: pki.Roots()})
	if err != nil || res.Valid || res.Signer != nil {
		t.Fatalf("without the certificate: err %v, result %+v", err, res)
	}
	res, err = Verify(msg, VerifyOptions{Roots: pki.Roots(), Intermediates: []*x509.Certificate{u.SignCert, pki.Intermediate}})
	if err != nil || !res.Valid {
		t.Fatalf("with the certificate: err %v, reasons %v", err, res.Reasons)
	}
}

// TestVerifyOpenSSLSignatureTampered: a signature openssl made, over a
// changed body, is invalid here too.
func TestVerifyOpenSSLSignatureTampered(t *testing.T) {
	bin := mailtest.LookTool(t, "openssl", "openssl")
	pki := mailtest.NewPKI(t)
	u := pki.User(t, "alice@example.test", mailtest.RSA)
	files := writeSigFiles(t, pki, u)
	out, err := sigOpenSSL(t, bin, []byte("Content-Type: text/plain\r\n\r\nPay 100 EUR\r\n"),
		"cms", "-sign", "-signer", files.user.SignCert, "-inkey", files.user.SignKey, "-certfile", files.user.Chain)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(bytes.Replace(out, []byte("100"), []byte("900"), 1), VerifyOptions{Roots: pki.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid {
		t.Fatal("changed body verified")
	}
}
