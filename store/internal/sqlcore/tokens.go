package sqlcore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"smimeproxy/store"
)

const tokenCols = `hash, email, purpose, created_at, expires_at, used_at, used_by`

func scanToken(r Row) (store.Token, error) {
	var t store.Token
	var purpose string
	var created, expires int64
	var used *int64
	err := r.Scan(&t.Hash, &t.Email, &purpose, &created, &expires, &used, &t.UsedBy)
	t.Purpose = store.TokenPurpose(purpose)
	t.CreatedAt, t.ExpiresAt = fromMicros(created), fromMicros(expires)
	if used != nil {
		t.UsedAt = fromMicros(*used)
	}
	return t, err
}

func (c *Core) CreateToken(ctx context.Context, t store.Token) error {
	if len(t.Hash) == 0 || t.ExpiresAt.IsZero() {
		return fmt.Errorf("create token: hash and expiry are required")
	}
	_, err := c.exec(ctx, `INSERT INTO tokens (hash, email, purpose, created_at, expires_at, used_by)
		VALUES (?, ?, ?, ?, ?, '')`,
		t.Hash, store.NormalizeEmail(t.Email), string(t.Purpose), c.stamp(t.CreatedAt), t.ExpiresAt.UnixMicro())
	return c.classify("create token", err)
}

func (c *Core) GetToken(ctx context.Context, hash []byte) (store.Token, error) {
	t, err := scanToken(c.row(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hash))
	return t, c.classify("token", err)
}

func (c *Core) ListTokens(ctx context.Context, email string) ([]store.Token, error) {
	email = store.NormalizeEmail(email)
	rows, err := c.rows(ctx, `SELECT `+tokenCols+` FROM tokens WHERE (? = '' OR email = ?)
		ORDER BY created_at DESC, hash`, email, email)
	out, err := collect(rows, err, func(r Rows) (store.Token, error) { return scanToken(r) })
	return out, c.classify("list tokens", err)
}

// ConsumeToken marks a token used and returns it. The single conditional
// UPDATE is what makes a token single-use; the read afterwards only explains a refusal.
func (c *Core) ConsumeToken(ctx context.Context, u store.TokenUse) (store.Token, error) {
	email := store.NormalizeEmail(u.Email)
	at := c.stamp(u.At)
	n, err := c.exec(ctx, `UPDATE tokens SET used_at = ?, used_by = ?
		WHERE hash = ? AND email = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?`,
		at, u.UsedBy, u.Hash, email, string(u.Purpose), at)
	if err != nil {
		return store.Token{}, c.classify("redeem token", err)
	}
	t, err := c.GetToken(ctx, u.Hash)
	if n == 1 {
		return t, err
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Token{}, fmt.Errorf("redeem token: %w", store.ErrTokenNotFound)
	case err != nil:
		return store.Token{}, err
	case t.Email != email:
		return store.Token{}, fmt.Errorf("redeem token: %w", store.ErrTokenMailbox)
	case t.Purpose != u.Purpose:
		return store.Token{}, fmt.Errorf("redeem token: %w", store.ErrTokenPurpose)
	case t.Used():
		return store.Token{}, fmt.Errorf("redeem token: %w", store.ErrTokenUsed)
	case t.ExpiresAt.UnixMicro() <= at:
		return store.Token{}, fmt.Errorf("redeem token: %w", store.ErrTokenExpired)
	}
	// The row matches now but did not at the update: a concurrent change
	// (e.g. a rolled-back redemption). Refuse rather than guess.
	return store.Token{}, fmt.Errorf("redeem token: changed concurrently, try again: %w", store.ErrTokenUsed)
}

func (c *Core) PruneTokens(ctx context.Context, before time.Time) (int64, error) {
	n, err := c.exec(ctx, `DELETE FROM tokens WHERE expires_at <= ?`, before.UnixMicro())
	return n, c.classify("prune tokens", err)
}
