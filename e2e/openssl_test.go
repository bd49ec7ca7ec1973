package e2e

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"path/filepath"
	"strings"
	"testing"
)

// Interop with OpenSSL 3.0 `openssl cms`, both directions, for every
// format of RFC 8551 the proxy writes or must read. Each case runs the real
// tool; the content that comes out must be the content that went in, and
// where the format is the point of the case, `openssl cms -cmsout -print`
// must show the algorithms the case claims.

func TestOpenSSLVerifiesOurSignatures(t *testing.T) {
	w := getWorld(t)
	cases := []struct {
		name   string
		signer party
		opaque bool
	}{
		{"detached-rsa", w.alice, false},
		{"opaque-rsa", w.alice, true},
		{"detached-ecdsa-p256", w.bob, false},
		{"opaque-ecdsa-p384", w.carol, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			body := bodyFor("ours-signed-" + tc.name)
			in := writeFile(t, filepath.Join(dir, "msg.eml"), message(tc.signer.Email, "rcpt@example.test", body))
			signed := filepath.Join(dir, "signed.eml")
			args := []string{"smime", "sign", "-cert", tc.signer.F.SignFull, "-key", tc.signer.F.SignKey, "-in", in, "-out", signed}
			if tc.opaque {
				args = append(args, "-opaque")
			}
			mustCLI(t, nil, args...)
			head := headerOf(readFile(t, signed))
			if tc.opaque && !(strings.Contains(head, "application/pkcs7-mime") && strings.Contains(head, "signed-data")) {
				t.Errorf("opaque signature has header\n%s", head)
			}
			if !tc.opaque && !(strings.Contains(head, "multipart/signed") && strings.Contains(head, "application/pkcs7-signature") && strings.Contains(head, "sha-256")) {
				t.Errorf("detached signature has header\n%s", head)
			}
			out, signerOut := filepath.Join(dir, "content"), filepath.Join(dir, "signer.pem")
			mustOpenSSL(t, "cms", "-verify", "-in", signed, "-CAfile", w.ca.Root, "-out", out, "-signer", signerOut)
			wantContent(t, "openssl cms -verify", readFile(t, out), body)
			if got := readFile(t, signerOut); !bytes.Contains(got, readFile(t, tc.signer.F.SignCert)) {
				t.Errorf("openssl reports signer\n%s\nwant %s", got, tc.signer.F.SignCert)
			}
		})
	}
}

func TestWeVerifyOpenSSLSignatures(t *testing.T) {
	w := getWorld(t)
	cases := []struct {
		name   string
		signer party
		extra  []string
	}{
		{"detached-rsa", w.alice, nil},
		{"opaque-rsa", w.alice, []string{"-nodetach"}},
		{"detached-ecdsa-p256", w.bob, nil},
		{"opaque-ecdsa-p256", w.bob, []string{"-nodetach"}},
		{"detached-ecdsa-p384", w.carol, nil},
		{"detached-rsa-sha512", w.alice, []string{"-md", "sha512"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			body := bodyFor("openssl-signed-" + tc.name)
			in := writeFile(t, filepath.Join(dir, "entity"), []byte(entity(body)))
			signed := filepath.Join(dir, "signed.eml")
			mustOpenSSL(t, append([]string{"cms", "-sign", "-in", in, "-signer", tc.signer.F.SignCert,
				"-inkey", tc.signer.F.SignKey, "-certfile", w.ca.Intermediate,
				"-from", tc.signer.Email, "-to", "rcpt@example.test", "-subject", "interop test", "-out", signed}, tc.extra...)...)
			out := filepath.Join(dir, "out.eml")
			r := cli(t, nil, "smime", "verify", "-roots", w.ca.Root, "-in", signed, "-out", out)
			if r.code != 0 {
				t.Fatalf("smime verify of openssl %s: %s", tc.name, r)
			}
			wantContent(t, "smime verify", readFile(t, out), body)
			if !bytes.Contains(r.stderr, []byte(tc.signer.Email)) {
				t.Errorf("smime verify does not name the signer %s on stderr: %s", tc.signer.Email, r.stderr)
			}
		})
	}
}

// encCase is one envelope format, written by us (flags) or by openssl
// (opensslArgs), with what `openssl cms -cmsout -print` must show for it.
type encCase struct {
	name        string
	to          []party
	flags       []string // smimeproxy smime encrypt flags
	opensslArgs []string // openssl cms -encrypt arguments before the certificates
	keyopts     []string // openssl: -keyopt arguments, given after each -recip
	want        []string // in `openssl cms -cmsout -print`
	smimeType   string
}

