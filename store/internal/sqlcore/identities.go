package sqlcore

import (
	"context"
	"fmt"

	"smimeproxy/store"
)

const identityCols = `id, email, name, state, master_key_wrap, root_fingerprint, created_at, updated_at`

func scanIdentity(r Row) (store.Identity, error) {
	var id store.Identity
	var created, updated int64
	var state string
	err := r.Scan(&id.ID, &id.Email, &id.Name, &state, &id.MasterKeyWrap, &id.RootFingerprint, &created, &updated)
	id.State = store.IdentityState(state)
	id.CreatedAt, id.UpdatedAt = fromMicros(created), fromMicros(updated)
	return id, err
}

func (c *Core) CreateIdentity(ctx context.Context, id store.Identity) error {
	if id.ID == "" {
		return fmt.Errorf("create identity: empty id")
	}
	created := c.stamp(id.CreatedAt)
	updated := created
	if !id.UpdatedAt.IsZero() {
		updated = id.UpdatedAt.UnixMicro()
	}
	_, err := c.exec(ctx, `INSERT INTO identities (`+identityCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		id.ID, store.NormalizeEmail(id.Email), id.Name, string(id.State), id.MasterKeyWrap,
		id.RootFingerprint, created, updated)
	return c.classify("create identity "+id.ID, err)
}

func (c *Core) GetIdentity(ctx context.Context, id string) (store.Identity, error) {
	v, err := scanIdentity(c.row(ctx, `SELECT `+identityCols+` FROM identities WHERE id = ?`, id))
	return v, c.classify("identity "+id, err)
}

func (c *Core) IdentityByEmail(ctx context.Context, email string) (store.Identity, error) {
	email = store.NormalizeEmail(email)
	v, err := scanIdentity(c.row(ctx, `SELECT `+identityCols+` FROM identities
		WHERE email = ? AND state <> 'revoked'`, email))
	return v, c.classify("identity of "+email, err)
}

func (c *Core) ListIdentities(ctx context.Context) ([]store.Identity, error) {
	rows, err := c.rows(ctx, `SELECT `+identityCols+` FROM identities ORDER BY email, created_at, id`)
	out, err := collect(rows, err, func(r Rows) (store.Identity, error) { return scanIdentity(r) })
	return out, c.classify("list identities", err)
}

func (c *Core) UpdateIdentity(ctx context.Context, id store.Identity) error {
	n, err := c.exec(ctx, `UPDATE identities SET name = ?, state = ?, master_key_wrap = ?,
		root_fingerprint = ?, updated_at = ? WHERE id = ?`,
		id.Name, string(id.State), id.MasterKeyWrap, id.RootFingerprint, c.stamp(id.UpdatedAt), id.ID)
	return affected("update identity "+id.ID, n, c.classify("update identity "+id.ID, err))
}
