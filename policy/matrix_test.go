package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// signOutcome is what the sign policy alone makes of a sender state.
type signOutcome int

const (
	signYes signOutcome = iota
	signNo
	refuseNoID
	refuseFrom
	refuseLocked
)

var senderStates = []struct {
	name string
	s    Sender
}{
	{"no-id", Sender{Address: me, FromMatches: true}},
	{"no-id-mismatch", Sender{Address: me}},
	{"locked", Sender{Address: me, HasID: true, FromMatches: true}},
	{"unlocked", Sender{Address: me, HasID: true, Unlocked: true, FromMatches: true, Caps: Capabilities{AESGCM: true, RSAOAEP: true}}},
	{"unlocked-cbc-only", Sender{Address: me, HasID: true, Unlocked: true, FromMatches: true}},
	{"mismatch-unlocked", Sender{Address: me, HasID: true, Unlocked: true}},
	{"mismatch-locked", Sender{Address: me, HasID: true}},
}

// signTable is written out by hand from the rules: sign policy × sender state.
var signTable = map[Mode]map[string]signOutcome{
	Always: {
		"no-id": refuseNoID, "no-id-mismatch": refuseNoID, "locked": refuseLocked,
		"unlocked": signYes, "unlocked-cbc-only": signYes,
		"mismatch-unlocked": refuseFrom, "mismatch-locked": refuseFrom,
	},
	WhenPossible: {
		"no-id": signNo, "no-id-mismatch": signNo, "locked": refuseLocked,
		"unlocked": signYes, "unlocked-cbc-only": signYes,
		"mismatch-unlocked": signNo, "mismatch-locked": signNo,
	},
	Never: {
		"no-id": signNo, "no-id-mismatch": signNo, "locked": signNo,
		"unlocked": signNo, "unlocked-cbc-only": signNo,
		"mismatch-unlocked": signNo, "mismatch-locked": signNo,
	},
}

var recipientMixes = []struct {
	name    string
	rcpts   []Recipient
	missing bool // some recipient has no certificate
}{
	{"one-cert", []Recipient{cert("bob@x.test")}, false},
	{"one-without-cert", []Recipient{noCert("bob@x.test")}, true},
	{"mixed", []Recipient{cert("bob@x.test"), noCert("carol@y.test")}, true},
	{"gcm-oaep-all", []Recipient{caps(cert("bob@x.test"), true, true), caps(cert("carol@y.test"), true, false)}, false},
	{"gcm-partial", []Recipient{caps(cert("bob@x.test"), true, true), cert("carol@y.test")}, false},
	{"bcc-with-cert", []Recipient{cert("bob@x.test"), bcc(caps(cert("dave@z.test"), true, true))}, false},
	{"bcc-without-cert", []Recipient{cert("bob@x.test"), bcc(noCert("dave@z.test"))}, true},
	{"only-bcc", []Recipient{bcc(cert("dave@z.test")), bcc(cert("erin@z.test"))}, false},
	{"mixed-with-bccs", []Recipient{noCert("carol@y.test"), bcc(cert("dave@z.test")), cert("bob@x.test"), bcc(noCert("frank@z.test"))}, true},
}

// TestDecideMatrix runs every sign policy × encrypt policy × sender state ×
// recipient mix and checks the outcome against the hand-written sign table,
// the encrypt=always rule, the refusal precedence, and the envelope rules.
func TestDecideMatrix(t *testing.T) {
	n := 0
	for _, signMode := range Modes() {
		for _, encMode := range Modes() {
			for _, st := range senderStates {
				for _, mix := range recipientMixes {
					n++
					name := fmt.Sprintf("sign=%s/encrypt=%s/%s/%s", signMode, encMode, st.name, mix.name)
					t.Run(name, func(t *testing.T) {
						checkMatrixCase(t, Policy{signMode, encMode}, st.name, st.s, mix.rcpts, mix.missing)
					})
				}
			}
		}
	}
	if want := 3 * 3 * len(senderStates) * len(recipientMixes); n != want {
		t.Fatalf("ran %d cases, want %d", n, want)
	}
}

