package legacy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"
)

// TestReadFormats reads every file format openssl writes for the same
// keys and checks the keys and certificates that come back.
func TestReadFormats(t *testing.T) {
	p := newPKI(t)
	alice, bob, ca := p.cert("alice-sign.crt"), p.cert("bob.crt"), p.cert("ca.crt")

	p.run("pkcs12", "-export", "-inkey", "alice-sign.key", "-in", "alice-sign.crt", "-certfile", "ca.crt",
		"-name", "Alice Example", "-passout", "pass:p12pw", "-out", "modern.p12")
	p.run("pkcs12", "-export", "-legacy", "-inkey", "alice-sign.key", "-in", "alice-sign.crt", "-certfile", "ca.crt",
		"-name", "Alice Example", "-passout", "pass:p12pw", "-out", "legacy.p12")
	p.run("pkcs12", "-export", "-inkey", "bob.key", "-in", "bob.crt", "-passout", "pass:", "-out", "nopass.p12")
	p.run("pkcs12", "-export", "-inkey", "bob.key", "-in", "bob.crt", "-keypbe", "NONE", "-certpbe", "NONE",
		"-passout", "pass:p12pw", "-out", "plainbags.p12")
	p.run("rsa", "-in", "alice-sign.key", "-traditional", "-out", "pkcs1.pem")
	p.run("rsa", "-in", "alice-sign.key", "-traditional", "-aes256", "-passout", "pass:pempw", "-out", "pkcs1-enc.pem")
	p.run("ec", "-in", "bob.key", "-out", "sec1.pem")
	p.run("pkcs8", "-topk8", "-in", "alice-sign.key", "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256", "-passout", "pass:pempw", "-out", "pkcs8-pbes2.pem")
	p.run("pkcs8", "-topk8", "-in", "alice-sign.key", "-v2", "des3", "-passout", "pass:pempw", "-out", "pkcs8-pbes2-des3.pem")
	p.run("pkcs8", "-topk8", "-in", "bob.key", "-v1", "PBE-SHA1-3DES", "-passout", "pass:pempw", "-out", "pkcs8-pbe-3des.pem")
	p.run("pkcs8", "-topk8", "-in", "bob.key", "-nocrypt", "-outform", "DER", "-out", "pkcs8.der")
	p.run("pkcs8", "-topk8", "-in", "bob.key", "-v2", "aes-128-cbc", "-passout", "pass:pempw", "-outform", "DER", "-out", "pkcs8-enc.der")
	p.run("x509", "-in", "alice-sign.crt", "-outform", "DER", "-out", "cert.der")
	p.run("crl2pkcs7", "-nocrl", "-certfile", "alice-sign.crt", "-certfile", "ca.crt", "-out", "certs.p7b")
	p.run("crl2pkcs7", "-nocrl", "-certfile", "bob.crt", "-outform", "DER", "-out", "certs-der.p7b")
	combined := append(append(p.read("alice-sign.key"), p.read("alice-sign.crt")...), p.read("ca.crt")...)

	tests := []struct {
		file     string
		data     []byte
		password string
		format   Format
		keyFor   *x509.Certificate // the key must belong to this certificate
		certs    []*x509.Certificate
	}{
		{"modern.p12", nil, "p12pw", FormatPKCS12, alice, []*x509.Certificate{alice, ca}},
		{"legacy.p12", nil, "p12pw", FormatPKCS12, alice, []*x509.Certificate{alice, ca}},
		{"nopass.p12", nil, "", FormatPKCS12, bob, []*x509.Certificate{bob}},
		{"plainbags.p12", nil, "p12pw", FormatPKCS12, bob, []*x509.Certificate{bob}},
		{"pkcs1.pem", nil, "", FormatPEM, alice, nil},
		{"pkcs1-enc.pem", nil, "pempw", FormatPEM, alice, nil},
		{"sec1.pem", nil, "", FormatPEM, bob, nil},
		{"alice-sign.key", nil, "", FormatPEM, alice, nil},
		{"pkcs8-pbes2.pem", nil, "pempw", FormatPEM, alice, nil},
		{"pkcs8-pbes2-des3.pem", nil, "pempw", FormatPEM, alice, nil},
		{"pkcs8-pbe-3des.pem", nil, "pempw", FormatPEM, bob, nil},
		{"pkcs8.der", nil, "", FormatDER, bob, nil},
		{"pkcs8-enc.der", nil, "pempw", FormatDER, bob, nil},
		{"cert.der", nil, "", FormatDER, nil, []*x509.Certificate{alice}},
		{"certs.p7b", nil, "", FormatPEM, nil, []*x509.Certificate{alice, ca}},
		{"certs-der.p7b", nil, "", FormatDER, nil, []*x509.Certificate{bob}},
		{"key+certs.pem", combined, "", FormatPEM, alice, []*x509.Certificate{alice, ca}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data := tc.data
			if data == nil {
				data = p.read(tc.file)
			}
			b, err := Read(data, tc.password)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if b.Format != tc.format {
				t.Errorf("format %s, want %s", b.Format, tc.format)
			}
			wantKeys := 0
			if tc.keyFor != nil {
				wantKeys = 1
			}
			if len(b.Keys) != wantKeys {
				t.Fatalf("%d keys, want %d", len(b.Keys), wantKeys)
			}
			if tc.keyFor != nil && !samePublicKey(b.Keys[0].Public(), tc.keyFor.PublicKey) {
				t.Error("key does not belong to the expected certificate")
			}
			if len(b.Certs) != len(tc.certs) {
				t.Fatalf("%d certificates, want %d", len(b.Certs), len(tc.certs))
			}
			for i, c := range tc.certs {
				if !b.Certs[i].Equal(c) {
					t.Errorf("certificate %d is %s, want %s", i, b.Certs[i].Subject, c.Subject)
				}
			}
			if tc.password != "" {
				if _, err := Read(data, tc.password+"x"); !errors.Is(err, ErrWrongPassword) {
					t.Errorf("wrong password: err %v, want ErrWrongPassword", err)
				}
			}
		})
	}

	// The legacy file really uses the legacy algorithms.
	info := p.run("pkcs12", "-in", "legacy.p12", "-info", "-noout", "-passin", "pass:p12pw", "-legacy")
	for _, w := range []string{"MAC: sha1", "pbeWithSHA1And40BitRC2-CBC", "pbeWithSHA1And3-KeyTripleDES-CBC"} {
		if !strings.Contains(info, w) {
			t.Errorf("legacy.p12 info lacks %q:\n%s", w, info)
		}
	}
	info = p.run("pkcs12", "-in", "modern.p12", "-info", "-noout", "-passin", "pass:p12pw")
	for _, w := range []string{"MAC: sha256", "PBES2, PBKDF2, AES-256-CBC"} {
		if !strings.Contains(info, w) {
			t.Errorf("modern.p12 info lacks %q:\n%s", w, info)
		}
	}
}

