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

func runSignCLI(t *testing.T, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = dispatch(context.Background(), stdio{bytes.NewReader(stdin), &out, &errb}, "smimeproxy", topCommands(), args)
	return code, out.String(), errb.String()
}

const cliMsg = "From: Alice <alice@example.test>\nTo: bob@example.test\nSubject: cli\n\nHello from the command line\n"

func TestSmimeSignVerifyCLI(t *testing.T) {
	pki := mailtest.NewPKI(t)
	dir := t.TempDir()
	pf, err := pki.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := pki.User(t, "alice@example.test", mailtest.RSA).WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := mailtest.OtherPKI(t).WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "msg.eml")
	if err := os.WriteFile(in, []byte(cliMsg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, opaque := range []bool{false, true} {
		args := []string{"smime", "sign", "-cert", alice.SignCert, "-key", alice.SignKey, "-chain", alice.Chain, "-enc-cert", alice.EncCert, "-in", in}
		if opaque {
			args = append(args, "-opaque")
		}
		code, signedMsg, stderr := runSignCLI(t, nil, args...)
		if code != 0 {
			t.Fatalf("sign (opaque=%v) exit %d: %s", opaque, code, stderr)
		}
		wantCT := map[bool]string{false: "multipart/signed", true: "application/pkcs7-mime; smime-type=signed-data"}[opaque]
		if !strings.Contains(signedMsg, "Content-Type: "+wantCT) || !strings.HasPrefix(signedMsg, "From: Alice") {
			t.Fatalf("signed output:\n%.300s", signedMsg)
		}

		out := filepath.Join(dir, "content.eml")
		code, _, stderr = runSignCLI(t, []byte(signedMsg), "smime", "verify", "-roots", pf.Root, "-out", out)
		if code != 0 || !strings.Contains(stderr, "alice@example.test") || !strings.Contains(stderr, "verification successful") {
			t.Fatalf("verify exit %d: %s", code, stderr)
		}
		content, err := os.ReadFile(out)
		if err != nil || !strings.Contains(string(content), "Hello from the command line\r\n") || strings.Contains(string(content), "Subject:") {
			t.Fatalf("content = %q, %v", content, err)
		}

		// Wrong roots: exit 1, nothing written to stdout.
		code, stdout, stderr := runSignCLI(t, []byte(signedMsg), "smime", "verify", "-roots", other.Root)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "not trusted") {
			t.Fatalf("wrong roots: exit %d, stdout %q, stderr %s", code, stdout, stderr)
		}
		// Tampered: exit 1.
		tampered := strings.Replace(signedMsg, "Hello from", "Jello from", 1)
		if opaque {
			tampered = strings.Replace(signedMsg, "MII", "MIJ", 1)
		}
		if code, _, stderr := runSignCLI(t, []byte(tampered), "smime", "verify", "-roots", pf.Root); code != 1 {
			t.Fatalf("tampered: exit %d: %s", code, stderr)
		}
		// From mismatch: still valid (exit 0) but a warning.
		forged := strings.Replace(signedMsg, "From: Alice <alice@example.test>", "From: mallory@example.test", 1)
		code, _, stderr = runSignCLI(t, []byte(forged), "smime", "verify", "-roots", pf.Root)
		if code != 0 || !strings.Contains(stderr, "warning: From address mallory@example.test is not the signer's") {
			t.Fatalf("From mismatch: exit %d: %s", code, stderr)
		}
	}
}

func TestSmimeSignVerifyCLIUsage(t *testing.T) {
	pki := mailtest.NewPKI(t)
	dir := t.TempDir()
	alice, err := pki.User(t, "alice@example.test", mailtest.RSA).WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantErr  string
	}{
		{"sign help", []string{"smime", "sign", "-h"}, "", 0, "usage: smimeproxy smime sign"},
		{"verify help", []string{"smime", "verify", "-h"}, "", 0, "usage: smimeproxy smime verify"},
		{"sign without key", []string{"smime", "sign", "-cert", alice.SignCert}, "", 2, "-cert and -key are both required"},
		{"verify without roots", []string{"smime", "verify"}, "", 2, "-roots is required"},
		{"unknown flag", []string{"smime", "sign", "-bogus"}, "", 2, "flag provided but not defined"},
		{"stray argument", []string{"smime", "verify", "-roots", alice.Chain, "msg.eml"}, "", 2, "input is given with -in"},
		{"key of another cert", []string{"smime", "sign", "-cert", alice.SignCert, "-key", alice.EncKey}, cliMsg, 1, "does not belong to the certificate"},
		{"missing cert file", []string{"smime", "sign", "-cert", filepath.Join(dir, "none.crt"), "-key", alice.SignKey}, cliMsg, 1, "no such file"},
		{"verify unsigned", []string{"smime", "verify", "-roots", alice.Chain}, cliMsg, 1, "not S/MIME signed"},
		{"verify garbage signature", []string{"smime", "verify", "-roots", alice.Chain},
			"Content-Type: application/pkcs7-mime; smime-type=signed-data\n\nMIIBAAAA\n", 1, "damaged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runSignCLI(t, []byte(tt.stdin), tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tt.wantCode, stderr, tt.wantErr)
			}
		})
	}
}
