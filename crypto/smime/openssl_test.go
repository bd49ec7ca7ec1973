package smime

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"smimeproxy/internal/mailtest"
)

// Quick cross-checks against OpenSSL's CMS implementation (the full interop
// matrix, with gpgsm and the CLI, lives in e2e/).

// writeKeyFiles writes name.crt and name.key for each test key into dir.
func writeKeyFiles(t *testing.T, dir string, keys map[string]testKey) {
	t.Helper()
	for name, k := range keys {
		keyDER, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			t.Fatal(err)
		}
		crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.cert.Raw})
		key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		if err := os.WriteFile(filepath.Join(dir, name+".crt"), crt, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".key"), key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func runOpenSSL(t *testing.T, bin, dir string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// TestOpenSSLDecryptsOurs: every variant we write is read by openssl cms.
func TestOpenSSLDecryptsOurs(t *testing.T) {
	bin := mailtest.LookTool(t, "openssl", "openssl")
	keys := testKeys(t)
	dir := t.TempDir()
	writeKeyFiles(t, dir, keys)
	cases := []struct {
		key  string
		oaep bool
	}{{"rsa", false}, {"rsa", true}, {"p256", false}, {"p384", false}}
	for _, c := range OutboundCiphers() {
		for _, k := range cases {
			for _, ski := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s-oaep=%v/ski=%v", c, k.key, k.oaep, ski), func(t *testing.T) {
					der, err := EncryptEntity([]byte(testEntity), []Recipient{{Cert: keys[k.key].cert, OAEP: k.oaep}, {Cert: keys["rsa2"].cert}},
						EncryptOptions{Cipher: c, SubjectKeyID: ski})
					if err != nil {
						t.Fatal(err)
					}
					got := runOpenSSL(t, bin, dir, der, "cms", "-decrypt", "-binary", "-inform", "DER",
						"-recip", k.key+".crt", "-inkey", k.key+".key")
					if string(got) != testEntity {
						t.Fatalf("openssl decrypted %q", got)
					}
				})
			}
		}
	}
}

// TestWeDecryptOpenSSL: every variant openssl cms writes, DER and
// streamed BER (indefinite lengths, chunked OCTET STRINGs), is read here.
func TestWeDecryptOpenSSL(t *testing.T) {
	bin := mailtest.LookTool(t, "openssl", "openssl")
	keys := testKeys(t)
	dir := t.TempDir()
	writeKeyFiles(t, dir, keys)
	if err := os.WriteFile(filepath.Join(dir, "msg.txt"), []byte(testEntity), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		key    string
		args   []string
		cipher Cipher
		km     string
	}{
		{"enc-aes256cbc", "rsa", []string{"-aes-256-cbc"}, AES256CBC, "rsa-pkcs1v15"},
		{"enc-aes128cbc", "rsa", []string{"-aes-128-cbc"}, AES128CBC, "rsa-pkcs1v15"},
		{"enc-aes192cbc", "rsa", []string{"-aes-192-cbc"}, AES192CBC, "rsa-pkcs1v15"},
		{"enc-des3", "rsa", []string{"-des3"}, DES3CBC, "rsa-pkcs1v15"},
		{"enc-aes256gcm", "rsa", []string{"-aes-256-gcm"}, AES256GCM, "rsa-pkcs1v15"},
		{"enc-aes128gcm", "rsa", []string{"-aes-128-gcm"}, AES128GCM, "rsa-pkcs1v15"},
		{"enc-oaep-sha1", "rsa", []string{"-aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep"}, AES256CBC, "rsa-oaep-sha1"},
		{"enc-oaep-sha256", "rsa", []string{"-aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"}, AES256CBC, "rsa-oaep-sha256"},
		{"enc-ecdh-sha1kdf", "p256", []string{"-aes-256-cbc"}, AES256CBC, "ecdh-sha1kdf"},
		{"enc-ecdh-sha256kdf", "p256", []string{"-aes-128-cbc", "-keyopt", "ecdh_kdf_md:sha256"}, AES128CBC, "ecdh-sha256kdf"},
		{"enc-ecdh-p384-sha384kdf", "p384", []string{"-aes-256-cbc", "-keyopt", "ecdh_kdf_md:sha384"}, AES256CBC, "ecdh-sha384kdf"},
		{"enc-ecdh-gcm", "p256", []string{"-aes-256-gcm"}, AES256GCM, "ecdh-sha1kdf"},
		// OpenSSL wraps a 3DES content key with id-alg-CMS3DESwrap (RFC 3217).
		{"enc-ecdh-des3", "p384", []string{"-des3"}, DES3CBC, "ecdh-sha1kdf"},
	}
	for _, tc := range cases {
		for _, form := range [][]string{{"-outform", "DER"}, {"-outform", "DER", "-stream"}} {
			t.Run(tc.name+strings.Join(form[2:], ""), func(t *testing.T) {
				args := append([]string{"cms", "-encrypt", "-binary", "-in", "msg.txt"}, form...)
				args = append(args, "-recip", tc.key+".crt")
				args = append(args, tc.args...)
				der := runOpenSSL(t, bin, dir, nil, args...)
				d, err := DecryptDER(der, []KeyPair{keys["rsa2"].pair(), keys[tc.key].pair()})
				if err != nil {
					t.Fatal(err)
				}
				if string(d.Entity) != testEntity || d.Cipher != tc.cipher || d.KeyManagement != tc.km || d.Recipient != keys[tc.key].cert {
					t.Fatalf("got %q cipher %s km %s", d.Entity, d.Cipher, d.KeyManagement)
				}
			})
		}
	}
}