// joinPFX builds one PKCS#12 file from the safes of several files made
// with the same password, with a fresh HMAC-SHA-256 MAC: OpenSSL cannot
// write more than one key into a file, other tools (Windows, NSS) can.
func joinPFX(t *testing.T, password string, files ...[]byte) []byte {
	t.Helper()
	var safes []byte
	for _, f := range files {
		var pfx pfxPDU
		if err := unmarshalAll(f, &pfx); err != nil {
			t.Fatal(err)
		}
		var authSafe []byte
		if err := unmarshalAll(pfx.AuthSafe.Content.Bytes, &authSafe); err != nil {
			t.Fatal(err)
		}
		var items []asn1.RawValue
		if err := unmarshalAll(authSafe, &items); err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			safes = append(safes, it.FullBytes...)
		}
	}
	authSafe, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: safes})
	if err != nil {
		t.Fatal(err)
	}
	return pfxWithMAC(t, authSafe, bmpPassword(password))
}

// pfxWithMAC wraps an encoded AuthenticatedSafe into a PFX with an
// HMAC-SHA-256 MAC under the password as PKCS#12 encodes it (bmpPassword).
func pfxWithMAC(t *testing.T, authSafe []byte, password []byte) []byte {
	t.Helper()
	octets, err := asn1.Marshal(authSafe)
	if err != nil {
		t.Fatal(err)
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	key := pkcs12KDF(sha256.New, 64, 3, password, salt, 2048, 32)
	mac := hmac.New(sha256.New, key)
	mac.Write(authSafe)
	type outCI struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue
	}
	type outPFX struct {
		Version  int
		AuthSafe outCI
		MacData  macData
	}
	der, err := asn1.Marshal(outPFX{
		Version:  3,
		AuthSafe: outCI{oidData, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: octets}},
		MacData: macData{
			Mac:        digestInfo{Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1.NullRawValue}, Digest: mac.Sum(nil)},
			MacSalt:    salt,
			Iterations: 2048,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestMultiKeyPKCS12 reads three keys from one file (two of them from a
// legacy RC2/3DES file, one from a PBES2/AES file) and sorts them into
// signing and encryption pairs.
func TestMultiKeyPKCS12(t *testing.T) {
	p := newPKI(t)
	aliceSign, aliceEnc, bob, ca := p.cert("alice-sign.crt"), p.cert("alice-enc.crt"), p.cert("bob.crt"), p.cert("ca.crt")
	p.run("pkcs12", "-export", "-legacy", "-inkey", "alice-sign.key", "-in", "alice-sign.crt", "-certfile", "ca.crt",
		"-name", "Alice signing", "-passout", "pass:pw", "-out", "a.p12")
	p.run("pkcs12", "-export", "-legacy", "-inkey", "alice-enc.key", "-in", "alice-enc.crt",
		"-name", "Alice encryption", "-passout", "pass:pw", "-out", "b.p12")
	p.run("pkcs12", "-export", "-inkey", "bob.key", "-in", "bob.crt", "-name", "Bob", "-passout", "pass:pw", "-out", "c.p12")
	joined := joinPFX(t, "pw", p.read("a.p12"), p.read("b.p12"), p.read("c.p12"))

	// openssl reads what we joined: the test file is a valid PKCS#12.
	if err := writeFile(p.path("joined.p12"), joined); err != nil {
		t.Fatal(err)
	}
	if out := p.run("pkcs12", "-in", "joined.p12", "-passin", "pass:pw", "-nodes", "-legacy"); strings.Count(out, "BEGIN PRIVATE KEY") != 3 {
		t.Fatalf("openssl finds %d keys in the joined file", strings.Count(out, "BEGIN PRIVATE KEY"))
	}

	b, err := Read(joined, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Keys) != 3 || len(b.Certs) != 4 {
		t.Fatalf("%d keys, %d certificates; want 3 and 4", len(b.Keys), len(b.Certs))
	}
	m := b.Pairs()
	if len(m.Pairs) != 3 || len(m.KeysWithoutCert) != 0 || len(m.Loose) != 1 || !m.Loose[0].Equal(ca) {
		t.Fatalf("pairs %d, keys without certificate %d, loose %d", len(m.Pairs), len(m.KeysWithoutCert), len(m.Loose))
	}
	for _, pr := range m.Pairs {
		if !samePublicKey(pr.Key.Public(), pr.Cert.PublicKey) {
			t.Errorf("pair %q: key and certificate differ", pr.Name)
		}
		if len(pr.Chain) != 1 || !pr.Chain[0].Equal(ca) {
			t.Errorf("pair %q: chain of %d", pr.Name, len(pr.Chain))
		}
	}
	if m.Signing == nil || !m.Signing.Cert.Equal(aliceSign) || m.Signing.Name != "Alice signing" {
		t.Errorf("signing pair %+v, want Alice's signing certificate", m.Signing)
	}
	if m.Encryption == nil || !m.Encryption.Cert.Equal(aliceEnc) || m.Encryption.Name != "Alice encryption" {
		t.Errorf("encryption pair %+v, want Alice's encryption certificate", m.Encryption)
	}
	if m.Pairs[2].Name != "Bob" || !m.Pairs[2].Cert.Equal(bob) || !m.Pairs[2].CanSign() || !m.Pairs[2].CanEncrypt() {
		t.Errorf("Bob's dual-use pair not recognised: %+v", m.Pairs[2])
	}
	if _, err := Read(joined, "wrong"); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("wrong password: %v", err)
	}
}

// TestEmptyPasswordAsNoBytes: some writers derive the MAC key of a file
// with an empty password from zero bytes instead of the two-byte empty
// BMPString; Read accepts both for the empty password and nothing else.
func TestEmptyPasswordAsNoBytes(t *testing.T) {
	p := newPKI(t)
	p.run("pkcs12", "-export", "-inkey", "bob.key", "-in", "bob.crt", "-keypbe", "NONE", "-certpbe", "NONE",
		"-passout", "pass:", "-out", "empty-src.p12")
	var pfx pfxPDU
	if err := unmarshalAll(p.read("empty-src.p12"), &pfx); err != nil {
		t.Fatal(err)
	}
	var authSafe []byte
	if err := unmarshalAll(pfx.AuthSafe.Content.Bytes, &authSafe); err != nil {
		t.Fatal(err)
	}
	for name, pw := range map[string][]byte{"no bytes": nil, "empty BMPString": bmpPassword("")} {
		data := pfxWithMAC(t, authSafe, pw)
		b, err := Read(data, "")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(b.Keys) != 1 || !samePublicKey(b.Keys[0].Public(), p.cert("bob.crt").PublicKey) {
			t.Errorf("%s: %d keys", name, len(b.Keys))
		}
		if _, err := Read(data, " "); !errors.Is(err, ErrWrongPassword) {
			t.Errorf("%s: a blank password opened it: %v", name, err)
		}
	}
}
