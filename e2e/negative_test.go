package e2e

import (
	"bytes"
	"path/filepath"
	"testing"

	"smimeproxy/internal/mailtest"
)

// Failures must be failures: exit 1 (operation failed), a reason on
// stderr, and no content on stdout that a caller could mistake for a
// verified or decrypted message.

func TestVerifyRejects(t *testing.T) {
	w := getWorld(t)
	p := mailtest.NewPKI(t)
	expired := party{User: p.User(t, "eve@example.test", mailtest.RSA, mailtest.Expired)}
	wrongEKU := party{User: p.User(t, "eve@example.test", mailtest.RSA, mailtest.WrongEKU)}
	for _, q := range []*party{&expired, &wrongEKU} {
		f, err := q.WriteFiles(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		q.F = f
	}
	tamper := func(msg []byte) []byte {
		out := bytes.Replace(msg, []byte("Interop test"), []byte("Interop tesT"), 1)
		if bytes.Equal(out, msg) {
			t.Fatal("tamper: body text not found in the signed message")
		}
		return out
	}
	cases := []struct {
		name   string
		signer party
		ours   bool // signed by smimeproxy (else by openssl)
		roots  string
		change func([]byte) []byte
	}{
		{"tampered-ours", w.alice, true, w.ca.Root, tamper},
		{"tampered-openssl", w.alice, false, w.ca.Root, tamper},
		{"tampered-openssl-ecdsa", w.bob, false, w.ca.Root, tamper},
		{"wrong-roots-ours", w.alice, true, w.otherRoot, nil},
		{"wrong-roots-openssl", w.bob, false, w.otherRoot, nil},
		{"expired-signer", expired, false, w.ca.Root, nil},
		{"signer-without-emailProtection", wrongEKU, false, w.ca.Root, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			body := bodyFor("negative-" + tc.name)
			var signed []byte
			if tc.ours {
				in := writeFile(t, filepath.Join(dir, "msg.eml"), message(tc.signer.Email, "rcpt@example.test", body))
				signed = mustCLI(t, nil, "smime", "sign", "-cert", tc.signer.F.SignFull, "-key", tc.signer.F.SignKey, "-in", in)
			} else {
				in := writeFile(t, filepath.Join(dir, "entity"), []byte(entity(body)))
				signed = mustOpenSSL(t, "cms", "-sign", "-in", in, "-signer", tc.signer.F.SignCert, "-inkey", tc.signer.F.SignKey,
					"-certfile", w.ca.Intermediate, "-from", tc.signer.Email, "-to", "rcpt@example.test", "-subject", "interop test")
			}
			// The unchanged message must verify with the right roots, so a
			// failure below is the change's doing, not a broken setup.
			if tc.roots == w.ca.Root && tc.change != nil {
				if r := cli(t, signed, "smime", "verify", "-roots", w.ca.Root); r.code != 0 {
					t.Fatalf("unchanged message does not verify: %s", r)
				}
			}
			if tc.change != nil {
				signed = tc.change(signed)
			}
			r := cli(t, signed, "smime", "verify", "-roots", tc.roots)
			if r.code != 1 {
				t.Fatalf("smime verify: %s; want exit 1", r)
			}
			if len(bytes.TrimSpace(r.stderr)) == 0 {
				t.Error("smime verify failed without a reason on stderr")
			}
			if bytes.Contains(r.stdout, []byte("negative-"+tc.name)) {
				t.Error("smime verify wrote the content of a message it rejects to stdout")
			}
		})
	}
}

func TestDecryptRejectsWrongKey(t *testing.T) {
	w := getWorld(t)
	dir := t.TempDir()
	in := writeFile(t, filepath.Join(dir, "entity"), []byte(entity(bodyFor("wrong-key"))))
	for _, tc := range []struct {
		name   string
		to     party
		cipher string
	}{
		{"rsa-aes256cbc", w.alice, "-aes-256-cbc"},
		{"rsa-aes256gcm", w.alice, "-aes-256-gcm"},
		{"ecdh-p256", w.bob, "-aes-256-cbc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := mustOpenSSL(t, "cms", "-encrypt", tc.cipher, "-in", in, tc.to.F.EncCert)
			r := cli(t, enc, "smime", "decrypt", "-cert", w.dave.F.EncCert, "-key", w.dave.F.EncKey)
			if r.code != 1 {
				t.Fatalf("decrypt with a key that is not a recipient: %s; want exit 1", r)
			}
			if !saysNotRecipient(r.stderr) {
				t.Errorf("stderr does not say the key is not a recipient: %s", r.stderr)
			}
			if len(r.stdout) != 0 {
				t.Errorf("failed decrypt wrote %d bytes to stdout", len(r.stdout))
			}
		})
	}
}

// saysNotRecipient reports whether an error text says the message is not
// addressed to the key given.
func saysNotRecipient(stderr []byte) bool {
	s := bytes.ToLower(stderr)
	for _, w := range []string{"recipient", "not encrypted to", "not addressed to"} {
		if bytes.Contains(s, []byte(w)) {
			return true
		}
	}
	return false
}

// TestVerifyWarnsAboutFrom: a good signature by someone other than the
// From address still verifies (exit 0, like openssl cms -verify), but
// smime verify says so on stderr; so does a signer certificate without an
// address (DESIGN.md, smime verify).
func TestVerifyWarnsAboutFrom(t *testing.T) {
	w := getWorld(t)
	p := mailtest.NewPKI(t)
	noMail := party{User: p.User(t, "nomail@example.test", mailtest.P256, mailtest.NoEmail)}
	f, err := noMail.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	noMail.F = f
	for _, tc := range []struct {
		name   string
		signer party
		from   string
		warn   string // must appear in the warning; "" for no warning at all
	}{
		{"from-matches", w.alice, w.alice.Email, ""},
		{"from-is-someone-else", w.alice, "mallory@example.test", "mallory@example.test"},
		{"signer-without-address", noMail, "nomail@example.test", "address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := writeFile(t, filepath.Join(t.TempDir(), "entity"), []byte(entity(bodyFor(tc.name))))
			signed := mustOpenSSL(t, "cms", "-sign", "-in", in, "-signer", tc.signer.F.SignCert, "-inkey", tc.signer.F.SignKey,
				"-certfile", w.ca.Intermediate, "-from", tc.from, "-to", "rcpt@example.test", "-subject", "interop test")
			r := cli(t, signed, "smime", "verify", "-roots", w.ca.Root)
			if r.code != 0 {
				t.Fatalf("smime verify: %s; want exit 0 (the signature is intact)", r)
			}
			wantContent(t, "smime verify", r.stdout, bodyFor(tc.name))
			warned := bytes.Contains(bytes.ToLower(r.stderr), []byte("warning"))
			switch {
			case tc.warn == "" && warned:
				t.Errorf("warning although From is the signer's: %s", r.stderr)
			case tc.warn != "" && (!warned || !bytes.Contains(r.stderr, []byte(tc.warn))):
				t.Errorf("no warning with %q: %s", tc.warn, r.stderr)
			}
		})
	}
}