func TestOpenSSLDecryptsOurEnvelopes(t *testing.T) {
	w := getWorld(t)
	cases := []encCase{
		{name: "aes256cbc-rsa", to: []party{w.alice}, want: []string{"aes-256-cbc", "rsaEncryption"}, smimeType: "enveloped-data"},
		{name: "aes128gcm-rsa", to: []party{w.alice}, flags: []string{"-cipher", "aes128-gcm"}, want: []string{"aes-128-gcm", "id-smime-ct-authEnvelopedData"}, smimeType: "authEnveloped-data"},
		{name: "aes256gcm-rsa", to: []party{w.alice}, flags: []string{"-cipher", "aes256-gcm"}, want: []string{"aes-256-gcm", "id-smime-ct-authEnvelopedData"}, smimeType: "authEnveloped-data"},
		{name: "oaep-rsa", to: []party{w.alice}, flags: []string{"-oaep"}, want: []string{"rsaesOaep", "aes-256-cbc"}, smimeType: "enveloped-data"},
		{name: "ecdh-p256", to: []party{w.bob}, want: []string{"dhSinglePass-stdDH", "aes-256-cbc"}, smimeType: "enveloped-data"},
		{name: "ecdh-p384", to: []party{w.carol}, want: []string{"dhSinglePass-stdDH", "aes-256-cbc"}, smimeType: "enveloped-data"},
		{name: "ecdh-p256-aes256gcm", to: []party{w.bob}, flags: []string{"-cipher", "aes256-gcm"}, want: []string{"dhSinglePass-stdDH", "aes-256-gcm"}, smimeType: "authEnveloped-data"},
		{name: "rsa-and-ecdh", to: []party{w.alice, w.bob, w.carol}, want: []string{"rsaEncryption", "dhSinglePass-stdDH"}, smimeType: "enveloped-data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			body := bodyFor("ours-enc-" + tc.name)
			in := writeFile(t, filepath.Join(dir, "msg.eml"), message("sender@example.test", tc.to[0].Email, body))
			enc := filepath.Join(dir, "enc.eml")
			args := []string{"smime", "encrypt"}
			for _, p := range tc.to {
				args = append(args, "-to", p.F.EncCert)
			}
			mustCLI(t, nil, append(append(args, tc.flags...), "-in", in, "-out", enc)...)
			if head := headerOf(readFile(t, enc)); !strings.Contains(head, "smime-type="+tc.smimeType) {
				t.Errorf("header does not say smime-type=%s:\n%s", tc.smimeType, head)
			}
			printed := string(mustOpenSSL(t, "cms", "-cmsout", "-print", "-in", enc))
			for _, want := range tc.want {
				if !strings.Contains(printed, want) {
					t.Errorf("openssl cms -cmsout -print does not show %s", want)
				}
			}
			for _, p := range tc.to {
				out := filepath.Join(dir, "dec-"+p.Name)
				mustOpenSSL(t, "cms", "-decrypt", "-in", enc, "-recip", p.F.EncCert, "-inkey", p.F.EncKey, "-out", out)
				wantContent(t, "openssl cms -decrypt by "+p.Name, readFile(t, out), body)
			}
		})
	}
}

