package smtp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"smimeproxy/crypto/smime"
)

func TestFromUpstream(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		code     int
		enhanced gosmtp.EnhancedCode
		text     string
		lost     bool
	}{
		{"refusal kept", &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, 550, gosmtp.EnhancedCode{5, 1, 1}, "Mail server: no such user", false},
		{"wrapped refusal", fmt.Errorf("rcpt: %w", &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 2, 2}, Message: "full"}), 452, gosmtp.EnhancedCode{4, 2, 2}, "Mail server: full", false},
		{"mismatched enhanced code", &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "x"}, 451, gosmtp.EnhancedCode{4, 0, 0}, "Mail server: x", false},
		{"control characters and lines", &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 0, 0}, Message: "bad\r\n554 injected\x00\x1b[31m \xff end"}, 554, gosmtp.EnhancedCode{5, 0, 0}, "Mail server: bad 554 injected[31m end", false},
		{"empty text", &gosmtp.SMTPError{Code: 554, Message: ""}, 554, gosmtp.EnhancedCode{5, 0, 0}, "Mail server: no reason given", false},
		{"I/O error", errors.New("write tcp 127.0.0.1:1->127.0.0.1:2: /secret/path broken pipe"), 451, gosmtp.EnhancedCode{4, 4, 2}, "connection to the mail server was lost", true},
		{"2xx is not a refusal", &gosmtp.SMTPError{Code: 250, Message: "ok?"}, 451, gosmtp.EnhancedCode{4, 4, 2}, "connection to the mail server was lost", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, lost := fromUpstream(tc.err, "sid")
			if r.Code != tc.code || r.EnhancedCode != tc.enhanced || !strings.Contains(r.Message, tc.text) || lost != tc.lost {
				t.Errorf("got %d %v %q lost=%v, want %d %v …%s… lost=%v", r.Code, r.EnhancedCode, r.Message, lost, tc.code, tc.enhanced, tc.text, tc.lost)
			}
			if strings.ContainsAny(r.Message, "\r\n\x00") || strings.Contains(r.Message, "/secret/path") {
				t.Errorf("unsafe reply text %q", r.Message)
			}
		})
	}
	long := &gosmtp.SMTPError{Code: 554, Message: strings.Repeat("x", 5000)}
	if r, _ := fromUpstream(long, "sid"); len(r.Message) > maxReplyText+len("Mail server: ")+1 {
		t.Errorf("long upstream text kept: %d bytes", len(r.Message))
	}
}

// FuzzMessageInput feeds client bytes through the checks and the header
// parsing a message gets at DATA: whatever the input, the result is a
// refusal with a 5xx reply, or a message with one From, no Bcc field left,
// that composes back.
func FuzzMessageInput(f *testing.F) {
	f.Add([]byte("From: a@example.test\r\nTo: b@example.test\r\nBcc: c@example.test\r\n\r\nbody\r\n"), false)
	f.Add([]byte("From: a@example.test\r\nTo: undisclosed-recipients:;\r\n\r\n"), false)
	f.Add([]byte("From: =?x-unknown?q?A?= <a@example.test>\r\nCc: \"B, b\" <b@example.test>, c@example.test\r\n\r\nx"), true)
	f.Add([]byte("From: a@example.test\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\n--x--\r\n"), true)
	f.Add([]byte("From: a\n.\nMAIL FROM:<x>\r\n"), false)
	s := &session{id: "fuzz", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	f.Fuzz(func(t *testing.T, raw []byte, eightBit bool) {
		if r := checkBytes(raw, eightBit); r != nil {
			if r.Code/100 != 5 {
				t.Fatalf("check refusal %d", r.Code)
			}
			return
		}
		m, r := s.parseMessage(bytes.Clone(raw)) // parsing rearranges its input; the engine's must stay
		if r != nil {
			if r.Code/100 != 5 {
				t.Fatalf("parse refusal %d", r.Code)
			}
			return
		}
		if len(m.from) == 0 {
			t.Fatal("accepted without a From address")
		}
		for _, fl := range m.outer {
			if strings.EqualFold(fl.Name, "bcc") {
				t.Fatal("Bcc field kept")
			}
		}
		var b bytes.Buffer
		if err := composeCopy(&b, m); err != nil {
			t.Fatalf("compose: %v", err)
		}
		// Only the header block holds fields: "Bcc:" in the body is text.
		head, _, _ := bytes.Cut(b.Bytes(), []byte("\r\n\r\n"))
		head = append([]byte("\r\n"), bytes.ToLower(head)...)
		if bytes.Contains(head, []byte("\r\nbcc:")) {
			t.Fatal("Bcc field in the composed copy")
		}
	})
}

func composeCopy(w io.Writer, m *message) error {
	return writeCopy(w, m, smime.EntityBytes(m.entity))
}
