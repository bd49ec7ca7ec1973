package policy

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const me = "alice@example.org"

var (
	unlocked = Sender{Address: me, HasID: true, Unlocked: true, FromMatches: true}
	locked   = Sender{Address: me, HasID: true, Unlocked: false, FromMatches: true}
)

func cert(addr string) Recipient   { return Recipient{Address: addr, HasCert: true} }
func noCert(addr string) Recipient { return Recipient{Address: addr} }
func bcc(r Recipient) Recipient    { r.Bcc = true; return r }
func caps(r Recipient, gcm, oaep bool) Recipient {
	r.Caps = Capabilities{AESGCM: gcm, RSAOAEP: oaep}
	return r
}

func self(oaep bool) KeyRecipient { return KeyRecipient{Address: me, OAEP: oaep, Sender: true} }
func kr(addr string) KeyRecipient { return KeyRecipient{Address: addr} }

// TestDecideExact pins whole decisions for the cases the rules name.
func TestDecideExact(t *testing.T) {
	tests := []struct {
		name   string
		p      Policy
		s      Sender
		rcpts  []Recipient
		want   []Envelope
		code   int
		status string
		err    error
		reason []string // substrings the refusal reason must contain
		named  []string // Refusal.Recipients
	}{
		{
			name:  "when-possible splits certless recipients into a signed-only copy and Bcc into its own",
			p:     Policy{Always, WhenPossible},
			s:     unlocked,
			rcpts: []Recipient{cert("bob@x.test"), noCert("carol@y.test"), bcc(cert("dave@z.test")), cert("erin@x.test")},
			want: []Envelope{
				{Recipients: []string{"bob@x.test", "erin@x.test"}, Sign: true, Encrypt: true, Cipher: AES256CBC,
					KeyRecipients: []KeyRecipient{kr("bob@x.test"), kr("erin@x.test"), self(false)}},
				{Recipients: []string{"carol@y.test"}, Sign: true},
				{Recipients: []string{"dave@z.test"}, Bcc: true, Sign: true, Encrypt: true, Cipher: AES256CBC,
					KeyRecipients: []KeyRecipient{kr("dave@z.test"), self(false)}},
			},
		},
		{
			name:   "encrypt=always names every recipient without a certificate",
			p:      Policy{WhenPossible, Always},
			s:      unlocked,
			rcpts:  []Recipient{cert("bob@x.test"), noCert("carol@y.test"), bcc(noCert("dave@z.test"))},
			code:   554,
			status: "5.7.1",
			err:    ErrRecipientsNoCert,
			reason: []string{"carol@y.test", "dave@z.test"},
			named:  []string{"carol@y.test", "dave@z.test"},
		},
		{
			name:   "more than five missing recipients are summarised",
			p:      Policy{Never, Always},
			s:      unlocked,
			rcpts:  []Recipient{noCert("a@t"), noCert("b@t"), noCert("c@t"), noCert("d@t"), noCert("e@t"), noCert("f@t"), noCert("g@t")},
			code:   554,
			status: "5.7.1",
			err:    ErrRecipientsNoCert,
			reason: []string{"a@t, b@t, c@t, d@t, e@t and 2 more"},
			named:  []string{"a@t", "b@t", "c@t", "d@t", "e@t", "f@t", "g@t"},
		},
		{
			name:   "locked ID with signing required is a temporary refusal",
			p:      Policy{Always, WhenPossible},
			s:      locked,
			rcpts:  []Recipient{cert("bob@x.test")},
			code:   451,
			status: "4.7.0",
			err:    ErrLocked,
			reason: []string{me, "unlock"},
		},
		{
			name:   "locked ID under sign=when-possible is not sent unsigned",
			p:      Policy{WhenPossible, Never},
			s:      locked,
			rcpts:  []Recipient{noCert("bob@x.test")},
			code:   451,
			status: "4.7.0",
			err:    ErrLocked,
		},
		{
			name:   "permanent certificate refusal wins over the lock",
			p:      Policy{Always, Always},
			s:      locked,
			rcpts:  []Recipient{noCert("bob@x.test")},
			code:   554,
			status: "5.7.1",
			err:    ErrRecipientsNoCert,
			named:  []string{"bob@x.test"},
		},
		{
			name:  "locked ID does not block encryption when signing is off",
			p:     Policy{Never, Always},
			s:     locked,
			rcpts: []Recipient{caps(cert("bob@x.test"), true, true)},
			want: []Envelope{{Recipients: []string{"bob@x.test"}, Encrypt: true, Cipher: AES256CBC,
				KeyRecipients: []KeyRecipient{{Address: "bob@x.test", OAEP: true}, self(false)}}},
		},
		{
			name:   "From mismatch with signing required",
			p:      Policy{Always, Never},
			s:      Sender{Address: me, HasID: true, Unlocked: true},
			rcpts:  []Recipient{noCert("bob@x.test")},
			code:   554,
			status: "5.7.1",
			err:    ErrFromMismatch,
			reason: []string{me},
		},
		{
			name:  "From mismatch under when-possible goes out unsigned but encrypted",
			p:     Policy{WhenPossible, WhenPossible},
			s:     Sender{Address: me, HasID: true, Unlocked: false},
			rcpts: []Recipient{cert("bob@x.test")},
			want: []Envelope{{Recipients: []string{"bob@x.test"}, Encrypt: true, Cipher: AES256CBC,
				KeyRecipients: []KeyRecipient{kr("bob@x.test"), self(false)}}},
		},
		{
			name:   "no Digital ID with signing required",
			p:      Policy{Always, WhenPossible},
			s:      Sender{Address: me, FromMatches: true},
			rcpts:  []Recipient{cert("bob@x.test")},
			code:   554,
			status: "5.7.1",
			err:    ErrNoDigitalID,
		},
		{
			name:  "no Digital ID: encrypted to the recipients only",
			p:     Policy{WhenPossible, Always},
			s:     Sender{Address: me, FromMatches: true},
			rcpts: []Recipient{caps(cert("bob@x.test"), true, false)},
			want: []Envelope{{Recipients: []string{"bob@x.test"}, Encrypt: true, Cipher: AES256GCM,
				KeyRecipients: []KeyRecipient{kr("bob@x.test")}}},
		},
		{
			name:  "GCM only when every key recipient including the sender advertises it",
			p:     Policy{Always, Always},
			s:     Sender{Address: me, HasID: true, Unlocked: true, FromMatches: true, Caps: Capabilities{AESGCM: true, RSAOAEP: true}},
			rcpts: []Recipient{caps(cert("bob@x.test"), true, true), bcc(caps(cert("dave@z.test"), false, true)), bcc(caps(cert("erin@z.test"), true, false))},
			want: []Envelope{
				{Recipients: []string{"bob@x.test"}, Sign: true, Encrypt: true, Cipher: AES256GCM,
					KeyRecipients: []KeyRecipient{{Address: "bob@x.test", OAEP: true}, self(true)}},
				{Recipients: []string{"dave@z.test"}, Bcc: true, Sign: true, Encrypt: true, Cipher: AES256CBC,
					KeyRecipients: []KeyRecipient{{Address: "dave@z.test", OAEP: true}, self(true)}},
				{Recipients: []string{"erin@z.test"}, Bcc: true, Sign: true, Encrypt: true, Cipher: AES256GCM,
					KeyRecipients: []KeyRecipient{kr("erin@z.test"), self(true)}},
			},
		},
		{
			name:  "sender without GCM keeps the envelope on CBC",
			p:     Policy{Always, Always},
			s:     unlocked,
			rcpts: []Recipient{caps(cert("bob@x.test"), true, false)},
			want: []Envelope{{Recipients: []string{"bob@x.test"}, Sign: true, Encrypt: true, Cipher: AES256CBC,
				KeyRecipients: []KeyRecipient{kr("bob@x.test"), self(false)}}},
		},
		{
			name: "duplicates collapse and a visible listing beats Bcc",
			p:    Policy{Always, WhenPossible},
			s:    unlocked,
			rcpts: []Recipient{bcc(cert("Bob@X.test")), cert("bob@x.test"), bcc(noCert("carol@y.test")), bcc(noCert("CAROL@y.test")),
				cert("erin@x.test"), bcc(cert("ERIN@x.test"))},
			want: []Envelope{
				{Recipients: []string{"Bob@X.test", "erin@x.test"}, Sign: true, Encrypt: true, Cipher: AES256CBC,
					KeyRecipients: []KeyRecipient{kr("Bob@X.test"), kr("erin@x.test"), self(false)}},
				{Recipients: []string{"carol@y.test"}, Bcc: true, Sign: true},
			},
		},
		{
			name:  "mail to oneself does not list the sender twice",
			p:     Policy{Always, Always},
			s:     unlocked,
			rcpts: []Recipient{cert("ALICE@example.org")},
			want: []Envelope{{Recipients: []string{"ALICE@example.org"}, Sign: true, Encrypt: true, Cipher: AES256CBC,
				KeyRecipients: []KeyRecipient{kr("ALICE@example.org")}}},
		},
		{
			name:  "encrypt=never sends one plain signed copy plus one per Bcc",
			p:     Policy{Always, Never},
			s:     unlocked,
			rcpts: []Recipient{cert("bob@x.test"), noCert("carol@y.test"), bcc(cert("dave@z.test"))},
			want: []Envelope{
				{Recipients: []string{"bob@x.test", "carol@y.test"}, Sign: true},
				{Recipients: []string{"dave@z.test"}, Bcc: true, Sign: true},
			},
		},
		{
			name:   "no recipients",
			p:      Policy{Always, Always},
			s:      unlocked,
			code:   554,
			status: "5.5.1",
			err:    ErrNoRecipients,
		},
		{
			name:   "unknown policy mode refuses temporarily",
			p:      Policy{"sometimes", Always},
			s:      unlocked,
			rcpts:  []Recipient{cert("bob@x.test")},
			code:   451,
			status: "4.3.5",
			err:    ErrMisconfigured,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.p, tt.s, tt.rcpts)
			if tt.code == 0 {
				if d.Refusal != nil {
					t.Fatalf("refused: %v", d.Refusal)
				}
				if !reflect.DeepEqual(d.Envelopes, tt.want) {
					t.Fatalf("envelopes\n got %+v\nwant %+v", d.Envelopes, tt.want)
				}
				return
			}
			r := d.Refusal
			if r == nil {
				t.Fatalf("not refused: %+v", d.Envelopes)
			}
			if r.Code != tt.code || r.Enhanced != tt.status {
				t.Errorf("reply %d %s, want %d %s", r.Code, r.Enhanced, tt.code, tt.status)
			}
			if !errors.Is(d.Err(), tt.err) {
				t.Errorf("error %v is not %v", d.Err(), tt.err)
			}
			if r.Temporary() != (tt.code/100 == 4) {
				t.Errorf("Temporary() = %v for %d", r.Temporary(), r.Code)
			}
			if d.Envelopes != nil {
				t.Errorf("refusal carries envelopes: %+v", d.Envelopes)
			}
			if !reflect.DeepEqual(r.Recipients, tt.named) {
				t.Errorf("refusal names %v, want %v", r.Recipients, tt.named)
			}
			for _, s := range tt.reason {
				if !strings.Contains(r.Reason, s) {
					t.Errorf("reason %q lacks %q", r.Reason, s)
				}
			}
			if want := fmt.Sprintf("%d %s ", tt.code, tt.status); !strings.HasPrefix(r.Error(), want) {
				t.Errorf("Error() = %q, want prefix %q", r.Error(), want)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range Modes() {
		got, err := ParseMode(string(m))
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %q, %v", m, got, err)
		}
	}
	for _, s := range []string{"", "Always", "when_possible", "sometimes"} {
		if _, err := ParseMode(s); !errors.Is(err, ErrInvalidMode) {
			t.Errorf("ParseMode(%q) error = %v, want ErrInvalidMode", s, err)
		}
	}
}
