package identity

import (
	"context"
	"errors"
	"time"
)

// State is where a Digital ID stands.
type State string

// Digital ID states.
const (
	// StatePending: enrolled, but its user has not yet accepted the issuing
	// root; not usable, resumable with AcceptRoot.
	StatePending State = "pending"
	// StateActive: usable.
	StateActive State = "active"
	// StateSuperseded: replaced by a recovery enrolment; its encryption keys
	// live on in the new ID, its signing certificate is no longer used.
	StateSuperseded State = "superseded"
	// StateRevoked: withdrawn by an administrator.
	StateRevoked State = "revoked"
)

// live reports whether an ID in state s still belongs to its mailbox as the
// current Digital ID (at most one per mailbox).
func (s State) live() bool { return s == StatePending || s == StateActive }

// Source says where a Digital ID's certificates come from.
type Source string

// Digital ID sources.
const (
	SourceCA     Source = "ca"     // issued by the built-in CA, encryption key escrowed
	SourceImport Source = "import" // imported from an external CA, no escrow
)

// KeyUse says what a key pair of a Digital ID is for.
type KeyUse string

// Key uses.
const (
	UseSign    KeyUse = "sign"
	UseEncrypt KeyUse = "encrypt"
)

func (u KeyUse) signs() bool    { return u == UseSign }
func (u KeyUse) decrypts() bool { return u == UseEncrypt }

// KeyStatus tells current keys from older ones kept to read old mail.
type KeyStatus string

// Key statuses.
const (
	KeyCurrent KeyStatus = "current"
	KeyHistory KeyStatus = "history" // an older encryption key restored by recovery
)

// idRecord is one Digital ID as stored. Master is the master key wrapped
// under the ID's password (crypto/seal); nothing in it is usable without
// the password.
type idRecord struct {
	ID      string
	Email   string
	Name    string
	State   State
	Source  Source
	Created time.Time
	Updated time.Time
	Master  []byte
	RootDER []byte   // the root its user must accept; nil when none is known
	Chain   [][]byte // intermediates between the user certificates and the root
}

// keyRecord is one key pair of a Digital ID: the certificate, the private
// key sealed under the ID's master key, and for built-in CA encryption keys
// the escrow (CMS EnvelopedData to the key-recovery certificate). A
// dual-use certificate (imports) is two records, one per use, each with its
// own sealed copy of the key.
type keyRecord struct {
	ID         string
	IdentityID string
	Use        KeyUse
	Status     KeyStatus
	CertDER    []byte
	Sealed     []byte
	Escrow     []byte
	Created    time.Time
}

// CertSource says how a certificate reached the directory.
type CertSource string

// Certificate directory sources.
const (
	CertOurs      CertSource = "ours"      // a Digital ID of this gateway
	CertImported  CertSource = "imported"  // added by an administrator
	CertHarvested CertSource = "harvested" // taken from a validly signed message
)

// certRecord is a directory entry: a recipient's certificate for email,
// with the S/MIME capabilities its owner announced (DER of the
// SMIMECapabilities attribute value, RFC 8551 §2.5.2). Owner "" means
// org-wide, else the mailbox that harvested it.
type certRecord struct {
	Owner   string
	Email   string
	CertDER []byte
	Caps    []byte
	Source  CertSource
	Updated time.Time
}

// trustRecord is a trusted root: Owner "" org-wide (added by an
// administrator), else accepted by that mailbox's user.
type trustRecord struct {
	Owner       string
	Fingerprint string
	CertDER     []byte
	Added       time.Time
}

// Errors of the records layer.
var (
	errNotFound  = errors.New("not found")
	errConflict  = errors.New("conflicting record")
	errTokenGone = errors.New("token not redeemable")
)

// records is what identity keeps persistently. The store package provides
// it (sqlite, postgres); tests also use an in-memory one.
type records interface {
	// Setting returns a named setting, errNotFound when unset.
	Setting(ctx context.Context, name string) ([]byte, error)
	// SetSettingOnce stores value unless the setting exists, and returns
	// what is stored afterwards (so concurrent first starts agree).
	SetSettingOnce(ctx context.Context, name string, value []byte) ([]byte, error)

	InsertToken(ctx context.Context, t tokenInfo) error
	Token(ctx context.Context, hash []byte) (tokenInfo, error)
	// PruneTokens deletes tokens that expired before before.
	PruneTokens(ctx context.Context, before time.Time) error

	Identity(ctx context.Context, id string) (idRecord, error)
	// IdentitiesByEmail lists every ID of a mailbox, any state, oldest first.
	IdentitiesByEmail(ctx context.Context, email string) ([]idRecord, error)
	Identities(ctx context.Context) ([]idRecord, error)
	Keys(ctx context.Context, identityID string) ([]keyRecord, error)

	// Certificates lists directory entries for email that are org-wide or
	// owned by owner.
	Certificates(ctx context.Context, email, owner string) ([]certRecord, error)
	// PutCertificate inserts or replaces the entry with the same owner,
	// email and certificate.
	PutCertificate(ctx context.Context, c certRecord) error

	TrustedRoots(ctx context.Context, owner string) ([]trustRecord, error)
	RemoveTrustedRoot(ctx context.Context, owner, fingerprint string) error

	// Tx runs fn in one transaction: all of it is stored, or none.
	Tx(ctx context.Context, fn func(tx recordsTx) error) error

	auditor
}

// auditor appends to the audit log: who did what to which subject, never
// a secret.
type auditor interface {
	Audit(ctx context.Context, actor, action, subject string, at time.Time) error
}

// recordsTx is what runs inside a transaction.
type recordsTx interface {
	// ConsumeToken marks the token used, atomically: only if it exists, is
	// unused, unexpired at now, and bound to email and purpose; usedBy
	// names the Digital ID it made. Otherwise errTokenGone, and nothing
	// changes.
	ConsumeToken(ctx context.Context, hash []byte, email string, purpose Purpose, usedBy string, now time.Time) error
	// InsertIdentity adds an ID; errConflict when the mailbox already has a
	// live (pending or active) one.
	InsertIdentity(ctx context.Context, r idRecord) error
	// SetIdentityState moves an ID from one of from to to; errConflict when
	// it is in none of them.
	SetIdentityState(ctx context.Context, id string, from []State, to State, now time.Time) error
	InsertKey(ctx context.Context, k keyRecord) error
	PutTrustedRoot(ctx context.Context, t trustRecord) error

	auditor
}
