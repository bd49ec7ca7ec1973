package sqlcore

import (
	"context"
	"fmt"

	"smimeproxy/store"
)

const keyCols = `id, identity_id, purpose, cert_der, sealed_key, serial, not_after, status, created_at`

func scanKey(r Row) (store.Key, error) {
	var k store.Key
	var purpose, status string
	var notAfter, created int64
	err := r.Scan(&k.ID, &k.IdentityID, &purpose, &k.CertDER, &k.SealedKey, &k.Serial, &notAfter, &status, &created)
	k.Purpose, k.Status = store.KeyPurpose(purpose), store.KeyStatus(status)
	k.NotAfter, k.CreatedAt = fromMicros(notAfter), fromMicros(created)
	return k, err
}

func (c *Core) AddKey(ctx context.Context, k store.Key) error {
	if k.ID == "" {
		return fmt.Errorf("add key: empty id")
	}
	_, err := c.exec(ctx, `INSERT INTO identity_keys (`+keyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.IdentityID, string(k.Purpose), k.CertDER, k.SealedKey, k.Serial,
		micros(k.NotAfter), string(k.Status), c.stamp(k.CreatedAt))
	return c.classify("add key "+k.ID, err)
}

func (c *Core) GetKey(ctx context.Context, id string) (store.Key, error) {
	k, err := scanKey(c.row(ctx, `SELECT `+keyCols+` FROM identity_keys WHERE id = ?`, id))
	return k, c.classify("key "+id, err)
}

func (c *Core) ListKeys(ctx context.Context, identityID string, purpose store.KeyPurpose) ([]store.Key, error) {
	rows, err := c.rows(ctx, `SELECT `+keyCols+` FROM identity_keys
		WHERE identity_id = ? AND (? = '' OR purpose = ?)
		ORDER BY created_at DESC, seq DESC`, identityID, string(purpose), string(purpose))
	out, err := collect(rows, err, func(r Rows) (store.Key, error) { return scanKey(r) })
	return out, c.classify("keys of "+identityID, err)
}

func (c *Core) UpdateKey(ctx context.Context, k store.Key) error {
	n, err := c.exec(ctx, `UPDATE identity_keys SET status = ?, sealed_key = ? WHERE id = ?`,
		string(k.Status), k.SealedKey, k.ID)
	return affected("update key "+k.ID, n, c.classify("update key "+k.ID, err))
}

func (c *Core) PutEscrow(ctx context.Context, e store.Escrow) error {
	_, err := c.exec(ctx, `INSERT INTO escrow (key_id, envelope, created_at) VALUES (?, ?, ?)
		ON CONFLICT (key_id) DO UPDATE SET envelope = excluded.envelope, created_at = excluded.created_at`,
		e.KeyID, e.Envelope, c.stamp(e.CreatedAt))
	return c.classify("escrow of key "+e.KeyID, err)
}

func (c *Core) GetEscrow(ctx context.Context, keyID string) (store.Escrow, error) {
	e := store.Escrow{KeyID: keyID}
	var created int64
	err := c.row(ctx, `SELECT envelope, created_at FROM escrow WHERE key_id = ?`, keyID).Scan(&e.Envelope, &created)
	e.CreatedAt = fromMicros(created)
	return e, c.classify("escrow of key "+keyID, err)
}
