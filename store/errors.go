package store

import "errors"

// Errors callers branch on. Implementations wrap them with context; test
// with errors.Is.
var (
	// ErrNotFound: no such record.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the record exists already (same id, same token hash,
	// or a second live Digital ID for one mailbox).
	ErrConflict = errors.New("store: conflicts with an existing record")

	// ErrTokenNotFound: no token with that hash (never issued, mistyped,
	// or pruned).
	ErrTokenNotFound = errors.New("store: unknown token")
	// ErrTokenUsed: the token was redeemed already.
	ErrTokenUsed = errors.New("store: token already used")
	// ErrTokenExpired: the token's lifetime is over.
	ErrTokenExpired = errors.New("store: token expired")
	// ErrTokenMailbox: the token was issued for another mailbox.
	ErrTokenMailbox = errors.New("store: token issued for another mailbox")
	// ErrTokenPurpose: the token was issued for another purpose (enroll
	// vs recover).
	ErrTokenPurpose = errors.New("store: token issued for another purpose")
)
