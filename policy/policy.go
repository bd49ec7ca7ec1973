// Package policy decides what the submission proxy does with one outbound
// message: refuse it (with an SMTP reply code, RFC 3463 enhanced status and
// a sentence for the user), or send it as one or more envelopes, each
// signed and/or encrypted (RFC 8551) with a content cipher and key transport
// every recipient of that envelope can handle.
//
// The package is pure: it does no I/O and knows nothing of certificates or
// stores. The caller describes the sender and each recipient with plain
// facts, and Decide turns them and the configured Policy into a Decision.
//
// The rules, in the order they are applied:
//   - Signing uses only the authenticated user's own Digital ID, so the
//     From address must be that mailbox.
//   - "always" never downgrades silently: sign=always refuses a message it
//     cannot sign, encrypt=always refuses a message with any recipient that
//     has no usable certificate, naming those recipients.
//   - Nothing is sent unsigned or unencrypted because a key is locked: when
//     the sender's Digital ID would sign but is locked, the message is
//     refused with a temporary error so the client retries after unlocking.
//   - Encrypted envelopes are encrypted to every recipient in them plus the
//     sender (when the sender has a Digital ID), so the sender can read it.
//   - Under encrypt=when-possible, recipients without a certificate get a
//     separate envelope that is only signed (or plain under sign=never).
//   - Every Bcc recipient gets an envelope of its own, so no recipient can
//     learn of a Bcc recipient from the envelope or the CMS RecipientInfos.
//   - AES-256-CBC is the default content cipher; AES-256-GCM
//     (AuthEnvelopedData, RFC 5083/5084) is chosen only when every key
//     recipient of the envelope advertises it; RSA-OAEP (RFC 8017) key
//     transport is used per key recipient that advertises it.
package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Mode is a configured policy for signing or encrypting.
type Mode string

// The policy modes, spelled as in the configuration file.
const (
	Always       Mode = "always"        // refuse what cannot be done
	WhenPossible Mode = "when-possible" // do it where it can be done
	Never        Mode = "never"         // never do it
)

// Modes lists every valid Mode.
func Modes() []Mode { return []Mode{Always, WhenPossible, Never} }

// Valid reports whether m is one of the defined modes.
func (m Mode) Valid() bool {
	return m == Always || m == WhenPossible || m == Never
}

// ParseMode returns the Mode spelled s, or an error naming the valid ones.
func ParseMode(s string) (Mode, error) {
	if m := Mode(s); m.Valid() {
		return m, nil
	}
	return "", fmt.Errorf("policy mode %q: %w", s, ErrInvalidMode)
}

// Policy is the configured outbound policy.
type Policy struct {
	Sign    Mode
	Encrypt Mode
}

// Capabilities are the algorithms a certificate holder advertises
// (SMIMECapabilities, RFC 8551 section 2.5.2) beyond the defaults every
// S/MIME agent supports (AES-CBC, RSA PKCS#1 v1.5 key transport).
type Capabilities struct {
	AESGCM  bool // AES-GCM AuthEnvelopedData (RFC 5084)
	RSAOAEP bool // RSAES-OAEP key transport (RFC 8017, RFC 4055)
}

// Sender is what is known about the authenticated user sending a message.
type Sender struct {
	// Address is the authenticated mailbox; it is used in reasons and as
	// the sender's entry in the key recipients of encrypted envelopes.
	Address string
	// HasID reports whether the mailbox has a usable Digital ID (enrolled,
	// issuing root accepted, not revoked).
	HasID bool
	// Unlocked reports whether that Digital ID's keys are currently unlocked.
	Unlocked bool
	// FromMatches reports whether the message's From address is the
	// authenticated mailbox, which signing requires.
	FromMatches bool
	// Caps are the capabilities of the sender's own encryption certificate.
	Caps Capabilities
}

// Recipient is what is known about one envelope recipient (RCPT TO).
type Recipient struct {
	Address string
	// HasCert reports whether a usable encryption certificate is known.
	HasCert bool
	// Caps are the capabilities advertised for that certificate.
	Caps Capabilities
	// Bcc reports that the address appears in neither To nor Cc.
	Bcc bool
}

// Cipher is a content-encryption algorithm, named as on the command line.
type Cipher string

// Content ciphers.
const (
	AES256CBC Cipher = "aes256-cbc" // EnvelopedData, the default
	AES256GCM Cipher = "aes256-gcm" // AuthEnvelopedData
)

// KeyRecipient is one party the content-encryption key is wrapped for.
type KeyRecipient struct {
	Address string
	OAEP    bool // RSA-OAEP key transport instead of PKCS#1 v1.5
	Sender  bool // the sender's own copy, not an envelope recipient
}

// Envelope is one copy of the message handed to the upstream server.
type Envelope struct {
	// Recipients are the RCPT TO addresses of this copy, in input order.
	Recipients []string
	// Bcc reports a copy for a single Bcc recipient.
	Bcc bool
	// Sign reports that the copy is signed with the sender's Digital ID.
	Sign bool
	// Encrypt reports that the copy is encrypted (after signing).
	Encrypt bool
	// Cipher is the content cipher; empty when Encrypt is false.
	Cipher Cipher
	// KeyRecipients are the parties the content key is wrapped for: every
	// recipient of the copy, then the sender when it has a Digital ID.
	// Empty when Encrypt is false.
	KeyRecipients []KeyRecipient
}

// Sentinel errors a Refusal unwraps to, for callers that branch on why.
var (
	ErrInvalidMode      = errors.New("invalid policy mode: must be always, when-possible or never")
	ErrNoRecipients     = errors.New("no recipients")
	ErrNoDigitalID      = errors.New("sender has no Digital ID")
	ErrFromMismatch     = errors.New("the From address is not the authenticated mailbox")
	ErrRecipientsNoCert = errors.New("recipients without a certificate")
	ErrLocked           = errors.New("the Digital ID is locked")
	ErrMisconfigured    = errors.New("outbound policy misconfigured")
)

// Refusal is a decision not to send the message at all, with the reply
// the submission proxy gives the client.
type Refusal struct {
	Code     int    // SMTP reply code, 4xx temporary or 5xx permanent
	Enhanced string // RFC 3463 enhanced status code, e.g. "5.7.1"
	Reason   string // one sentence for the user; no secrets
	// Recipients names the recipients the refusal is about, if any.
	Recipients []string
	err        error
}

// Error returns the reply line without the code prefix decoration a
// server adds: "554 5.7.1 reason".
func (r *Refusal) Error() string {
	return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Reason)
}

// Unwrap returns the sentinel error naming the cause.
func (r *Refusal) Unwrap() error { return r.err }

// Temporary reports whether the client should retry later (4xx).
func (r *Refusal) Temporary() bool { return r.Code >= 400 && r.Code < 500 }

// Decision is the outcome of Decide: either Refusal is set, or Envelopes
// holds at least one envelope and together they cover every recipient
// exactly once.
type Decision struct {
	Refusal   *Refusal
	Envelopes []Envelope
}

// Err returns the refusal as an error, or nil.
func (d Decision) Err() error {
	if d.Refusal == nil {
		return nil
	}
	return d.Refusal
}

// maxNamed caps how many addresses a reason names; SMTP reply lines are
// limited to 512 octets (RFC 5321 section 4.5.3.1.5).
const maxNamed = 5

func nameList(addrs []string) string {
	if len(addrs) <= maxNamed {
		return strings.Join(addrs, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(addrs[:maxNamed], ", "), len(addrs)-maxNamed)
}
