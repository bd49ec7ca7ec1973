package store

import (
	"context"
	"time"
)

// Tx is everything a Store reads and writes. A Store is a Tx whose every
// call commits on its own; inside Store.Tx the same calls form one
// transaction.
type Tx interface {
	// CreateIdentity adds a Digital ID; ErrConflict for a taken id or a
	// mailbox that already has one not revoked.
	CreateIdentity(ctx context.Context, id Identity) error
	GetIdentity(ctx context.Context, id string) (Identity, error)
	// IdentityByEmail returns the mailbox's Digital ID that is not revoked.
	IdentityByEmail(ctx context.Context, email string) (Identity, error)
	// ListIdentities returns all Digital IDs, by mailbox then age.
	ListIdentities(ctx context.Context) ([]Identity, error)
	// UpdateIdentity stores Name, State, MasterKeyWrap, RootFingerprint and
	// UpdatedAt of an existing Digital ID (email and id stay).
	UpdateIdentity(ctx context.Context, id Identity) error

	// AddKey stores a key pair of an existing Digital ID; ErrConflict for a
	// taken key id, ErrNotFound for an unknown Digital ID.
	AddKey(ctx context.Context, k Key) error
	GetKey(ctx context.Context, id string) (Key, error)
	// ListKeys returns a Digital ID's keys of one purpose ("" for all),
	// newest first: the key history.
	ListKeys(ctx context.Context, identityID string, purpose KeyPurpose) ([]Key, error)
	// UpdateKey stores a key's Status and SealedKey (re-sealed under a new
	// master key on recovery); certificate and ids stay.
	UpdateKey(ctx context.Context, k Key) error

	// PutEscrow stores (or replaces) the escrow of an existing key.
	PutEscrow(ctx context.Context, e Escrow) error
	GetEscrow(ctx context.Context, keyID string) (Escrow, error)

	// CreateToken stores a new token; ErrConflict for a hash already
	// stored.
	CreateToken(ctx context.Context, t Token) error
	GetToken(ctx context.Context, hash []byte) (Token, error)
	// ListTokens returns a mailbox's tokens ("" for all), newest first.
	ListTokens(ctx context.Context, email string) ([]Token, error)
	// ConsumeToken redeems a token exactly once: one conditional update
	// decides, so of any number of concurrent attempts at most one
	// succeeds. Failures are ErrTokenNotFound, ErrTokenMailbox,
	// ErrTokenPurpose, ErrTokenUsed or ErrTokenExpired.
	ConsumeToken(ctx context.Context, use TokenUse) (Token, error)
	// PruneTokens deletes tokens that expired at or before before, used or
	// not, and says how many.
	PruneTokens(ctx context.Context, before time.Time) (int64, error)

	// PutCert adds a directory certificate or, for a known (Owner,
	// Fingerprint), updates its Source, Capabilities and LastSeen, keeping
	// FirstSeen.
	PutCert(ctx context.Context, c DirectoryCert) error
	// CertsByEmail returns the certificates for an address that are
	// org-wide or owned by owner, most recently seen first.
	CertsByEmail(ctx context.Context, email, owner string) ([]DirectoryCert, error)
	DeleteCert(ctx context.Context, owner, fingerprint string) error

	// AddTrustRoot trusts a root in a scope; adding it again refreshes
	// AcceptedAt.
	AddTrustRoot(ctx context.Context, r TrustRoot) error
	// ListTrustRoots returns the roots of one scope, or of all with "".
	ListTrustRoots(ctx context.Context, scope string) ([]TrustRoot, error)
	RemoveTrustRoot(ctx context.Context, scope, fingerprint string) error

	SetUpgrade(ctx context.Context, u Upgrade) error
	GetUpgrade(ctx context.Context, email string) (Upgrade, error)

	GetSetting(ctx context.Context, key string) ([]byte, error)
	PutSetting(ctx context.Context, key string, value []byte) error
	// InitSetting stores value under key unless the key is set, and returns
	// what is stored: of several instances starting at once, all end up
	// with the first one's value (e.g. the token HMAC secret).
	InitSetting(ctx context.Context, key string, value []byte) ([]byte, error)

	// Audit appends to the audit log.
	Audit(ctx context.Context, e AuditEntry) error
	// ListAudit returns matching entries, newest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}

// Store is the persistent state of smimeproxy.
type Store interface {
	Tx
	// Tx runs fn in one transaction: committed when fn returns nil, rolled
	// back (nothing left behind) when it returns an error or panics. fn
	// must use only the Tx it is given; calling the Store from inside fn
	// may wait on the transaction itself. Enrolment runs token
	// consumption and every write it makes through one Tx, so a crash
	// leaves no half-made Digital ID and the token unspent.
	Tx(ctx context.Context, fn func(tx Tx) error) error
	// Close releases the database.
	Close() error
}
