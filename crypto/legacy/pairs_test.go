package legacy

import (
	"os"
	"testing"
)

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }

func TestPairsSplitByKeyUsage(t *testing.T) {
	p := newPKI(t)
	cat := func(names ...string) []byte {
		var out []byte
		for _, n := range names {
			out = append(out, p.read(n)...)
		}
		return out
	}
	t.Run("dual use", func(t *testing.T) {
		b, err := Read(cat("bob.key", "bob.crt", "ca.crt"), "")
		if err != nil {
			t.Fatal(err)
		}
		m := b.Pairs()
		if len(m.Pairs) != 1 || m.Signing != &m.Pairs[0] || m.Encryption != &m.Pairs[0] {
			t.Fatalf("dual-use certificate: signing %p encryption %p, pairs %d", m.Signing, m.Encryption, len(m.Pairs))
		}
	})
	t.Run("separate", func(t *testing.T) {
		b, err := Read(cat("alice-enc.crt", "alice-sign.key", "ca.crt", "alice-enc.key", "alice-sign.crt"), "")
		if err != nil {
			t.Fatal(err)
		}
		m := b.Pairs()
		if m.Signing == nil || !m.Signing.Cert.Equal(p.cert("alice-sign.crt")) || m.Signing.CanEncrypt() {
			t.Errorf("signing pair wrong: %+v", m.Signing)
		}
		if m.Encryption == nil || !m.Encryption.Cert.Equal(p.cert("alice-enc.crt")) || m.Encryption.CanSign() {
			t.Errorf("encryption pair wrong: %+v", m.Encryption)
		}
	})
	t.Run("signing only", func(t *testing.T) {
		b, err := Read(cat("alice-sign.key", "alice-sign.crt", "bob.key"), "")
		if err != nil {
			t.Fatal(err)
		}
		m := b.Pairs()
		if m.Signing == nil || m.Encryption != nil || len(m.KeysWithoutCert) != 1 {
			t.Errorf("signing %v encryption %v keys without certificate %d", m.Signing != nil, m.Encryption != nil, len(m.KeysWithoutCert))
		}
	})
}
