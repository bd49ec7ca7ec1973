package smtp

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	gosmtp "github.com/emersion/go-smtp"
)

// Command-line parsing of the client-facing server (RFC 5321 section 4.1,
// with the MAIL parameters of RFC 1870, 6152, 6531 and 4954). Everything
// here is a pure function of the line, so it is fuzzed directly
// (FuzzParseCommand).

// Line limits. RFC 5321 section 4.5.3.1.4 allows 512 octets per command
// line; extensions add to MAIL (SIZE, BODY, SMTPUTF8, and 500 for AUTH=
// per RFC 4954 section 5), so commands get some slack. An AUTH command or
// response may be 12288 octets (RFC 4954 section 4).
const (
	maxCommandLine = 1024
	maxAuthLine    = 12288
)

// errSyntax: a command line or its arguments do not parse.
var errSyntax = errors.New("syntax error")

// parseCommand splits a command line (without its line ending) into the
// upper-case verb and the argument. Control characters other than tab have
// no place in a command and make the line a syntax error.
func parseCommand(line string) (verb, arg string, err error) {
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return "", "", errSyntax
		}
	}
	verb, arg, _ = strings.Cut(line, " ")
	if verb == "" || len(verb) > 16 {
		return "", "", errSyntax
	}
	for i := 0; i < len(verb); i++ {
		if c := verb[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return "", "", errSyntax
		}
	}
	return strings.ToUpper(verb), strings.Trim(arg, " \t"), nil
}

// mailArgs is a parsed MAIL FROM argument.
type mailArgs struct {
	from string // "" for the null reverse-path <>
	opts gosmtp.MailOptions
}

// parseMail parses "FROM:<reverse-path> [parameters]". The parameters are
// the ones the proxy offers: SIZE, BODY=7BIT|8BITMIME, SMTPUTF8 (when
// utf8OK) and AUTH. A reply is returned for anything else.
func parseMail(arg string, utf8OK bool) (mailArgs, *gosmtp.SMTPError) {
	var m mailArgs
	rest, ok := cutPrefixFold(arg, "FROM:")
	if !ok {
		return m, reply(501, "5.5.4", "Syntax: MAIL FROM:<address>")
	}
	rest = strings.TrimLeft(rest, " ")
	if strings.HasPrefix(rest, "<>") {
		rest = rest[2:]
	} else {
		var err error
		if m.from, rest, err = parsePath(rest); err != nil {
			return m, reply(501, "5.1.7", "Malformed sender address")
		}
	}
	params, err := parseParams(rest)
	if err != nil {
		return m, reply(501, "5.5.4", "Malformed MAIL parameters")
	}
	for _, p := range params {
		switch p.key {
		case "SIZE":
			n, err := strconv.ParseInt(p.value, 10, 64)
			if err != nil || n < 0 || !p.hasValue {
				return m, reply(501, "5.5.4", "Malformed SIZE parameter")
			}
			m.opts.Size = n
		case "BODY":
			switch strings.ToUpper(p.value) {
			case "7BIT":
				m.opts.Body = gosmtp.Body7Bit
			case "8BITMIME":
				m.opts.Body = gosmtp.Body8BitMIME
			default:
				return m, reply(555, "5.5.4", "BODY must be 7BIT or 8BITMIME")
			}
		case "SMTPUTF8":
			if !utf8OK {
				return m, reply(555, "5.5.4", "SMTPUTF8 is not offered")
			}
			if p.hasValue {
				return m, reply(501, "5.5.4", "SMTPUTF8 takes no value")
			}
			m.opts.UTF8 = true
		case "AUTH":
			v, err := decodeXtext(p.value)
			if err != nil || !p.hasValue {
				return m, reply(501, "5.5.4", "Malformed AUTH parameter")
			}
			if v != "<>" {
				mb, rest, err := parseMailbox(v)
				if err != nil || rest != "" {
					return m, reply(501, "5.5.4", "Malformed AUTH parameter")
				}
				v = mb
			} else {
				v = ""
			}
			m.opts.Auth = &v
		default:
			return m, reply(555, "5.5.4", "MAIL parameter %s is not supported", p.key)
		}
	}
	if !m.opts.UTF8 && !isASCII(m.from) {
		return m, reply(553, "5.6.7", "A non-ASCII address needs the SMTPUTF8 parameter")
	}
	return m, nil
}

// parseRcpt parses "TO:<forward-path>". The proxy offers no RCPT
// parameters (no DSN), so any is refused. "<Postmaster>" without a domain
// is accepted as RFC 5321 section 4.1.1.3 requires.
func parseRcpt(arg string, utf8OK bool) (string, *gosmtp.SMTPError) {
	rest, ok := cutPrefixFold(arg, "TO:")
	if !ok {
		return "", reply(501, "5.5.4", "Syntax: RCPT TO:<address>")
	}
	rest = strings.TrimLeft(rest, " ")
	var to string
	if r, ok := cutPrefixFold(rest, "<Postmaster>"); ok {
		to, rest = rest[1:11], r
	} else {
		var err error
		if to, rest, err = parsePath(rest); err != nil {
			return "", reply(501, "5.1.3", "Malformed recipient address")
		}
	}
	params, err := parseParams(rest)
	if err != nil {
		return "", reply(501, "5.5.4", "Malformed RCPT parameters")
	}
	if len(params) > 0 {
		return "", reply(555, "5.5.4", "RCPT parameter %s is not supported", params[0].key)
	}
	if !utf8OK && !isASCII(to) {
		return "", reply(553, "5.6.7", "A non-ASCII address needs SMTPUTF8 in MAIL FROM")
	}
	return to, nil
}

