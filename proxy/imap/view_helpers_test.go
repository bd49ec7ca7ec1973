package imap

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
)

// svKeys is a ViewKeys standing in for identity.Service: one user's keys,
// a trust pool, a lock switch, and a record of what was harvested.
type svKeys struct {
	mu        sync.Mutex
	keys      []smime.KeyPair
	roots     *x509.CertPool
	locked    bool
	noID      bool
	keyErr    error // when set, DecryptionKeys fails with it
	keyCalls  int
	harvested []*smime.VerifyResult
}

func (k *svKeys) DecryptionKeys(_ context.Context, user string) ([]smime.KeyPair, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keyCalls++
	switch {
	case k.keyErr != nil:
		return nil, fmt.Errorf("keys of %s: %w", user, k.keyErr)
	case k.noID:
		return nil, fmt.Errorf("keys of %s: %w", user, identity.ErrNoIdentity)
	case k.locked:
		return nil, fmt.Errorf("keys of %s: %w", user, identity.ErrLocked)
	}
	return k.keys, nil
}

func (k *svKeys) TrustPool(context.Context, string) (*x509.CertPool, error) { return k.roots, nil }

func (k *svKeys) Harvest(_ context.Context, _ string, v *smime.VerifyResult) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.harvested = append(k.harvested, v)
	return smime.CertAddresses(v.Signer), nil
}

func (k *svKeys) setLocked(b bool) {
	k.mu.Lock()
	k.locked = b
	k.mu.Unlock()
}

// svReporter adds UnlockReporter to svKeys.
type svReporter struct{ *svKeys }

func (r svReporter) Unlocked(string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.locked
}

// svWorld is the cast of the viewer tests: bob reads, alice signs, bob
// has a current (EC) and an older (RSA) encryption key.
type svWorld struct {
	pki      *mailtest.PKI
	alice    *mailtest.User
	bob      *mailtest.User // current Digital ID (P-256)
	bobOld   *mailtest.User // older encryption key (RSA), kept as history
	carol    *mailtest.User // someone else: mail to her is not bob's
	stranger *mailtest.User // signs with a root bob does not trust
	keys     *svKeys
}

func newSVWorld(t testing.TB) *svWorld {
	pki := mailtest.NewPKI(t)
	w := &svWorld{
		pki:      pki,
		alice:    pki.User(t, "alice@example.test", mailtest.RSA),
		bob:      pki.User(t, "bob@example.test", mailtest.P256),
		bobOld:   pki.User(t, "bob@example.test", mailtest.RSA),
		carol:    pki.User(t, "carol@example.test", mailtest.RSA),
		stranger: mailtest.OtherPKI(t).User(t, "alice@example.test", mailtest.RSA),
	}
	w.keys = &svKeys{
		keys: []smime.KeyPair{
			{Cert: w.bob.EncCert, Key: w.bob.EncKey},
			{Cert: w.bobOld.EncCert, Key: w.bobOld.EncKey},
		},
		roots: pki.Roots(),
	}
	return w
}

func (w *svWorld) viewer(t testing.TB, cacheBytes int64) *SMIMEViewer {
	t.Helper()
	v, err := NewSMIMEViewer(ViewerOptions{Keys: w.keys, CacheBytes: cacheBytes})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const svSecret = "The launch code is 0000, keep it between us."

// svPlain is the message alice writes to bob.
func svPlain(from string) []byte {
	return []byte("From: " + from + "\r\nTo: bob@example.test\r\nSubject: plans\r\n" +
		"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\nMessage-ID: <p1@example.test>\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + svSecret + "\r\n")
}

func svSign(t testing.TB, u *mailtest.User, msg []byte, opaque bool) []byte {
	t.Helper()
	var b bytes.Buffer
	err := smime.Sign(&b, msg, smime.SignOptions{Cert: u.SignCert, Key: u.SignKey, Chain: u.Chain,
		EncryptionCert: u.EncCert, Opaque: opaque})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func svEncrypt(t testing.TB, msg []byte, c smime.Cipher, to ...*mailtest.User) []byte {
	t.Helper()
	var rcpts []smime.Recipient
	for _, u := range to {
		rcpts = append(rcpts, smime.Recipient{Cert: u.EncCert})
	}
	var b bytes.Buffer
	if err := smime.Encrypt(&b, msg, rcpts, smime.EncryptOptions{Cipher: c}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// svKey is the message key tests view under.
func svKey(uid uint32) MessageKey {
	return MessageKey{User: "bob@example.test", Mailbox: "INBOX", UIDValidity: 7, UID: imap.UID(uid)}
}

// svHeaderFields returns the header fields of a whole message whose
// names start with prefix (case-insensitive, white space before the colon
// ignored), unfolded.
func svHeaderFields(msg []byte, prefix string) []string {
	var fields []string
	head := strings.ReplaceAll(string(msg[:headerEnd(msg)]), "\r\n", "\n")
	for _, line := range strings.Split(head, "\n") {
		switch {
		case line == "":
		case line[0] == ' ' || line[0] == '\t':
			if n := len(fields); n > 0 {
				fields[n-1] += line
			}
		default:
			fields = append(fields, line)
		}
	}
	var out []string
	for _, f := range fields {
		name, _, _ := strings.Cut(f, ":")
		name = strings.TrimSpace(name)
		if len(name) >= len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
			out = append(out, f)
		}
	}
	return out
}

// svStatus returns the value of the one status field of a view, failing
// the test when there is not exactly one.
func svStatus(t testing.TB, raw []byte) string {
	t.Helper()
	fs := svHeaderFields(raw, "Smimeproxy-")
	if len(fs) != 1 {
		t.Fatalf("want exactly one Smimeproxy- field, got %q", fs)
	}
	name, value, _ := strings.Cut(fs[0], ":")
	if name != StatusHeader {
		t.Fatalf("status field named %q", name)
	}
	return strings.TrimSpace(value)
}
