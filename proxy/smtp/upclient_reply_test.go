package smtp

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

func TestReadReply(t *testing.T) {
	cases := []struct {
		name     string
		in       string
		code     int
		enhanced gosmtp.EnhancedCode
		text     string
		bad      bool // errUpstreamProtocol
	}{
		{"one line", "250 OK\r\n", 250, gosmtp.EnhancedCode{}, "OK", false},
		{"enhanced", "550 5.1.1 No such user\r\n", 550, gosmtp.EnhancedCode{5, 1, 1}, "No such user", false},
		{"multi-line enhanced on each", "452-4.2.2 Mailbox full\r\n452 4.2.2 try later\r\n", 452, gosmtp.EnhancedCode{4, 2, 2}, "Mailbox full\ntry later", false},
		{"EHLO", "250-mx.test Hello\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE 1000\r\n", 250, gosmtp.EnhancedCode{}, "mx.test Hello\nPIPELINING\nCHUNKING\nSIZE 1000", false},
		{"code only", "354\r\n", 354, gosmtp.EnhancedCode{}, "", false},
		{"bare LF", "221 2.0.0 Bye\n", 221, gosmtp.EnhancedCode{2, 0, 0}, "Bye", false},
		{"status of another class", "550 4.1.1 odd\r\n", 550, gosmtp.EnhancedCode{}, "4.1.1 odd", false},
		{"status with 4 digits", "550 5.1000.1 odd\r\n", 550, gosmtp.EnhancedCode{}, "5.1000.1 odd", false},
		{"status only on the first line", "550-no such user\r\n550 5.1.1 X: y\r\n", 550, gosmtp.EnhancedCode{}, "no such user\n5.1.1 X: y", false},
		{"codes differ", "250-a\r\n251 b\r\n", 0, gosmtp.EnhancedCode{}, "", true},
		{"1xx", "150 go\r\n", 0, gosmtp.EnhancedCode{}, "", true},
		{"not digits", "25x ok\r\n", 0, gosmtp.EnhancedCode{}, "", true},
		{"no separator", "250OK\r\n", 0, gosmtp.EnhancedCode{}, "", true},
		{"too short", "25\r\n", 0, gosmtp.EnhancedCode{}, "", true},
		{"line too long", "250 " + strings.Repeat("x", maxReplyLine) + "\r\n", 0, gosmtp.EnhancedCode{}, "", true},
		{"too many lines", strings.Repeat("250-x\r\n", maxReplyLines) + "250 x\r\n", 0, gosmtp.EnhancedCode{}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := readReply(bufio.NewReaderSize(strings.NewReader(tc.in), maxReplyLine))
			if tc.bad {
				if !errors.Is(err, errUpstreamProtocol) {
					t.Fatalf("got %+v, %v; want errUpstreamProtocol", rep, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.code != tc.code || rep.enhanced != tc.enhanced || rep.text() != tc.text {
				t.Errorf("got %d %v %q, want %d %v %q", rep.code, rep.enhanced, rep.text(), tc.code, tc.enhanced, tc.text)
			}
		})
	}
	// A reply cut off is an I/O error, not a reply.
	if _, err := readReply(bufio.NewReader(strings.NewReader("250-a\r\n250 b"))); err == nil || errors.Is(err, errUpstreamProtocol) {
		t.Errorf("truncated reply: %v, want a read error", err)
	}
}

// FuzzReadReply: whatever the upstream sends, readReply returns a reply
// with a code of 200 to 599 and a bounded number of lines, or an error;
// a reply it accepts reads back the same when written out again.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"250 OK\r\n", "452-4.2.2 a\r\n452 4.2.2 b\r\n", "354\n", "250-x\r\n251 y\r\n", "550 5.1.1\r\n", "220 \r\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := readReply(bufio.NewReaderSize(strings.NewReader(string(in)), maxReplyLine))
		if err != nil {
			return
		}
		if rep.code < 200 || rep.code > 599 || len(rep.lines) == 0 || len(rep.lines) > maxReplyLines {
			t.Fatalf("reply %+v", rep)
		}
		if rep.enhanced != (gosmtp.EnhancedCode{}) && rep.enhanced[0] != rep.code/100 {
			t.Fatalf("status %v with code %d", rep.enhanced, rep.code)
		}
		var b strings.Builder
		for i, l := range rep.lines {
			sep := "-"
			if i == len(rep.lines)-1 {
				sep = " "
			}
			if i == 0 && rep.enhanced != (gosmtp.EnhancedCode{}) {
				l = fmt.Sprintf("%d.%d.%d %s", rep.enhanced[0], rep.enhanced[1], rep.enhanced[2], l)
			}
			fmt.Fprintf(&b, "%d%s%s\r\n", rep.code, sep, l)
		}
		again, err := readReply(bufio.NewReaderSize(strings.NewReader(b.String()), maxReplyLine))
		if err != nil {
			t.Fatalf("reply written out again: %v\n%q", err, b.String())
		}
		if again.code != rep.code || again.enhanced != rep.enhanced || again.text() != rep.text() && rep.enhanced == (gosmtp.EnhancedCode{}) {
			t.Fatalf("read back %+v, want %+v", again, rep)
		}
	})
}