func TestWeDecryptOpenSSLEnvelopes(t *testing.T) {
	w := getWorld(t)
	oaep := []string{"-keyopt", "rsa_padding_mode:oaep"}
	cbc := []string{"-aes-256-cbc"}
	cases := []encCase{
		{name: "aes256cbc-rsa", to: []party{w.alice}, opensslArgs: []string{"-aes-256-cbc"}},
		{name: "aes192cbc-rsa", to: []party{w.alice}, opensslArgs: []string{"-aes-192-cbc"}},
		{name: "aes128cbc-rsa", to: []party{w.alice}, opensslArgs: []string{"-aes-128-cbc"}},
		{name: "des3-rsa", to: []party{w.alice}, opensslArgs: []string{"-des3"}},
		{name: "aes128gcm-rsa", to: []party{w.alice}, opensslArgs: []string{"-aes-128-gcm"}},
		{name: "aes256gcm-rsa", to: []party{w.alice}, opensslArgs: []string{"-aes-256-gcm"}},
		{name: "oaep-sha1", to: []party{w.alice}, opensslArgs: cbc, keyopts: oaep},
		{name: "oaep-sha256", to: []party{w.alice}, opensslArgs: cbc, keyopts: append([]string{"-keyopt", "rsa_oaep_md:sha256"}, oaep...)},
		{name: "ecdh-p256-sha1kdf", to: []party{w.bob}, opensslArgs: []string{"-aes-256-cbc"}},
		{name: "ecdh-p256-sha256kdf", to: []party{w.bob}, opensslArgs: []string{"-aes-128-cbc"}, keyopts: []string{"-keyopt", "ecdh_kdf_md:sha256"}},
		{name: "ecdh-p384-sha1kdf", to: []party{w.carol}, opensslArgs: []string{"-aes-256-cbc"}},
		{name: "ecdh-p384-sha384kdf", to: []party{w.carol}, opensslArgs: cbc, keyopts: []string{"-keyopt", "ecdh_kdf_md:sha384"}},
		{name: "ecdh-p256-aes256gcm", to: []party{w.bob}, opensslArgs: []string{"-aes-256-gcm"}},
		{name: "rsa-and-ecdh", to: []party{w.alice, w.bob, w.carol}, opensslArgs: []string{"-aes-256-cbc"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			body := bodyFor("openssl-enc-" + tc.name)
			in := writeFile(t, filepath.Join(dir, "entity"), []byte(entity(body)))
			enc := filepath.Join(dir, "enc.eml")
			args := append([]string{"cms", "-encrypt", "-in", in, "-out", enc,
				"-from", "sender@example.test", "-to", tc.to[0].Email, "-subject", "interop test"}, tc.opensslArgs...)
			for _, p := range tc.to {
				if tc.keyopts != nil {
					args = append(append(args, "-recip", p.F.EncCert), tc.keyopts...)
				} else {
					args = append(args, p.F.EncCert)
				}
			}
			mustOpenSSL(t, args...)
			for _, p := range tc.to {
				out := filepath.Join(dir, "dec-"+p.Name)
				r := cli(t, nil, "smime", "decrypt", "-cert", p.F.EncCert, "-key", p.F.EncKey, "-in", enc, "-out", out)
				if r.code != 0 {
					t.Fatalf("smime decrypt by %s: %s", p.Name, r)
				}
				wantContent(t, "smime decrypt by "+p.Name, readFile(t, out), body)
			}
		})
	}
}

// Triple wrapping (RFC 8551 §3.7): signed inside, enveloped outside.
func TestSignThenEncryptOpenSSL(t *testing.T) {
	w := getWorld(t)
	t.Run("ours-to-openssl", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		body := bodyFor("ours-sign-then-encrypt")
		in := writeFile(t, filepath.Join(dir, "msg.eml"), message(w.alice.Email, w.bob.Email, body))
		signed := mustCLI(t, nil, "smime", "sign", "-cert", w.alice.F.SignFull, "-key", w.alice.F.SignKey, "-in", in)
		enc := filepath.Join(dir, "enc.eml")
		mustCLI(t, signed, "smime", "encrypt", "-to", w.bob.F.EncCert, "-to", w.alice.F.EncCert, "-out", enc)
		inner := filepath.Join(dir, "inner.eml")
		mustOpenSSL(t, "cms", "-decrypt", "-in", enc, "-recip", w.bob.F.EncCert, "-inkey", w.bob.F.EncKey, "-out", inner)
		if !strings.Contains(headerOf(readFile(t, inner)), "multipart/signed") {
			t.Fatalf("decrypted inner entity is not multipart/signed:\n%s", readFile(t, inner))
		}
		out := filepath.Join(dir, "content")
		mustOpenSSL(t, "cms", "-verify", "-in", inner, "-CAfile", w.ca.Root, "-out", out)
		wantContent(t, "openssl decrypt+verify", readFile(t, out), body)
	})
	t.Run("openssl-to-ours", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		body := bodyFor("openssl-sign-then-encrypt")
		in := writeFile(t, filepath.Join(dir, "entity"), []byte(entity(body)))
		signed := filepath.Join(dir, "signed.eml")
		mustOpenSSL(t, "cms", "-sign", "-in", in, "-signer", w.alice.F.SignCert, "-inkey", w.alice.F.SignKey,
			"-certfile", w.ca.Intermediate, "-out", signed)
		enc := filepath.Join(dir, "enc.eml")
		mustOpenSSL(t, "cms", "-encrypt", "-aes-256-cbc", "-in", signed, "-out", enc,
			"-from", w.alice.Email, "-to", w.bob.Email, "-subject", "interop test", w.bob.F.EncCert, w.alice.F.EncCert)
		inner := mustCLI(t, nil, "smime", "decrypt", "-cert", w.bob.F.EncCert, "-key", w.bob.F.EncKey, "-in", enc)
		r := cli(t, inner, "smime", "verify", "-roots", w.ca.Root)
		if r.code != 0 {
			t.Fatalf("smime verify of the decrypted entity: %s", r)
		}
		wantContent(t, "smime decrypt+verify", r.stdout, body)
	})
}

// headerOf is the header block of a message (up to the first empty line).
func headerOf(msg []byte) string {
	msg = bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		msg = msg[:i]
	}
	return string(msg)
}

