package smtp

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
	"smimeproxy/policy"
)

// copyFor returns the accepted envelope that carried rcpt among envs.
func copyFor(t *testing.T, envs []mailtest.Envelope, rcpt string) mailtest.Envelope {
	t.Helper()
	for _, e := range envs {
		if e.Accepted && slices.ContainsFunc(e.Rcpts, func(r string) bool { return strings.EqualFold(r, rcpt) }) {
			return e
		}
	}
	t.Fatalf("no accepted envelope for %s among %d", rcpt, len(envs))
	return mailtest.Envelope{}
}

func TestPolicyMatrix(t *testing.T) {
	e := newEnv(t, envOptions{})
	modes := policy.Modes()
	recipientSets := [][]string{{bob, carol}, {bob, dave}}
	for _, sign := range modes {
		for _, enc := range modes {
			addr := e.startProxy(policy.Policy{Sign: sign, Encrypt: enc}, 0)
			c := e.clientAt(addr, alice)
			for _, rcpts := range recipientSets {
				name := string(sign) + "/" + string(enc) + "/" + strings.Join(rcpts, ",")
				t.Run(name, func(t *testing.T) {
					before := len(e.up.Transactions())
					body := "matrix body " + name
					err := send(c, alice, rcpts, compose(alice, strings.Join(rcpts, ", "), "", "", "matrix", body))
					after := e.up.Transactions()[before:]
					if enc == policy.Always && slices.Contains(rcpts, dave) {
						if smtpCode(err) != 554 || !strings.Contains(err.Error(), dave) || !strings.Contains(err.Error(), "5.7.1") && !strings.Contains(err.Error(), "encryption") {
							t.Fatalf("want 554 5.7.1 naming %s, got %v", dave, err)
						}
						if len(after) != 0 {
							t.Fatalf("refused message reached the upstream: %d transactions", len(after))
						}
						return
					}
					if err != nil {
						t.Fatalf("send: %v", err)
					}
					for _, r := range rcpts {
						cp := copyFor(t, after, r)
						o := e.open(cp.Data, r)
						wantEnc := enc != policy.Never && r != dave
						if o.encrypted != wantEnc {
							t.Errorf("%s: encrypted=%v, want %v", r, o.encrypted, wantEnc)
						}
						if !wantEnc && bytes.Contains(cp.Data, []byte(body)) != (true) && sign == policy.Never {
							t.Errorf("%s: plain copy lost its body", r)
						}
						if wantEnc && bytes.Contains(cp.Data, []byte(body)) {
							t.Errorf("%s: body in clear in an encrypted copy", r)
						}
						if o.signed != (sign != policy.Never) || (o.signed && !o.valid) {
							t.Errorf("%s: signed=%v valid=%v, want signed=%v", r, o.signed, o.valid, sign != policy.Never)
						}
						if !bytes.Contains(o.entity, []byte(body)) {
							t.Errorf("%s: body not in the opened copy", r)
						}
						if wantEnc {
							// The sender can read its own copy too.
							e.open(cp.Data, alice)
						}
					}
					if enc != policy.Never && slices.Contains(rcpts, dave) {
						if cb, cd := copyFor(t, after, bob), copyFor(t, after, dave); slices.Contains(cb.Rcpts, dave) || slices.Contains(cd.Rcpts, bob) {
							t.Errorf("signed-only copy shares an envelope with an encrypted one: %v / %v", cb.Rcpts, cd.Rcpts)
						}
					}
				})
			}
		}
	}
}

