package sqlcore

import (
	"context"
	"fmt"
	"math"

	"smimeproxy/store"
)

func (c *Core) AddTrustRoot(ctx context.Context, r store.TrustRoot) error {
	if len(r.CertDER) == 0 || r.Scope == "" {
		return fmt.Errorf("add trust root: certificate and scope are required")
	}
	if r.Fingerprint == "" {
		r.Fingerprint = store.Fingerprint(r.CertDER)
	}
	_, err := c.exec(ctx, `INSERT INTO trust_roots (scope, fingerprint, cert_der, accepted_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (scope, fingerprint) DO UPDATE SET accepted_at = excluded.accepted_at`,
		store.NormalizeEmail(r.Scope), r.Fingerprint, r.CertDER, c.stamp(r.AcceptedAt))
	return c.classify("add trust root "+r.Fingerprint, err)
}

func (c *Core) ListTrustRoots(ctx context.Context, scope string) ([]store.TrustRoot, error) {
	scope = store.NormalizeEmail(scope)
	rows, err := c.rows(ctx, `SELECT scope, fingerprint, cert_der, accepted_at FROM trust_roots
		WHERE (? = '' OR scope = ?) ORDER BY scope, accepted_at, fingerprint`, scope, scope)
	out, err := collect(rows, err, func(r Rows) (store.TrustRoot, error) {
		var t store.TrustRoot
		var at int64
		err := r.Scan(&t.Scope, &t.Fingerprint, &t.CertDER, &at)
		t.AcceptedAt = fromMicros(at)
		return t, err
	})
	return out, c.classify("list trust roots", err)
}

func (c *Core) RemoveTrustRoot(ctx context.Context, scope, fingerprint string) error {
	n, err := c.exec(ctx, `DELETE FROM trust_roots WHERE scope = ? AND fingerprint = ?`,
		store.NormalizeEmail(scope), fingerprint)
	return affected("remove trust root "+fingerprint, n, c.classify("remove trust root", err))
}

func (c *Core) SetUpgrade(ctx context.Context, u store.Upgrade) error {
	_, err := c.exec(ctx, `INSERT INTO upgrades (email, state, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (email) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
		store.NormalizeEmail(u.Email), string(u.State), c.stamp(u.UpdatedAt))
	return c.classify("set upgrade state of "+u.Email, err)
}

func (c *Core) GetUpgrade(ctx context.Context, email string) (store.Upgrade, error) {
	u := store.Upgrade{Email: store.NormalizeEmail(email)}
	var state string
	var at int64
	err := c.row(ctx, `SELECT state, updated_at FROM upgrades WHERE email = ?`, u.Email).Scan(&state, &at)
	u.State, u.UpdatedAt = store.UpgradeState(state), fromMicros(at)
	return u, c.classify("upgrade state of "+u.Email, err)
}

func (c *Core) GetSetting(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := c.row(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	return v, c.classify("setting "+key, err)
}

func (c *Core) PutSetting(ctx context.Context, key string, value []byte) error {
	_, err := c.exec(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, notNil(value))
	return c.classify("put setting "+key, err)
}

func (c *Core) InitSetting(ctx context.Context, key string, value []byte) ([]byte, error) {
	if _, err := c.exec(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO NOTHING`, key, notNil(value)); err != nil {
		return nil, c.classify("init setting "+key, err)
	}
	return c.GetSetting(ctx, key)
}

func (c *Core) Audit(ctx context.Context, e store.AuditEntry) error {
	_, err := c.exec(ctx, `INSERT INTO audit (at, actor, action, subject) VALUES (?, ?, ?, ?)`,
		c.stamp(e.Time), e.Actor, e.Action, e.Subject)
	return c.classify("audit "+e.Action, err)
}

func (c *Core) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	limit := int64(f.Limit)
	if limit <= 0 {
		limit = math.MaxInt32
	}
	rows, err := c.rows(ctx, `SELECT seq, at, actor, action, subject FROM audit
		WHERE (? = '' OR subject = ?) AND at >= ? ORDER BY seq DESC LIMIT ?`,
		f.Subject, f.Subject, micros(f.Since), limit)
	out, err := collect(rows, err, func(r Rows) (store.AuditEntry, error) {
		var e store.AuditEntry
		var at int64
		err := r.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject)
		e.Time = fromMicros(at)
		return e, err
	})
	return out, c.classify("list audit", err)
}

// notNil keeps an empty value from turning into SQL NULL.
func notNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