// parsePath parses "<[@route,@route:]mailbox>" (the brackets are optional,
// as many servers accept) and returns the mailbox and what follows it.
func parsePath(s string) (mailbox, rest string, err error) {
	bracket := strings.HasPrefix(s, "<")
	if bracket {
		s = s[1:]
		if strings.HasPrefix(s, "@") {
			// An obsolete source route: ignored (RFC 5321 section 4.1.1.3).
			i := strings.IndexByte(s, ':')
			if i < 0 {
				return "", "", errSyntax
			}
			s = s[i+1:]
		}
	}
	mailbox, s, err = parseMailbox(s)
	if err != nil {
		return "", "", err
	}
	if bracket {
		if !strings.HasPrefix(s, ">") {
			return "", "", errSyntax
		}
		s = s[1:]
	}
	return mailbox, s, nil
}

// parseMailbox parses local-part "@" domain. A quoted local part is kept
// with its quotes, so the address is passed on exactly as written.
// Addresses are forwarded upstream, so nothing that could end or split a
// command line (controls, spaces outside quotes, brackets) gets through.
func parseMailbox(s string) (mailbox, rest string, err error) {
	i := 0
	if strings.HasPrefix(s, `"`) {
		for i = 1; ; i++ {
			if i >= len(s) {
				return "", "", errSyntax
			}
			c := s[i]
			if c == '\\' {
				i++
				if i >= len(s) || s[i] < 0x20 || s[i] == 0x7f {
					return "", "", errSyntax
				}
				continue
			}
			if c == '"' {
				i++
				break
			}
			if c < 0x20 || c == 0x7f {
				return "", "", errSyntax
			}
		}
	} else {
		for i < len(s) && isAtext(s[i]) {
			i++
		}
		if i == 0 || s[0] == '.' || s[i-1] == '.' || strings.Contains(s[:i], "..") {
			return "", "", errSyntax
		}
	}
	if i >= len(s) || s[i] != '@' {
		return "", "", errSyntax
	}
	j := i + 1
	for j < len(s) && isDomainChar(s[j]) {
		j++
	}
	if j == i+1 {
		return "", "", errSyntax
	}
	mailbox = s[:j]
	if !utf8.ValidString(mailbox) {
		return "", "", errSyntax
	}
	return mailbox, s[j:], nil
}

// isAtext: the characters of a dot-string (RFC 5321 atext and "."), plus
// the UTF-8 of RFC 6531.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0
}

// isDomainChar: letters, digits, "-" and "." of a domain, the UTF-8 of
// RFC 6531, and what an address literal such as [IPv6:2001:db8::1] needs.
func isDomainChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("-.[]:", c) >= 0
}

type param struct {
	key      string // upper case
	value    string
	hasValue bool
}

// parseParams parses " KEY[=value]…" (RFC 5321 esmtp-param). A key may
// appear once.
func parseParams(s string) ([]param, error) {
	if s != "" && s[0] != ' ' {
		return nil, errSyntax
	}
	var ps []param
	for _, f := range strings.Fields(s) {
		k, v, hasValue := strings.Cut(f, "=")
		if k == "" || hasValue && v == "" {
			return nil, errSyntax
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' && i > 0) {
				return nil, errSyntax
			}
		}
		k = strings.ToUpper(k)
		for _, p := range ps {
			if p.key == k {
				return nil, errSyntax
			}
		}
		ps = append(ps, param{key: k, value: v, hasValue: hasValue})
	}
	return ps, nil
}

// decodeXtext decodes RFC 3461 xtext ("+HH" escapes).
func decodeXtext(s string) (string, error) {
	if !strings.Contains(s, "+") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '+' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errSyntax
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil || s[i+1] >= 'a' || s[i+2] >= 'a' {
			return "", errSyntax
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

// parseBdat parses "chunk-size [LAST]" (RFC 3030).
func parseBdat(arg string) (size int64, last bool, err error) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 || len(f) == 2 && !strings.EqualFold(f[1], "LAST") {
		return 0, false, errSyntax
	}
	for i := 0; i < len(f[0]); i++ {
		if f[0][i] < '0' || f[0][i] > '9' {
			return 0, false, errSyntax
		}
	}
	size, err = strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, false, errSyntax
	}
	return size, len(f) == 2, nil
}

// decodeSASL decodes a SASL response line; "=" is the empty response
// (RFC 4954 section 4), which is not the same as no response.
func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errSyntax
	}
	return b, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
