package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smimeproxy/internal/mailtest"
)

func runCmd(t *testing.T, f func(context.Context, stdio, []string) int, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := f(context.Background(), stdio{in: bytes.NewReader(stdin), out: &out, err: &errb}, args)
	return code, out.String(), errb.String()
}

func TestSmimeEncryptDecryptCLI(t *testing.T) {
	pki := mailtest.NewPKI(t)
	dir := t.TempDir()
	files := map[string]mailtest.UserFiles{}
	for _, u := range []struct {
		email string
		kt    mailtest.KeyType
	}{{"alice@example.test", mailtest.RSA}, {"bob@example.test", mailtest.P256}, {"carol@example.test", mailtest.P384}} {
		f, err := pki.User(t, u.email, u.kt).WriteFiles(dir)
		if err != nil {
			t.Fatal(err)
		}
		files[u.email] = f
	}
	alice, bob, carol := files["alice@example.test"], files["bob@example.test"], files["carol@example.test"]
	msg := "From: alice@example.test\nTo: bob@example.test\nSubject: cli\n\nhello over the command line\n"
	want := "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: cli\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nhello over the command line\r\n"

	for _, extra := range [][]string{nil, {"-cipher", "aes128-gcm"}, {"-cipher", "aes256-gcm", "-oaep"}, {"-oaep"}} {
		encPath := filepath.Join(dir, "enc.eml")
		args := append([]string{"-to", alice.EncCert, "-to", bob.EncCert, "-out", encPath}, extra...)
		if code, _, stderr := runCmd(t, runSmimeEncrypt, []byte(msg), args...); code != exitOK {
			t.Fatalf("encrypt %v: exit %d: %s", extra, code, stderr)
		}
		enc, err := os.ReadFile(encPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []mailtest.UserFiles{alice, bob} {
			code, stdout, stderr := runCmd(t, runSmimeDecrypt, enc, "-cert", f.EncCert, "-key", f.EncKey)
			if code != exitOK || stdout != want {
				t.Fatalf("decrypt %v with %s: exit %d, %q, %s", extra, f.EncCert, code, stdout, stderr)
			}
		}
		// Not a recipient: exit 1 and a reason that says what to do.
		code, stdout, stderr := runCmd(t, runSmimeDecrypt, enc, "-cert", carol.EncCert, "-key", carol.EncKey)
		if code != exitFailed || stdout != "" || !strings.Contains(stderr, "not encrypted to any") || !strings.Contains(stderr, "use the certificate and key") {
			t.Fatalf("wrong recipient: exit %d, stderr %s", code, stderr)
		}
	}

	failures := []struct {
		name   string
		f      func(context.Context, stdio, []string) int
		stdin  string
		args   []string
		code   int
		stderr string
	}{
		{"encrypt help", runSmimeEncrypt, "", []string{"-h"}, exitOK, "usage: smimeproxy smime encrypt"},
		{"decrypt help", runSmimeDecrypt, "", []string{"-h"}, exitOK, "usage: smimeproxy smime decrypt"},
		{"no recipient", runSmimeEncrypt, msg, nil, exitUsage, "-to"},
		{"bad cipher", runSmimeEncrypt, msg, []string{"-to", alice.EncCert, "-cipher", "des3"}, exitUsage, "unknown -cipher"},
		{"stray argument", runSmimeEncrypt, msg, []string{"-to", alice.EncCert, "file.eml"}, exitUsage, "-in"},
		{"unknown flag", runSmimeDecrypt, msg, []string{"-recip", alice.EncCert}, exitUsage, "flag provided but not defined"},
		{"missing key", runSmimeDecrypt, msg, []string{"-cert", alice.EncCert}, exitUsage, "-cert and -key"},
		{"missing cert file", runSmimeEncrypt, msg, []string{"-to", filepath.Join(dir, "nope.crt")}, exitFailed, "no such file"},
		{"key of another cert", runSmimeDecrypt, msg, []string{"-cert", alice.EncCert, "-key", bob.EncKey}, exitFailed, "does not belong"},
		{"not encrypted", runSmimeDecrypt, msg, []string{"-cert", alice.EncCert, "-key", alice.EncKey}, exitFailed, "smime verify"},
		{"garbage", runSmimeDecrypt, "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\n\n!!!!\n", []string{"-cert", alice.EncCert, "-key", alice.EncKey}, exitFailed, "malformed"},
	}
	for _, tc := range failures {
		code, _, stderr := runCmd(t, tc.f, []byte(tc.stdin), tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want %q)", tc.name, code, tc.code, stderr, tc.stderr)
		}
	}
}
