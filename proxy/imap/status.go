package imap

import (
	"bytes"
	"errors"
	"strings"

	"smimeproxy/crypto/smime"
)

// StatusHeader is the header field the proxy adds to every message it
// processed as S/MIME, stating what was verified. Its value has exactly
// this grammar (ABNF, RFC 5234; items separated by "; "):
//
//	status     = enc "; " sig *( "; " flag )
//	enc        = "decrypted"            ; an envelope was opened with the user's key
//	           / "not-encrypted"        ; no envelope at the top level
//	           / "not-decrypted"        ; served as it arrived, see error=
//	sig        = "signature valid"      ; every signature layer verified against the trust store
//	           / "signature invalid (" reason ")"
//	           / "signature absent"     ; no signature layer
//	           / "signature unknown"    ; not looked at: the message could not be opened
//	flag       = "signer=" address      ; the (innermost) signer's certificate address
//	           / "from-mismatch"        ; the signer's certificate does not carry the From address
//	           / "not-integrity-protected" ; CBC content without a valid signature
//	           / "error=" reason        ; the original message is served unchanged
//	reason     = "malformed" / "no-matching-key" / "decryption-failed"
//	           / "unsupported-algorithm" / "too-deep" / "no-digital-id"
//	           / "bad-signature" / "untrusted-signer" / "expired-certificate"
//	           / "wrong-key-usage" / "no-signer-certificate" / "invalid"
//	address    = 1*( ALPHA / DIGIT / "." / "-" / "_" / "+" / "@" / … )
//	             ; addr-spec characters without ";", quotes or white space;
//	             ; any other address is written as "unprintable"
//
// Examples:
//
//	Smimeproxy-Status: decrypted; signature valid; signer=alice@example.test
//	Smimeproxy-Status: decrypted; signature absent; not-integrity-protected
//	Smimeproxy-Status: not-encrypted; signature valid; signer=mallory@example.test; from-mismatch
//	Smimeproxy-Status: not-encrypted; signature invalid (bad-signature); signer=alice@example.test
//	Smimeproxy-Status: not-decrypted; signature unknown; error=no-matching-key
//
// "signature valid" alone never means "signed by the From address": that
// holds only when from-mismatch is absent. Reasons are fixed words, never
// internal error text. Every header field whose name starts with
// "Smimeproxy-" that arrives from outside (outer header, decrypted entity,
// plain messages) is removed, so only the proxy's own statement reaches
// the client.
const StatusHeader = "Smimeproxy-Status"

// statusPrefix: every field whose name starts with it is the proxy's own.
const statusPrefix = "smimeproxy-"

// Status is the proxy's statement about one message (see StatusHeader).
type Status struct {
	Decrypted    bool
	Failed       string // reason the message is served as it arrived; "" when opened
	Signed       bool   // at least one signature layer
	Valid        bool   // every signature layer valid
	SigReason    string // reason a signature is invalid
	Signer       string // signer's address, "" when unknown
	FromMismatch bool
	NoIntegrity  bool
}

// String renders the header value in the StatusHeader grammar.
func (s Status) String() string {
	var b strings.Builder
	switch {
	case s.Failed != "":
		b.WriteString("not-decrypted; signature unknown")
	default:
		if s.Decrypted {
			b.WriteString("decrypted")
		} else {
			b.WriteString("not-encrypted")
		}
		switch {
		case !s.Signed:
			b.WriteString("; signature absent")
		case s.Valid:
			b.WriteString("; signature valid")
		default:
			b.WriteString("; signature invalid (" + orInvalid(s.SigReason) + ")")
		}
		if s.Signed && s.Signer != "" {
			b.WriteString("; signer=" + s.Signer)
		}
		if s.Signed && s.FromMismatch {
			b.WriteString("; from-mismatch")
		}
		if s.NoIntegrity {
			b.WriteString("; not-integrity-protected")
		}
	}
	if s.Failed != "" {
		b.WriteString("; error=" + s.Failed)
	}
	return b.String()
}

func orInvalid(r string) string {
	if r == "" {
		return "invalid"
	}
	return r
}

// failureReason maps an error of smime.Open to a fixed reason word; the
// error text itself stays in the log.
func failureReason(err error) string {
	switch {
	case errors.Is(err, smime.ErrNoMatchingRecipient):
		return "no-matching-key"
	case errors.Is(err, smime.ErrDecryptFailed):
		return "decryption-failed"
	case errors.Is(err, smime.ErrUnsupportedAlgorithm):
		return "unsupported-algorithm"
	case errors.Is(err, smime.ErrTooDeep):
		return "too-deep"
	}
	return "malformed"
}

