package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// IdentityState is where a Digital ID is in its life.
type IdentityState string

// Digital ID states.
const (
	// StatePendingTrust: keys and certificates exist, the user has not yet
	// accepted the issuing root; not usable yet, resumable.
	StatePendingTrust IdentityState = "pending_trust"
	StateActive       IdentityState = "active"
	StateRevoked      IdentityState = "revoked"
)

// Identity is a Digital ID: one mailbox, one name, a master key wrapped
// under the user's password (crypto/seal record, Argon2 parameters inside).
// At most one Digital ID per mailbox is not revoked.
type Identity struct {
	ID              string // chosen by the caller (it is bound into sealed records)
	Email           string
	Name            string
	State           IdentityState
	MasterKeyWrap   []byte // seal.WrapMasterKey output
	RootFingerprint string // SHA-256 hex of the root the certificates chain to
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// KeyPurpose says what a key pair is for.
type KeyPurpose string

// Key purposes.
const (
	PurposeSign    KeyPurpose = "sign"
	PurposeEncrypt KeyPurpose = "encrypt"
)

// KeyStatus says whether a key is the one in use.
type KeyStatus string

// Key statuses. Superseded encryption keys stay to decrypt old mail.
const (
	KeyCurrent    KeyStatus = "current"
	KeySuperseded KeyStatus = "superseded"
	KeyRevoked    KeyStatus = "revoked"
)

// Key is one key pair of a Digital ID with its certificate. A Digital ID
// gathers several encryption keys over time (key history).
type Key struct {
	ID         string // chosen by the caller (bound into the sealed record)
	IdentityID string
	Purpose    KeyPurpose
	CertDER    []byte
	SealedKey  []byte // seal.Seal output of the PKCS#8 private key
	Serial     string // certificate serial, hex
	NotAfter   time.Time
	Status     KeyStatus
	CreatedAt  time.Time
}

// Escrow is an encryption key's private key as CMS EnvelopedData (DER) to
// the CA's key-recovery certificate.
type Escrow struct {
	KeyID     string
	Envelope  []byte
	CreatedAt time.Time
}

// TokenPurpose says what a security token lets its holder do.
type TokenPurpose string

// Token purposes.
const (
	TokenEnroll  TokenPurpose = "enroll"
	TokenRecover TokenPurpose = "recover"
)

// Token is a single-use security token, kept only as its HMAC.
type Token struct {
	Hash      []byte
	Email     string
	Purpose   TokenPurpose
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero while unused
	UsedBy    string    // Digital ID id that redeemed it
}

// Used reports whether the token was redeemed.
func (t Token) Used() bool { return !t.UsedAt.IsZero() }

// TokenUse is a redemption attempt: it succeeds only for an unused,
// unexpired token of this mailbox and purpose.
type TokenUse struct {
	Hash    []byte
	Email   string
	Purpose TokenPurpose
	UsedBy  string
	At      time.Time
}

// CertSource says how a certificate reached the directory.
type CertSource string

// Certificate sources.
const (
	SourceEnrolled  CertSource = "enrolled"
	SourceHarvested CertSource = "harvested"
	SourceImported  CertSource = "imported"
)

// DirectoryCert is a certificate known for an address. Owner is the
// mailbox whose mail it was harvested from, or "" for org-wide entries.
// One row per (Owner, Fingerprint).
type DirectoryCert struct {
	Email        string
	Fingerprint  string // SHA-256 hex of CertDER; filled in when empty
	CertDER      []byte
	Source       CertSource
	Capabilities []byte // SMIMECapabilities seen with it, DER
	FirstSeen    time.Time
	LastSeen     time.Time
	Owner        string
}

// ScopeOrg is the trust scope of organisation-wide roots; any other scope
// is the mailbox of the user who accepted the root.
const ScopeOrg = "org"

// TrustRoot is a root certificate trusted org-wide or by one user.
type TrustRoot struct {
	Fingerprint string // SHA-256 hex of CertDER; filled in when empty
	CertDER     []byte
	Scope       string // ScopeOrg or a mailbox
	AcceptedAt  time.Time
}

// UpgradeState is where a mailbox's legacy key upgrade stands.
type UpgradeState string

// Legacy upgrade states.
const (
	UpgradePending  UpgradeState = "pending"
	UpgradeDone     UpgradeState = "done"
	UpgradeCanceled UpgradeState = "canceled"
)

// Upgrade is a mailbox's legacy upgrade state.
type Upgrade struct {
	Email     string
	State     UpgradeState
	UpdatedAt time.Time
}

// AuditEntry is one line of the audit log. It names who did what to
// which subject; it never holds secrets.
type AuditEntry struct {
	Seq     int64 // assigned by the store, increasing
	Time    time.Time
	Actor   string // "admin", a mailbox, "system"
	Action  string // "token.create", "identity.enroll", …
	Subject string // a mailbox, a fingerprint, a Digital ID id
}

// AuditFilter selects audit entries; zero fields match everything.
type AuditFilter struct {
	Subject string
	Since   time.Time
	Limit   int
}

// NormalizeEmail is how every Store compares mailboxes.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Fingerprint is the SHA-256 of a certificate, lower-case hex.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
