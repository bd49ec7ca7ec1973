package smtp

import (
	"errors"
	"fmt"
	"strings"

	gosmtp "github.com/emersion/go-smtp"
)

// Every reply the proxy sends is built here: a code, an RFC 3463 enhanced
// status and a fixed sentence. Session methods only ever return values made
// by reply (never a wrapped or internal error; the server answers anything
// else with a fixed 451): internal detail goes to the log under the session
// id, and the id goes to the client.

// reply builds an SMTP reply. enhanced is "x.y.z".
func reply(code int, enhanced string, format string, args ...any) *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: code, EnhancedCode: parseEnhanced(enhanced, code), Message: oneLine(fmt.Sprintf(format, args...))}
}

func parseEnhanced(s string, code int) gosmtp.EnhancedCode {
	var e gosmtp.EnhancedCode
	if n, err := fmt.Sscanf(s, "%d.%d.%d", &e[0], &e[1], &e[2]); err != nil || n != 3 || !enhancedOK(e, code) {
		return gosmtp.EnhancedCode{code / 100, 0, 0}
	}
	return e
}

// enhancedOK reports whether e is an RFC 3463 status fit to go with code:
// the same class, subject and detail of one to three digits.
func enhancedOK(e gosmtp.EnhancedCode, code int) bool {
	return e[0] == code/100 && e[1] >= 0 && e[1] <= 999 && e[2] >= 0 && e[2] <= 999
}

// Fixed replies.
var (
	errAuthRequired = reply(530, "5.7.0", "Authentication required")
	errAuthFailed   = reply(535, "5.7.8", "Authentication failed: the mail server refused this login")
	errAuthzid      = reply(535, "5.7.8", "Authentication failed: acting for another user is not supported")
	errTooLarge     = reply(552, "5.3.4", "Message too big for this server")
	errNUL          = reply(554, "5.6.0", "The message contains NUL characters, which SMTP does not carry; nothing was sent")
	errBareLF       = reply(554, "5.6.0", "The message contains a bare LF or CR; every line must end with CRLF (RFC 5321 section 2.3.8); nothing was sent")
	err8Bit         = reply(554, "5.6.0", "The message contains 8-bit data but MAIL FROM did not declare BODY=8BITMIME; nothing was sent")
	errLongLine     = reply(554, "5.6.0", "The message has a line longer than this server accepts; nothing was sent")
	errUTF8         = reply(553, "5.6.7", "The mail server does not accept SMTPUTF8 messages")
	errNoFrom       = reply(554, "5.6.0", "The message has no From header field with exactly one address (RFC 5322); nothing was sent")
)

// errInternal is the reply to a failure inside the proxy: nothing was sent.
func errInternal(id string) *gosmtp.SMTPError {
	return reply(451, "4.3.0", "Local error while securing the message; nothing was sent, try again later (session %s)", id)
}

func errUpstreamUnavailable(id string) *gosmtp.SMTPError {
	return reply(454, "4.7.0", "The mail server cannot be reached to check this login; try again later (session %s)", id)
}

func errUpstreamLost(id string) *gosmtp.SMTPError {
	return reply(451, "4.4.2", "The connection to the mail server was lost; nothing was sent, reconnect and try again (session %s)", id)
}

func errMalformed(id string) *gosmtp.SMTPError {
	return reply(554, "5.6.0", "The message header is malformed; nothing was sent (session %s)", id)
}

// fromUpstream turns an error of the upstream client into a reply for the
// client. An SMTP reply of the upstream keeps its code, enhanced status and
// (sanitised) text, prefixed so the user knows who said it; anything else
// (I/O error, timeout, protocol confusion) means the connection can no
// longer be trusted and gives a fixed 451. lost reports the latter.
func fromUpstream(err error, id string) (r *gosmtp.SMTPError, lost bool) {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) && (se.Code/100 == 4 || se.Code/100 == 5) {
		enh := se.EnhancedCode
		if !enhancedOK(enh, se.Code) {
			enh = gosmtp.EnhancedCode{se.Code / 100, 0, 0}
		}
		text := sanitize(se.Message)
		if text == "" {
			text = "no reason given"
		}
		return &gosmtp.SMTPError{Code: se.Code, EnhancedCode: enh, Message: "Mail server: " + text}, false
	}
	return errUpstreamLost(id), true
}

// maxReplyText bounds text copied from the upstream.
const maxReplyText = 300

// sanitize keeps printable ASCII of an upstream reply text, on one line.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		}
		if b.Len() >= maxReplyText {
			break
		}
	}
	return strings.TrimSpace(strings.Join(strings.Fields(b.String()), " "))
}

// oneLine keeps a reply on one line: the server turns LF into a
// multi-line reply, and CR has no place in one.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// nameList names at most a few addresses.
func nameList(addrs []string) string {
	const max = 5
	if len(addrs) <= max {
		return strings.Join(addrs, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(addrs[:max], ", "), len(addrs)-max)
}
