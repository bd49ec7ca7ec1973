package smtp

import (
	"strconv"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

func TestParseCommand(t *testing.T) {
	cases := []struct {
		line, verb, arg string
		ok              bool
	}{
		{"NOOP", "NOOP", "", true},
		{"ehlo client.test", "EHLO", "client.test", true},
		{"MAIL FROM:<a@b>  ", "MAIL", "FROM:<a@b>", true},
		{"StartTLS", "STARTTLS", "", true},
		{"", "", "", false},
		{" NOOP", "", "", false},
		{"NO\x00OP", "", "", false},
		{"MAIL FROM:<a@b>\rRCPT TO:<c@d>", "", "", false},
		{"X-FOO bar", "", "", false},
		{"ABCDEFGHIJKLMNOPQ", "", "", false},
	}
	for _, tc := range cases {
		verb, arg, err := parseCommand(tc.line)
		if (err == nil) != tc.ok || verb != tc.verb || arg != tc.arg {
			t.Errorf("%q: %q %q %v, want %q %q ok=%v", tc.line, verb, arg, err, tc.verb, tc.arg, tc.ok)
		}
	}
}

func TestParseMail(t *testing.T) {
	empty := ""
	user := "u@example.test"
	cases := []struct {
		arg    string
		utf8OK bool
		from   string
		opts   gosmtp.MailOptions
		code   int // 0: accepted
	}{
		{"FROM:<a@example.test>", false, "a@example.test", gosmtp.MailOptions{}, 0},
		{"from: <a@example.test>", false, "a@example.test", gosmtp.MailOptions{}, 0},
		{"FROM:<>", false, "", gosmtp.MailOptions{}, 0},
		{"FROM:a@example.test", false, "a@example.test", gosmtp.MailOptions{}, 0},
		{"FROM:<@relay.test,@r2.test:a@example.test>", false, "a@example.test", gosmtp.MailOptions{}, 0},
		{`FROM:<"john doe"@example.test>`, false, `"john doe"@example.test`, gosmtp.MailOptions{}, 0},
		{"FROM:<a@[IPv6:2001:db8::1]>", false, "a@[IPv6:2001:db8::1]", gosmtp.MailOptions{}, 0},
		{"FROM:<a@example.test> SIZE=1000 BODY=8bitmime", false, "a@example.test", gosmtp.MailOptions{Size: 1000, Body: gosmtp.Body8BitMIME}, 0},
		{"FROM:<a@example.test> BODY=7BIT", false, "a@example.test", gosmtp.MailOptions{Body: gosmtp.Body7Bit}, 0},
		{"FROM:<ä@exämple.test> SMTPUTF8", true, "ä@exämple.test", gosmtp.MailOptions{UTF8: true}, 0},
		{"FROM:<a@example.test> AUTH=<>", false, "a@example.test", gosmtp.MailOptions{Auth: &empty}, 0},
		{"FROM:<a@example.test> AUTH=u+40example.test", false, "a@example.test", gosmtp.MailOptions{Auth: &user}, 0},
		{"FROM:<ä@example.test>", true, "", gosmtp.MailOptions{}, 553},
		{"FROM:<a@example.test> SMTPUTF8", false, "", gosmtp.MailOptions{}, 555},
		{"FROM:<a@example.test> BODY=BINARYMIME", false, "", gosmtp.MailOptions{}, 555},
		{"FROM:<a@example.test> RET=FULL", false, "", gosmtp.MailOptions{}, 555},
		{"FROM:<a@example.test> SIZE=x", false, "", gosmtp.MailOptions{}, 501},
		{"FROM:<a@example.test> SIZE=1 SIZE=2", false, "", gosmtp.MailOptions{}, 501},
		{"FROM:<a@example.test>SIZE=1", false, "", gosmtp.MailOptions{}, 501},
		{"FROM:<a@example.test> AUTH=+4", false, "", gosmtp.MailOptions{}, 501},
		{"FROM:<a@example.test", false, "", gosmtp.MailOptions{}, 501},
		{"FROM:<a b@example.test>", false, "", gosmtp.MailOptions{}, 501},
		{"FROM:<a@>", false, "", gosmtp.MailOptions{}, 501},
		{"FROM:<@example.test>", false, "", gosmtp.MailOptions{}, 501},
		{"FROM:<a..b@example.test>", false, "", gosmtp.MailOptions{}, 501},
		{`FROM:<"a` + "\r" + `b"@example.test>`, false, "", gosmtp.MailOptions{}, 501},
		{"TO:<a@example.test>", false, "", gosmtp.MailOptions{}, 501},
	}
	for _, tc := range cases {
		m, r := parseMail(tc.arg, tc.utf8OK)
		if tc.code != 0 {
			if r == nil || r.Code != tc.code {
				t.Errorf("%q: %v, want %d", tc.arg, r, tc.code)
			}
			continue
		}
		if r != nil {
			t.Errorf("%q: %v", tc.arg, r)
			continue
		}
		if m.from != tc.from || m.opts.Size != tc.opts.Size || m.opts.Body != tc.opts.Body || m.opts.UTF8 != tc.opts.UTF8 ||
			(m.opts.Auth == nil) != (tc.opts.Auth == nil) || m.opts.Auth != nil && *m.opts.Auth != *tc.opts.Auth {
			t.Errorf("%q: %q %+v, want %q %+v", tc.arg, m.from, m.opts, tc.from, tc.opts)
		}
	}
}

func TestParseRcpt(t *testing.T) {
	cases := []struct {
		arg    string
		utf8OK bool
		to     string
		code   int
	}{
		{"TO:<b@example.test>", false, "b@example.test", 0},
		{"to:<Postmaster>", false, "Postmaster", 0},
		{"TO:<ü@example.test>", true, "ü@example.test", 0},
		{"TO:<ü@example.test>", false, "", 553},
		{"TO:<b@example.test> NOTIFY=NEVER", false, "", 555},
		{"TO:<>", false, "", 501},
		{"TO:<b@example.test>>", false, "", 501},
		{"FROM:<b@example.test>", false, "", 501},
		{"TO:<b@exa\xffmple.test>", true, "", 501},
	}
	for _, tc := range cases {
		to, r := parseRcpt(tc.arg, tc.utf8OK)
		if tc.code != 0 && (r == nil || r.Code != tc.code) || tc.code == 0 && (r != nil || to != tc.to) {
			t.Errorf("%q: %q %v, want %q %d", tc.arg, to, r, tc.to, tc.code)
		}
	}
}

func TestParseBdat(t *testing.T) {
	cases := []struct {
		arg  string
		size int64
		last bool
		ok   bool
	}{
		{"100", 100, false, true},
		{"0 LAST", 0, true, true},
		{"5 last", 5, true, true},
		{"", 0, false, false},
		{"-1", 0, false, false},
		{"+1", 0, false, false},
		{"1 MORE", 0, false, false},
		{"1 LAST x", 0, false, false},
		{"99999999999999999999", 0, false, false},
	}
	for _, tc := range cases {
		size, last, err := parseBdat(tc.arg)
		if (err == nil) != tc.ok || tc.ok && (size != tc.size || last != tc.last) {
			t.Errorf("%q: %d %v %v", tc.arg, size, last, err)
		}
	}
}

// FuzzParseCommand: whatever the line, an accepted MAIL or RCPT address
// carries nothing that could end or split the command it is sent upstream
// in, and writing the parsed command back parses to the same result.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<a@example.test> SIZE=10 BODY=8BITMIME SMTPUTF8 AUTH=<>",
		`RCPT TO:<"x\"y"@example.test>`, "RCPT TO:<Postmaster>", "MAIL FROM:<>",
		"MAIL FROM:<@r.test:a@[1.2.3.4]>", "BDAT 10 LAST", "EHLO x", "AUTH PLAIN =",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		verb, arg, err := parseCommand(line)
		if err != nil {
			return
		}
		if strings.ContainsAny(verb+arg, "\r\n\x00") {
			t.Fatalf("control characters kept: %q %q", verb, arg)
		}
		switch verb {
		case "MAIL":
			m, r := parseMail(arg, true)
			if r != nil {
				return
			}
			checkAddress(t, m.from)
			again := "FROM:<" + m.from + ">"
			if m.opts.Size > 0 {
				again += " SIZE=" + strconv.FormatInt(m.opts.Size, 10)
			}
			if m.opts.UTF8 {
				again += " SMTPUTF8"
			}
			m2, r := parseMail(again, true)
			if r != nil || m2.from != m.from || m2.opts.UTF8 != m.opts.UTF8 || m2.opts.Size != m.opts.Size {
				t.Fatalf("%q parsed as %q; written back %q: %q %v", arg, m.from, again, m2.from, r)
			}
		case "RCPT":
			to, r := parseRcpt(arg, true)
			if r != nil {
				return
			}
			checkAddress(t, to)
			if to2, r := parseRcpt("TO:<"+to+">", true); r != nil || to2 != to {
				t.Fatalf("%q parsed as %q; written back: %q %v", arg, to, to2, r)
			}
		case "BDAT":
			if size, _, err := parseBdat(arg); err == nil && size < 0 {
				t.Fatalf("negative chunk size %d", size)
			}
		}
	})
}

func checkAddress(t *testing.T, a string) {
	t.Helper()
	for i := 0; i < len(a); i++ {
		if a[i] < 0x20 || a[i] == 0x7f {
			t.Fatalf("address %q has a control character", a)
		}
	}
	if a != "" && !strings.HasPrefix(a, `"`) && strings.ContainsAny(a, " <>") {
		t.Fatalf("address %q has a space or bracket outside quotes", a)
	}
}
