package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Purpose says what a security token may be redeemed for.
type Purpose string

// Token purposes.
const (
	PurposeEnroll  Purpose = "enroll"  // first enrolment of a mailbox
	PurposeRecover Purpose = "recover" // enrol again, restoring the escrowed encryption keys
)

// Valid reports whether p is a known purpose.
func (p Purpose) Valid() bool { return p == PurposeEnroll || p == PurposeRecover }

// DefaultTokenTTL is how long a security token stays redeemable unless the
// administrator asks for another lifetime.
const DefaultTokenTTL = 72 * time.Hour

// MaxTokenTTL caps what an administrator may ask for: a token is a bearer
// secret that travels by mail or on paper.
const MaxTokenTTL = 30 * 24 * time.Hour

// Token errors; each one a user can act on differently.
var (
	ErrTokenMalformed    = errors.New("security token is mistyped: check the characters and try again")
	ErrTokenUnknown      = errors.New("security token is not known: ask your administrator for a new one")
	ErrTokenUsed         = errors.New("security token was already used: ask your administrator for a new one")
	ErrTokenExpired      = errors.New("security token has expired: ask your administrator for a new one")
	ErrTokenWrongMailbox = errors.New("security token was issued for another mailbox")
	ErrTokenWrongPurpose = errors.New("security token was issued for another purpose (enrolment vs. recovery)")
)

// Secret is a string that must never reach a log line or an error text:
// security tokens and passwords. fmt and slog print it as "***"; the value
// itself is string(s).
type Secret string

// String hides the value from fmt's %s and %v.
func (Secret) String() string { return "***" }

// GoString hides the value from fmt's %#v.
func (Secret) GoString() string { return `"***"` }

// Format hides the value from every fmt verb.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, "***") }

// LogValue hides the value from log/slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("***") }

// MarshalText hides the value from encoding/json and friends; a reply that
// must carry a token converts it with string() on purpose.
func (Secret) MarshalText() ([]byte, error) { return []byte("***"), nil }

// Token layout: 120 random bits as 24 Crockford base32 symbols, one check
// symbol (Crockford's mod-37 check), shown in five groups of five.
const (
	tokenDataLen  = 24
	tokenRandLen  = tokenDataLen * 5 / 8 // 15 bytes = 120 bits
	tokenGroupLen = 5
)

// crockford is Crockford's base32 alphabet; the check symbol may also be one
// of the five extra symbols (values 32..36).
const (
	crockford      = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	crockfordCheck = crockford + "*~$=U"
)

// crockfordValue maps an upper-cased input symbol to its value, folding the
// typos Crockford's scheme forgives: O→0, I and L→1. -1: not a data symbol.
func crockfordValue(c byte) int {
	switch c {
	case 'O':
		return 0
	case 'I', 'L':
		return 1
	}
	return strings.IndexByte(crockford, c)
}

// NewToken draws a fresh token from r (crypto/rand when nil) and returns it
// in its grouped, printable form.
func NewToken(r io.Reader) (Secret, error) {
	if r == nil {
		r = rand.Reader
	}
	var raw [tokenRandLen]byte
	if _, err := io.ReadFull(r, raw[:]); err != nil {
		return "", fmt.Errorf("draw security token: %w", err)
	}
	data := make([]byte, 0, tokenDataLen)
	var acc uint64
	bits := 0
	for _, b := range raw {
		acc = acc<<8 | uint64(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			data = append(data, crockford[(acc>>bits)&31])
		}
	}
	return Secret(groupToken(string(data) + string(checkSymbol(string(data))))), nil
}

// checkSymbol computes Crockford's check symbol: the value of the data
// symbols as one number, mod 37. A prime modulus catches every single
// substitution and every swap of two neighbouring symbols.
func checkSymbol(data string) byte {
	m := 0
	for i := 0; i < len(data); i++ {
		m = (m*32 + strings.IndexByte(crockford, data[i])) % 37
	}
	return crockfordCheck[m]
}

func groupToken(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += tokenGroupLen {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i:min(i+tokenGroupLen, len(s))])
	}
	return b.String()
}

// ParseToken accepts a token as a person types it (any case, with or
// without dashes and spaces, O for 0, I or L for 1), checks its check symbol
// and returns the canonical grouped form. A typo gives ErrTokenMalformed,
// found here before any lookup in the store.
func ParseToken(s string) (Secret, error) {
	data, err := tokenData(s)
	if err != nil {
		return "", err
	}
	return Secret(groupToken(data + string(checkSymbol(data)))), nil
}

// tokenData returns the 24 canonical data symbols of a typed token.
func tokenData(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			continue
		case r >= 0x80:
			return "", fmt.Errorf("%w (unexpected character)", ErrTokenMalformed)
		}
		b.WriteByte(byte(r))
	}
	in := strings.ToUpper(b.String())
	if len(in) != tokenDataLen+1 {
		return "", fmt.Errorf("%w (it has %d characters, a token has %d)", ErrTokenMalformed, len(in), tokenDataLen+1)
	}
	data := make([]byte, tokenDataLen)
	for i := range tokenDataLen {
		v := crockfordValue(in[i])
		if v < 0 {
			return "", fmt.Errorf("%w (character %d is not allowed)", ErrTokenMalformed, i+1)
		}
		data[i] = crockford[v]
	}
	check := in[tokenDataLen]
	if v := crockfordValue(check); v >= 0 {
		check = crockford[v]
	}
	if checkSymbol(string(data)) != check {
		return "", fmt.Errorf("%w (the check character does not match)", ErrTokenMalformed)
	}
	return string(data), nil
}

// tokenHash is what the store keeps instead of the token: HMAC-SHA256 of the
// canonical data symbols under the server's token secret, so a copy of the
// database yields no redeemable token. The secret lives in the same store
// (settings), so a full copy does allow offline guessing; with 120 random
// bits per token that is out of reach anyway, and the HMAC keeps a leaked
// token table alone useless.
func tokenHash(serverSecret []byte, data string) []byte {
	m := hmac.New(sha256.New, serverSecret)
	m.Write([]byte("smimeproxy token v1\x00"))
	m.Write([]byte(data))
	return m.Sum(nil)
}

// tokenInfo is what the store keeps about a token.
type tokenInfo struct {
	Hash    []byte
	Email   string
	Purpose Purpose
	Created time.Time
	Expires time.Time
	Used    time.Time // zero while unused
}

// check tells why a stored token cannot be redeemed for email and purpose at
// now, or nil. Mailbox and purpose come first so a token for someone else
// reveals nothing about that token's state.
func (t tokenInfo) check(email string, purpose Purpose, now time.Time) error {
	switch {
	case t.Email != email:
		return ErrTokenWrongMailbox
	case t.Purpose != purpose:
		return ErrTokenWrongPurpose
	case !t.Used.IsZero():
		return ErrTokenUsed
	case !now.Before(t.Expires):
		return ErrTokenExpired
	}
	return nil
}
