package smtp

import (
	"errors"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

// validEnhanced reports whether e is an RFC 3463 status of the class of
// code: class = first digit of code, subject and detail 0..999.
func validEnhanced(e gosmtp.EnhancedCode, code int) bool {
	return e[0] == code/100 && e[1] >= 0 && e[1] <= 999 && e[2] >= 0 && e[2] <= 999
}

// printableLine reports whether s is printable ASCII without line breaks.
func printableLine(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// FuzzParseEnhanced: whatever text is given as the enhanced status, the
// result is a well-formed status of the reply code's class.
func FuzzParseEnhanced(f *testing.F) {
	for _, s := range []string{"5.7.1", "4.3.0", "5.1", "2.0.0", "5.-1.2", "5.1000.1", "+5.+1.+1", "5.1.1 trailing", "", "x.y.z"} {
		f.Add(s, 554)
		f.Add(s, 451)
	}
	f.Fuzz(func(t *testing.T, s string, code int) {
		code = 400 + (code%200+200)%200 // reply() is only ever called with 4xx/5xx
		e := parseEnhanced(s, code)
		if !validEnhanced(e, code) {
			t.Fatalf("parseEnhanced(%q, %d) = %v", s, code, e)
		}
	})
}

// FuzzFromUpstream: an upstream reply, whatever its code, status and
// text, reaches the client as one line of printable ASCII within the cap,
// in the 4xx/5xx class of the upstream's code; anything else (2xx, 3xx,
// nonsense codes) counts as a lost connection (451), never as success.
func FuzzFromUpstream(f *testing.F) {
	f.Add(550, 5, 1, 1, "no such user", false)
	f.Add(452, 4, 2, 2, "mailbox full\r\n250 ok", false)
	f.Add(250, 2, 0, 0, "ok", false)
	f.Add(354, 0, 0, 0, "go ahead", false)
	f.Add(554, 5, -1, 1000, "\x00\x1b[31m\xff\xfe ünïcode \t tab", false)
	f.Add(451, 5, 7, 1, strings.Repeat("long ", 200), false)
	f.Add(0, 0, 0, 0, "io", true)
	f.Fuzz(func(t *testing.T, code, e0, e1, e2 int, msg string, plain bool) {
		var err error = &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.EnhancedCode{e0, e1, e2}, Message: msg}
		if plain {
			err = errors.New(msg)
		}
		r, lost := fromUpstream(err, "sid")
		if r == nil {
			t.Fatal("nil reply")
		}
		if r.Code/100 != 4 && r.Code/100 != 5 {
			t.Fatalf("reply %d from upstream %d", r.Code, code)
		}
		refusal := !plain && (code/100 == 4 || code/100 == 5)
		if refusal && (lost || r.Code != code) {
			t.Fatalf("upstream %d became %d lost=%v", code, r.Code, lost)
		}
		if !refusal && (!lost || r.Code != 451) {
			t.Fatalf("upstream %d (plain=%v) became %d lost=%v, want 451 lost", code, plain, r.Code, lost)
		}
		if !validEnhanced(r.EnhancedCode, r.Code) {
			t.Fatalf("enhanced %v for %d", r.EnhancedCode, r.Code)
		}
		if !printableLine(r.Message) || r.Message == "" {
			t.Fatalf("unsafe text %q", r.Message)
		}
		if len(r.Message) > len("Mail server: ")+maxReplyText {
			t.Fatalf("text of %d bytes over the cap", len(r.Message))
		}
		if refusal && !strings.HasPrefix(r.Message, "Mail server: ") {
			t.Fatalf("upstream text without prefix: %q", r.Message)
		}
		if plain && strings.Contains(r.Message, msg) && len(msg) > 8 {
			t.Fatalf("internal error text reached the client: %q", r.Message)
		}
	})
}
