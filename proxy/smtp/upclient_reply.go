package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	gosmtp "github.com/emersion/go-smtp"
)

// Replies of the upstream (RFC 5321 section 4.2, RFC 2034 enhanced status
// codes). The upstream is outside input: every line is checked and bounded.

// errUpstreamProtocol: the upstream sent something that is not a reply
// the client can act on (malformed line, code out of place). The connection
// is out of step and is not used again.
var errUpstreamProtocol = errors.New("upstream protocol error")

const (
	maxReplyLine  = 4096 // bytes per reply line, CRLF included (RFC 5321: 512)
	maxReplyLines = 256  // lines per reply (an EHLO reply has one per extension)
)

// upReply is one reply: its code, the RFC 3463 status of its first line
// when it has one, and its text lines without code and status.
type upReply struct {
	code     int
	enhanced gosmtp.EnhancedCode // zero when the reply has none
	lines    []string
}

// text is the reply's text, lines joined by LF (as go-smtp's client does).
func (r upReply) text() string { return strings.Join(r.lines, "\n") }

// smtpError is the reply as the error type the session's error mapping
// (fromUpstream) reads.
func (r upReply) smtpError() *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: r.code, EnhancedCode: r.enhanced, Message: r.text()}
}

// readReply reads one reply: lines "ddd-text" then a last "ddd text" (or
// just "ddd"), all with the same code. The enhanced status is taken from
// the first line and removed from every line that repeats it (RFC 2034).
// Bare LF line ends are accepted; a line over maxReplyLine bytes, a bad
// code or too many lines is errUpstreamProtocol.
func readReply(r *bufio.Reader) (upReply, error) {
	var rep upReply
	var status string
	for n := 0; ; n++ {
		if n == maxReplyLines {
			return upReply{}, fmt.Errorf("%w: reply of more than %d lines", errUpstreamProtocol, maxReplyLines)
		}
		raw, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return upReply{}, fmt.Errorf("%w: reply line longer than %d bytes", errUpstreamProtocol, r.Size())
		}
		if err != nil {
			return upReply{}, fmt.Errorf("read reply: %w", err)
		}
		line := bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte("\n")), []byte("\r"))
		code, more, text, ok := parseReplyLine(line)
		if !ok {
			return upReply{}, fmt.Errorf("%w: malformed reply line", errUpstreamProtocol)
		}
		if n == 0 {
			rep.code = code
			rep.enhanced, status = parseStatus(text, code)
		} else if code != rep.code {
			return upReply{}, fmt.Errorf("%w: reply lines with codes %d and %d", errUpstreamProtocol, rep.code, code)
		}
		if status != "" {
			text = strings.TrimPrefix(strings.TrimPrefix(text, status), " ")
		}
		rep.lines = append(rep.lines, text)
		if !more {
			return rep, nil
		}
	}
}

// parseReplyLine splits "ddd-text", "ddd text" or "ddd". The code's first
// digit is 2 to 5 (RFC 5321 section 4.2.1; 1yz is not used in SMTP).
func parseReplyLine(line []byte) (code int, more bool, text string, ok bool) {
	if len(line) < 3 || line[0] < '2' || line[0] > '5' || !isDigit(line[1]) || !isDigit(line[2]) {
		return 0, false, "", false
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 {
		return code, false, "", true
	}
	switch line[3] {
	case '-':
		more = true
	case ' ':
	default:
		return 0, false, "", false
	}
	return code, more, string(line[4:]), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseStatus reads an RFC 3463 status "class.subject.detail" at the start
// of text: the class must be the code's, subject and detail 1 to 3 digits.
// It returns the status and its spelling, or zero and "".
func parseStatus(text string, code int) (gosmtp.EnhancedCode, string) {
	word, _, _ := strings.Cut(text, " ")
	parts := strings.Split(word, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || int(parts[0][0]-'0') != code/100 {
		return gosmtp.EnhancedCode{}, ""
	}
	var e gosmtp.EnhancedCode
	for i, p := range parts {
		if len(p) < 1 || len(p) > 3 {
			return gosmtp.EnhancedCode{}, ""
		}
		for j := 0; j < len(p); j++ {
			if !isDigit(p[j]) {
				return gosmtp.EnhancedCode{}, ""
			}
			e[i] = e[i]*10 + int(p[j]-'0')
		}
	}
	return e, word
}
