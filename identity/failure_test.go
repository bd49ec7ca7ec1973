package identity

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"testing"
)

var errInjected = errors.New("injected failure")

// A failure at any step of the enrolment transaction leaves no Digital ID
// and the token redeemable.
func TestEnrolmentFailureLeavesNothing(t *testing.T) {
	testEnrolmentFailure(t, func(t *testing.T) *fixture { return newFixture(t, nil) })
}

func testEnrolmentFailure(t *testing.T, mk func(t *testing.T) *fixture) {
	for _, step := range []string{"consume token", "insert identity", "insert key", "commit"} {
		t.Run(step, func(t *testing.T) {
			f := mk(t)
			ctx := context.Background()
			const alice = "alice@example.test"
			tok := f.token(t, alice, PurposeEnroll)
			f.svc.hook = func(s string) error {
				if s == step {
					return errInjected
				}
				return nil
			}
			req := EnrollRequest{Email: alice, Token: tok, Name: "Alice", Password: "correct horse"}
			if _, err := f.svc.Enroll(ctx, req); !errors.Is(err, errInjected) {
				t.Fatalf("enrol with failing %q: %v", step, err)
			}
			if _, err := f.svc.Show(ctx, alice); !errors.Is(err, ErrNoIdentity) {
				t.Fatalf("a half-made Digital ID is left: %v", err)
			}
			ids, _ := f.rec.Identities(ctx)
			if len(ids) != 0 {
				t.Fatalf("records hold %d IDs", len(ids))
			}
			f.svc.hook = nil
			if _, err := f.svc.Enroll(ctx, req); err != nil {
				t.Fatalf("the token must still be redeemable: %v", err)
			}
		})
	}
}

// The default key type is RSA-2048, with keyEncipherment on the
// encryption certificate.
func TestEnrollRSADefault(t *testing.T) {
	f := newFixture(t, nil, func(o *Options) { o.KeyType = "" })
	res := f.enroll(t, "rsa@example.test", "correct horse")
	for _, c := range []*x509.Certificate{res.Identity.SigningCert, res.Identity.EncryptionCert} {
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok || pub.N.BitLen() != 2048 {
			t.Fatalf("%s: key %T, want RSA-2048", c.Subject, c.PublicKey)
		}
	}
	if res.Identity.EncryptionCert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Fatal("RSA encryption certificate without keyEncipherment")
	}
	der := encryptTo(t, res.Identity.EncryptionCert, "rsa mail")
	if got := decryptAs(t, f, "rsa@example.test", der); !bytes.Contains([]byte(got), []byte("rsa mail")) {
		t.Fatal("RSA decryption")
	}
}

// secretScan reports where any of needles occurs in haystack.
func secretScan(t *testing.T, what string, haystack []byte, needles map[string][]byte) {
	t.Helper()
	for _, name := range secretsFound(haystack, needles) {
		t.Errorf("%s contains %s", what, name)
	}
}

func secretsFound(haystack []byte, needles map[string][]byte) []string {
	var found []string
	for name, n := range needles {
		if len(n) > 0 && bytes.Contains(haystack, n) {
			found = append(found, name)
		}
	}
	return found
}

// secretsOf gathers what must never be stored or logged for an enrolled
// mailbox: the password and every private key's DER (PKCS#8 and the inner
// key forms).
func secretsOf(t *testing.T, f *fixture, email string, password Secret) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{"password": []byte(password)}
	_, signer, _, _, err := f.svc.SigningKey(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := f.svc.DecryptionKeys(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	all := []any{signer}
	for _, k := range keys {
		all = append(all, k.Key)
	}
	for i, k := range all {
		p8, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("key %d PKCS#8", i)] = p8
		// The bare secret numbers, in whatever wrapping they might hide.
		switch k := k.(type) {
		case *ecdsa.PrivateKey:
			b, _ := k.Bytes()
			out[fmt.Sprintf("key %d EC scalar", i)] = b
		case *rsa.PrivateKey:
			out[fmt.Sprintf("key %d RSA d", i)] = k.D.Bytes()
			out[fmt.Sprintf("key %d RSA p", i)] = k.Primes[0].Bytes()
		default:
			t.Fatalf("unexpected key type %T", k)
		}
	}
	// Text forms too: base64 (JSON, PEM) and hex.
	for name, v := range maps.Clone(out) {
		out[name+" base64"] = []byte(base64.StdEncoding.EncodeToString(v))
		out[name+" hex"] = []byte(hex.EncodeToString(v))
	}
	return out
}

// rawDump concatenates every byte and string field of the in-memory
// records as they are, the way a database file holds them.
func rawDump(st memState) []byte {
	var b bytes.Buffer
	for k, v := range st.settings {
		b.WriteString(k)
		b.Write(v)
	}
	for _, r := range st.ids {
		b.WriteString(r.ID + r.Email + r.Name)
		b.Write(r.Master)
		b.Write(r.RootDER)
		for _, c := range r.Chain {
			b.Write(c)
		}
	}
	for _, k := range st.keys {
		b.Write(k.CertDER)
		b.Write(k.Sealed)
		b.Write(k.Escrow)
	}
	for _, t := range st.tokens {
		b.Write(t.Hash)
	}
	return b.Bytes()
}

func TestNoSecretsInRecordsLogsOrReplies(t *testing.T) {
	mem := newMemRecords()
	f := newFixture(t, mem)
	const alice = "alice@example.test"
	const pw Secret = "very secret password 42"
	res := f.enroll(t, alice, pw)
	secrets := secretsOf(t, f, alice, pw)
	// Control: the scan finds a key where there is one.
	if len(secretsFound(append([]byte("x"), secrets["key 1 PKCS#8 base64"]...), secrets)) == 0 {
		t.Fatal("the scan misses a planted key")
	}
	dump := rawDump(mem.st)
	if !bytes.Contains(dump, res.Identity.EncryptionCert.Raw) {
		t.Fatal("the dump lacks the certificates; the scan proves nothing")
	}
	secretScan(t, "the records", dump, secrets)
	secretScan(t, "the logs", f.logs.Bytes(), secrets)
	reply, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	secretScan(t, "the enrolment reply", reply, secrets)
	secretScan(t, "the enrolment reply", fmt.Appendf(nil, "%+v", res), secrets)
	if len(f.logs.Bytes()) == 0 {
		t.Fatal("no logs captured; the scan proves nothing")
	}
}