// TestOpenSSLParsesOurSignedAttributes: the RFC 8551 signed attributes
// and the certificates our signatures carry, as an independent parser
// sees them.
func TestOpenSSLParsesOurSignedAttributes(t *testing.T) {
	w := getWorld(t)
	dir := t.TempDir()
	in := writeFile(t, filepath.Join(dir, "msg.eml"), message(w.alice.Email, "rcpt@example.test", bodyFor("attributes")))
	signed := filepath.Join(dir, "signed.eml")
	mustCLI(t, nil, "smime", "sign", "-cert", w.alice.F.SignFull, "-key", w.alice.F.SignKey,
		"-enc-cert", w.alice.F.EncCert, "-in", in, "-out", signed)
	printed := string(mustOpenSSL(t, "cms", "-cmsout", "-print", "-in", signed))
	attrs := printed[strings.Index(printed, "signedAttrs"):]
	for _, want := range []string{
		"contentType (1.2.840.113549.1.9.3)",
		"signingTime (1.2.840.113549.1.9.5)",
		"messageDigest (1.2.840.113549.1.9.4)",
		"(1.3.6.1.4.1.311.16.4)",                                 // Microsoft encryption key preference
		"id-smime-aa-encrypKeyPref (1.2.840.113549.1.9.16.2.11)", // RFC 8551 §2.5.3
		"S/MIME Capabilities (1.2.840.113549.1.9.15)",
		":aes-256-gcm", ":aes-128-gcm", ":aes-256-cbc", ":aes-128-cbc", ":rsaesOaep",
	} {
		if !strings.Contains(attrs, want) {
			t.Errorf("openssl does not show signed attribute %s", want)
		}
	}
	certs := filepath.Join(dir, "certs.pem")
	mustOpenSSL(t, "cms", "-verify", "-in", signed, "-CAfile", w.ca.Root, "-out", filepath.Join(dir, "content"), "-certsout", certs)
	got := readFile(t, certs)
	for _, c := range []string{w.alice.F.SignCert, w.alice.F.EncCert, w.ca.Intermediate} {
		if !bytes.Contains(got, readFile(t, c)) {
			t.Errorf("signature does not carry %s", filepath.Base(c))
		}
	}
}

// TestOpenSSLVerifiesCanonicalised: a message with LF line ends and an
// 8-bit body is canonicalised before signing (CRLF, 8bit re-encoded), so
// the signature openssl checks is over what a 7-bit transport delivers.
func TestOpenSSLVerifiesCanonicalised(t *testing.T) {
	w := getWorld(t)
	dir := t.TempDir()
	msg := "From: " + w.alice.Email + "\nTo: rcpt@example.test\nSubject: 8bit\nMIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGr\xc3\xbc\xc3\x9fe aus M\xc3\xbcnchen\nFrom the second line.\n"
	in := writeFile(t, filepath.Join(dir, "msg.eml"), []byte(msg))
	signed := filepath.Join(dir, "signed.eml")
	mustCLI(t, nil, "smime", "sign", "-cert", w.alice.F.SignFull, "-key", w.alice.F.SignKey, "-in", in, "-out", signed)
	raw := readFile(t, signed)
	for i, c := range raw {
		if c >= 0x80 {
			t.Fatalf("signed message holds an 8-bit byte at %d", i)
		}
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			t.Fatalf("signed message holds a bare LF at %d", i)
		}
	}
	out := filepath.Join(dir, "content")
	mustOpenSSL(t, "cms", "-verify", "-in", signed, "-CAfile", w.ca.Root, "-out", out)
	// The content openssl hands out is the canonical entity: its body,
	// transfer-decoded, is the original text with CRLF line ends.
	m, err := mail.ReadMessage(bytes.NewReader(readFile(t, out)))
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	switch cte := strings.ToLower(m.Header.Get("Content-Transfer-Encoding")); cte {
	case "quoted-printable":
		body, err = io.ReadAll(quotedprintable.NewReader(m.Body))
	case "base64":
		body, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, m.Body))
	default:
		t.Fatalf("8-bit body not re-encoded: Content-Transfer-Encoding %q", cte)
	}
	if want := "Gr\xc3\xbc\xc3\x9fe aus M\xc3\xbcnchen\r\nFrom the second line.\r\n"; err != nil || string(body) != want {
		t.Errorf("decoded signed body %q (%v), want %q", body, err, want)
	}
	r := cli(t, readFile(t, signed), "smime", "verify", "-roots", w.ca.Root)
	if r.code != 0 {
		t.Fatalf("smime verify of its own canonicalised signature: %s", r)
	}
}