// signatureReason maps a failed verification to a fixed reason word. The
// smime package reports reasons as sentences; only their kind is kept.
func signatureReason(v *smime.VerifyResult) string {
	if v.Signer == nil {
		return "no-signer-certificate"
	}
	for _, r := range v.Reasons {
		if strings.HasPrefix(r, "warning:") {
			continue
		}
		switch {
		case strings.Contains(r, "not in the message"):
			return "no-signer-certificate"
		case strings.Contains(r, "unsupported"):
			return "unsupported-algorithm"
		case strings.Contains(r, "chain is not trusted"):
			if strings.Contains(r, "expired") || strings.Contains(r, "not yet valid") {
				return "expired-certificate"
			}
			return "untrusted-signer"
		case strings.Contains(r, "no trusted roots"):
			return "untrusted-signer"
		case strings.Contains(r, "key usage"):
			return "wrong-key-usage"
		case strings.Contains(r, "content was changed"), strings.Contains(r, "does not verify"),
			strings.Contains(r, "messageDigest"), strings.Contains(r, "contentType attribute"),
			strings.Contains(r, "cannot be encoded"):
			return "bad-signature"
		}
	}
	return "invalid"
}

// printableAddress returns a certificate address fit for the status
// header, or "unprintable": a certificate may carry any bytes, and a
// crafted one must not add words to the statement.
func printableAddress(a string) string {
	if a == "" || len(a) > 254 {
		return "unprintable"
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte(".-_+@!#$%&'*/=?^`{|}~", c) >= 0
		if !ok {
			return "unprintable"
		}
	}
	return a
}

// isStatusName reports whether a header field name is reserved for the
// proxy. White space before the colon (obsolete syntax, RFC 5322 §4.5.3)
// does not hide a field.
func isStatusName(name []byte) bool {
	name = bytes.TrimRight(name, " \t")
	return len(name) >= len(statusPrefix) && strings.EqualFold(string(name[:len(statusPrefix)]), statusPrefix)
}

// StripStatus returns msg (a whole message, or a header block) without
// the header fields reserved for the proxy (see StatusHeader), including
// their folded continuation lines. Everything else, including the body
// and the line ends, stays byte for byte; msg itself is returned when
// nothing is removed.
func StripStatus(msg []byte) []byte { return dropFields(msg, isStatusName) }

// contentFieldsOnly returns a decrypted or unwrapped entity with only its
// Content-* header fields (RFC 2045). Any other field there would join
// the outer ones at the top of the view, where a second From, Sender or
// Subject from inside the signature could be shown in place of the one
// the status speaks about.
func contentFieldsOnly(entity []byte) []byte {
	return dropFields(entity, func(name []byte) bool {
		name = bytes.TrimRight(name, " \t")
		return len(name) < 8 || !strings.EqualFold(string(name[:8]), "content-")
	})
}

// dropFields removes from the header block at the start of msg every
// field whose name drop selects, with its continuation lines. A line
// without a colon is judged by its start: a line a lenient client might
// still read as a field must not carry anything the proxy removes.
func dropFields(msg []byte, drop func(name []byte) bool) []byte {
	var out []byte // nil until the first removal
	pos := 0       // start of the current line
	kept := 0      // msg[kept:pos] is pending, not yet copied to out
	skipping := false
	for pos < len(msg) {
		end := bytes.IndexByte(msg[pos:], '\n')
		next := len(msg)
		if end >= 0 {
			next = pos + end + 1
		}
		line := msg[pos:next]
		if string(line) == "\n" || string(line) == "\r\n" {
			break // end of the header block, as headerEnd sees it
		}
		if line[0] == ' ' || line[0] == '\t' {
			if skipping {
				kept = next
			}
			pos = next
			continue
		}
		name := line
		if colon := bytes.IndexByte(line, ':'); colon >= 0 {
			name = line[:colon]
		}
		skipping = drop(name)
		if skipping {
			if out == nil {
				out = make([]byte, 0, len(msg))
			}
			out = append(out, msg[kept:pos]...)
			kept = next
		}
		pos = next
	}
	if out == nil {
		return msg
	}
	return append(out, msg[kept:]...)
}

// stripStatusFields drops the proxy's reserved fields from a parsed header.
func stripStatusFields(h smime.Header) smime.Header {
	out := make(smime.Header, 0, len(h))
	for _, f := range h {
		if !isStatusName([]byte(f.Name)) {
			out = append(out, f)
		}
	}
	return out
}
