package imap

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"smimeproxy/internal/mailtest"
)

// Messages made by an independent implementation, `openssl cms`, as
// senders' clients make them: every kind opens with the right status.
func TestViewOpenSSLMessages(t *testing.T) {
	bin := mailtest.LookTool(t, "openssl", "openssl")
	w := newSVWorld(t)
	dir := t.TempDir()
	files := map[string]mailtest.UserFiles{}
	for name, u := range map[string]*mailtest.User{"alice": w.alice, "bob": w.bob, "bobold": w.bobOld} {
		f, err := u.WriteFiles(dir)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}
	alice, bob, bobOld := files["alice"], files["bob"], files["bobold"]
	entity := filepath.Join(dir, "entity.txt")
	if err := os.WriteFile(entity, []byte("Content-Type: text/plain; charset=us-ascii\r\n\r\n"+svSecret+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// run pipes stdin through openssl cms with args.
	run := func(t *testing.T, stdin []byte, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(t.Context(), bin, append([]string{"cms"}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Logf("openssl cms %s: %v: %s", strings.Join(args, " "), err, stderr.String())
		}
		return out, err
	}
	in, _ := os.ReadFile(entity)
	headers := []string{"-from", "alice@example.test", "-to", "bob@example.test", "-subject", "plans"}
	sign := []string{"-sign", "-signer", alice.SignCert, "-inkey", alice.SignKey, "-certfile", alice.Chain}
	encryptTo := func(cipher, cert string) []string { return []string{"-encrypt", "-" + cipher, cert} }

	type step []string
	cases := []struct {
		name   string
		steps  []step // each step's output is the next one's input; headers go on the last
		status string
		exact  bool
	}{
		{"aes-256-cbc to the old rsa key", []step{encryptTo("aes-256-cbc", bobOld.EncCert)},
			"decrypted; signature absent; not-integrity-protected", false},
		{"aes-256-gcm ecdh to the current key", []step{encryptTo("aes-256-gcm", bob.EncCert)},
			"decrypted; signature absent", false},
		{"des3", []step{encryptTo("des3", bobOld.EncCert)},
			"decrypted; signature absent; not-integrity-protected", false},
		{"rsa-oaep", []step{{"-encrypt", "-aes-128-cbc", "-recip", bobOld.EncCert, "-keyopt", "rsa_padding_mode:oaep"}},
			"decrypted; signature absent; not-integrity-protected", false},
		{"detached signed", []step{sign},
			"not-encrypted; signature valid; signer=alice@example.test", true},
		{"opaque signed", []step{append(sign, "-nodetach")},
			"not-encrypted; signature valid; signer=alice@example.test", false},
		{"signed then encrypted", []step{sign, encryptTo("aes-256-cbc", bob.EncCert)},
			"decrypted; signature valid; signer=alice@example.test", false},
		{"triple wrap", []step{sign, encryptTo("aes-256-gcm", bob.EncCert), append(sign, "-nodetach")},
			"decrypted; signature valid; signer=alice@example.test", false},
		{"rc2-40 (unknown here)", []step{{"-encrypt", "-rc2-40", "-provider", "legacy", "-provider", "default", bobOld.EncCert}},
			"not-decrypted; signature unknown; error=unsupported-algorithm", true},
	}
	v := w.viewer(t, 0)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := in
			for j, s := range tc.steps {
				args := append([]string{}, s...)
				if j == len(tc.steps)-1 {
					args = append(append([]string{}, headers...), args...)
				}
				out, err := run(t, msg, args...)
				if err != nil {
					if strings.Contains(tc.name, "rc2") {
						// RC2 needs OpenSSL's legacy provider; without it the
						// case is a missing tool, which fails under
						// SMIMEPROXY_REQUIRE_TOOLS=1 instead of passing silently.
						mailtest.MissingTool(t, "openssl with the legacy provider (RC2): "+err.Error())
					}
					t.Fatal(err)
				}
				msg = out
			}
			view, err := v.View(context.Background(), svKey(uint32(100+i)), msg)
			if err != nil {
				t.Fatal(err)
			}
			if got := svStatus(t, view.Raw); got != tc.status {
				t.Fatalf("status %q, want %q", got, tc.status)
			}
			switch {
			case tc.exact:
				eol := "\r\n" // as the message's first line ends
				if i := bytes.IndexByte(msg, '\n'); i > 0 && msg[i-1] != '\r' {
					eol = "\n"
				}
				if !bytes.Equal(view.Raw, append([]byte(StatusHeader+": "+tc.status+eol), msg...)) {
					t.Fatalf("not the original plus the status:\n%s", view.Raw)
				}
			case !bytes.Contains(view.Raw, []byte(svSecret)):
				t.Fatalf("plaintext missing:\n%s", view.Raw)
			}
		})
	}
}