func checkMatrixCase(t *testing.T, p Policy, state string, s Sender, rcpts []Recipient, missing bool) {
	t.Helper()
	d := Decide(p, s, rcpts)
	so := signTable[p.Sign][state]

	// Expected refusal, permanent ones first.
	var wantErr error
	switch {
	case so == refuseNoID:
		wantErr = ErrNoDigitalID
	case so == refuseFrom:
		wantErr = ErrFromMismatch
	case p.Encrypt == Always && missing:
		wantErr = ErrRecipientsNoCert
	case so == refuseLocked:
		wantErr = ErrLocked
	}
	if wantErr != nil {
		if d.Refusal == nil {
			t.Fatalf("sent %+v, want refusal %v", d.Envelopes, wantErr)
		}
		if !errors.Is(d.Refusal, wantErr) {
			t.Fatalf("refusal %v, want %v", d.Refusal, wantErr)
		}
		wantTemp := wantErr == ErrLocked
		if d.Refusal.Temporary() != wantTemp {
			t.Fatalf("refusal %v temporary=%v, want %v", d.Refusal, d.Refusal.Temporary(), wantTemp)
		}
		if len(d.Envelopes) != 0 {
			t.Fatalf("refusal with envelopes %+v", d.Envelopes)
		}
		return
	}
	if d.Refusal != nil {
		t.Fatalf("refused: %v", d.Refusal)
	}

	seen := map[string]bool{}
	visible := map[bool]int{} // envelopes of non-Bcc recipients, by Encrypt
	for _, e := range d.Envelopes {
		if e.Sign != (so == signYes) {
			t.Errorf("envelope %v: Sign=%v, sign outcome %v", e.Recipients, e.Sign, so)
		}
		if !e.Bcc {
			visible[e.Encrypt]++
		}
		for _, addr := range e.Recipients {
			if seen[addr] {
				t.Errorf("%s in more than one envelope", addr)
			}
			seen[addr] = true
			r := find(rcpts, addr)
			if r.Bcc != e.Bcc || (r.Bcc && len(e.Recipients) != 1) {
				t.Errorf("Bcc recipient %s shares envelope %v", addr, e.Recipients)
			}
			wantEnc := p.Encrypt != Never && r.HasCert
			if e.Encrypt != wantEnc {
				t.Errorf("%s: Encrypt=%v, want %v", addr, e.Encrypt, wantEnc)
			}
		}
		checkKeys(t, e, s, rcpts)
	}
	for _, r := range rcpts {
		if !seen[r.Address] {
			t.Errorf("recipient %s in no envelope", r.Address)
		}
	}
	for enc, n := range visible {
		if n > 1 {
			t.Errorf("%d visible envelopes with Encrypt=%v, want one", n, enc)
		}
	}
}

func checkKeys(t *testing.T, e Envelope, s Sender, rcpts []Recipient) {
	t.Helper()
	if !e.Encrypt {
		if e.Cipher != "" || len(e.KeyRecipients) != 0 {
			t.Errorf("plain envelope %v has cipher %q keys %v", e.Recipients, e.Cipher, e.KeyRecipients)
		}
		return
	}
	want := len(e.Recipients)
	if s.HasID {
		want++
	}
	if len(e.KeyRecipients) != want {
		t.Fatalf("envelope %v key recipients %v, want %d", e.Recipients, e.KeyRecipients, want)
	}
	gcm := !s.HasID || s.Caps.AESGCM
	for i, addr := range e.Recipients {
		r := find(rcpts, addr)
		k := e.KeyRecipients[i]
		if k.Address != addr || k.Sender || k.OAEP != r.Caps.RSAOAEP {
			t.Errorf("key recipient %+v for %+v", k, r)
		}
		gcm = gcm && r.Caps.AESGCM
	}
	if s.HasID {
		k := e.KeyRecipients[want-1]
		if !k.Sender || !strings.EqualFold(k.Address, s.Address) || k.OAEP != s.Caps.RSAOAEP {
			t.Errorf("sender key recipient %+v", k)
		}
	}
	wantCipher := AES256CBC
	if gcm {
		wantCipher = AES256GCM
	}
	if e.Cipher != wantCipher {
		t.Errorf("envelope %v cipher %s, want %s", e.Recipients, e.Cipher, wantCipher)
	}
}

func find(rcpts []Recipient, addr string) Recipient {
	for _, r := range rcpts {
		if r.Address == addr {
			return r
		}
	}
	return Recipient{}
}