func TestBccSeparation(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(alice)
	msg := compose(alice, bob, "", carol+", "+dave, "bcc test", "bcc body")
	if err := send(c, alice, []string{bob, carol, dave}, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	envs := e.up.Envelopes()
	if len(envs) != 3 {
		t.Fatalf("want 3 envelopes (bob, Bcc carol, Bcc dave), got %d", len(envs))
	}
	for _, env := range envs {
		if len(env.Rcpts) != 1 {
			t.Errorf("envelope with %d recipients %v: Bcc recipients must be alone", len(env.Rcpts), env.Rcpts)
		}
		if bytes.Contains(bytes.ToLower(env.Data), []byte("\nbcc:")) {
			t.Errorf("copy for %v carries a Bcc header", env.Rcpts)
		}
		for _, other := range []string{bob, carol, dave} {
			if env.Rcpts[0] == other || other == bob {
				continue
			}
			if bytes.Contains(env.Data, []byte(other)) {
				t.Errorf("copy for %v names Bcc recipient %s", env.Rcpts, other)
			}
		}
	}
	bobCopy := copyFor(t, envs, bob).Data
	// carol is not among the RecipientInfos of bob's copy, and bob not
	// among those of carol's.
	if _, err := smime.Decrypt(bobCopy, e.keysOf(carol)); !errors.Is(err, smime.ErrNoMatchingRecipient) {
		t.Errorf("carol's key on bob's copy: %v, want ErrNoMatchingRecipient", err)
	}
	carolCopy := copyFor(t, envs, carol).Data
	if _, err := smime.Decrypt(carolCopy, e.keysOf(bob)); !errors.Is(err, smime.ErrNoMatchingRecipient) {
		t.Errorf("bob's key on carol's copy: %v, want ErrNoMatchingRecipient", err)
	}
	for _, who := range []string{bob, carol} {
		o := e.open(copyFor(t, envs, who).Data, who)
		if !o.encrypted || !o.valid || bytes.Contains(o.entity, []byte(carol)) && who == bob {
			t.Errorf("%s: encrypted=%v valid=%v", who, o.encrypted, o.valid)
		}
	}
	if o := e.open(copyFor(t, envs, dave).Data, dave); o.encrypted || !o.valid {
		t.Errorf("dave (no certificate, Bcc): encrypted=%v valid=%v, want signed only", o.encrypted, o.valid)
	}
}

func TestAlgorithmsFollowCapabilities(t *testing.T) {
	e := newEnv(t, envOptions{})
	pki := mailtest.NewPKI(t)
	plain := pki.User(t, "frank@other.test", mailtest.RSA)
	if _, err := e.ids.ImportCertificate(e.ctx, plain.EncCert, nil); err != nil {
		t.Fatal(err)
	}
	self, err := e.ids.RecipientCertificate(e.ctx, alice, alice)
	if err != nil {
		t.Fatal(err)
	}
	selfGCM := smime.SupportsGCM(self.Capabilities)
	c := e.client(alice)

	if err := send(c, alice, []string{carol}, compose(alice, carol, "", "", "caps", "gcm if all can")); err != nil {
		t.Fatal(err)
	}
	d, err := smime.Decrypt(copyFor(t, e.up.Envelopes(), carol).Data, e.keysOf(carol))
	if err != nil {
		t.Fatal(err)
	}
	if want := selfGCM; (d.Cipher == smime.AES256GCM) != want {
		t.Errorf("carol (GCM advertised) with sender GCM=%v: cipher %v", selfGCM, d.Cipher)
	}
	if !strings.Contains(d.KeyManagement, "oaep") {
		t.Errorf("carol advertises OAEP: key management %q", d.KeyManagement)
	}

	before := len(e.up.Envelopes())
	if err := send(c, alice, []string{carol, "frank@other.test"}, compose(alice, carol+", frank@other.test", "", "", "caps2", "cbc for frank")); err != nil {
		t.Fatal(err)
	}
	cp := copyFor(t, e.up.Envelopes()[before:], carol).Data
	d, err = smime.Decrypt(cp, e.keysOf(carol))
	if err != nil {
		t.Fatal(err)
	}
	if d.Cipher != smime.AES256CBC {
		t.Errorf("frank advertises nothing: cipher %v, want AES-256-CBC", d.Cipher)
	}
	d, err = smime.Decrypt(cp, []smime.KeyPair{{Cert: plain.EncCert, Key: plain.EncKey}})
	if err != nil {
		t.Fatal(err)
	}
	if d.KeyManagement != "rsa-pkcs1v15" {
		t.Errorf("frank advertises no OAEP: key management %q", d.KeyManagement)
	}
}

func TestLockedDigitalIDThenRetry(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(alice)
	if err := e.ids.Lock(e.ctx, alice); err != nil {
		t.Fatal(err)
	}
	msg := compose(alice, bob, "", "", "locked", "sent after unlock")
	err := send(c, alice, []string{bob}, msg)
	if smtpCode(err) != 451 || !strings.Contains(err.Error(), unlockU+"?email="+alice) {
		t.Fatalf("locked: want 451 with the unlock URL, got %v", err)
	}
	if n := len(e.up.Transactions()); n != 0 {
		t.Fatalf("locked: %d transactions reached the upstream", n)
	}
	if _, err := e.ids.Unlock(e.ctx, identity.UnlockRequest{Email: alice, Password: idPW}); err != nil {
		t.Fatal(err)
	}
	if err := send(c, alice, []string{bob}, msg); err != nil {
		t.Fatalf("retry after unlock: %v", err)
	}
	if o := e.open(copyFor(t, e.up.Envelopes(), bob).Data, bob); !o.encrypted || !o.valid {
		t.Errorf("after unlock: encrypted=%v valid=%v", o.encrypted, o.valid)
	}
}

func TestNoDigitalID(t *testing.T) {
	const erin = "erin@example.test"
	e := newEnv(t, envOptions{upstream: mailtest.UpstreamOptions{Users: map[string]string{alice: mailPW, erin: mailPW}}})
	err := send(e.client(erin), erin, []string{bob}, compose(erin, bob, "", "", "no id", "x"))
	if smtpCode(err) != 451 || !strings.Contains(err.Error(), enrolU+"?email="+erin) {
		t.Fatalf("no ID under sign=always: want 451 with the enrolment URL, got %v", err)
	}
	addr := e.startProxy(policy.Policy{Sign: policy.WhenPossible, Encrypt: policy.WhenPossible}, 0)
	if err := send(e.clientAt(addr, erin), erin, []string{bob}, compose(erin, bob, "", "", "no id 2", "unsigned but encrypted")); err != nil {
		t.Fatalf("no ID under sign=when-possible: %v", err)
	}
	if o := e.open(copyFor(t, e.up.Envelopes(), bob).Data, bob); !o.encrypted || o.signed {
		t.Errorf("no ID, when-possible: encrypted=%v signed=%v, want encrypted unsigned", o.encrypted, o.signed)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.raw(alice) // AUTH PLAIN with the right password works (raw checks 235)
	r.cmd(250, "MAIL FROM:<"+alice+">")

	conn := e.rawConn()
	conn.expect(220)
	conn.cmd(250, "EHLO x")
	conn.cmd(530, "MAIL FROM:<"+alice+">")
	conn.cmd(535, "AUTH PLAIN "+b64("\x00"+alice+"\x00wrong"))
	// LOGIN, as Outlook does it.
	conn.cmd(334, "AUTH LOGIN")
	conn.cmd(334, b64(alice))
	conn.cmd(235, b64(mailPW))
	conn.cmd(250, "MAIL FROM:<"+alice+">")
	if strings.Contains(e.logs.String(), mailPW) || strings.Contains(e.logs.String(), "wrong") {
		t.Errorf("a password reached the log")
	}
}
