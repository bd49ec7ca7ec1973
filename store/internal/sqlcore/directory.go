package sqlcore

import (
	"context"
	"fmt"

	"smimeproxy/store"
)

const certCols = `owner, fingerprint, email, cert_der, source, capabilities, first_seen, last_seen`

func scanCert(r Row) (store.DirectoryCert, error) {
	var d store.DirectoryCert
	var source string
	var first, last int64
	err := r.Scan(&d.Owner, &d.Fingerprint, &d.Email, &d.CertDER, &source, &d.Capabilities, &first, &last)
	d.Source = store.CertSource(source)
	d.FirstSeen, d.LastSeen = fromMicros(first), fromMicros(last)
	return d, err
}

func (c *Core) PutCert(ctx context.Context, d store.DirectoryCert) error {
	if len(d.CertDER) == 0 {
		return fmt.Errorf("put certificate: empty certificate")
	}
	if d.Fingerprint == "" {
		d.Fingerprint = store.Fingerprint(d.CertDER)
	}
	last := c.stamp(d.LastSeen)
	first := last
	if !d.FirstSeen.IsZero() {
		first = d.FirstSeen.UnixMicro()
	}
	_, err := c.exec(ctx, `INSERT INTO directory (`+certCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (owner, fingerprint) DO UPDATE SET
			email = excluded.email, source = excluded.source,
			capabilities = COALESCE(excluded.capabilities, directory.capabilities),
			last_seen = excluded.last_seen`,
		store.NormalizeEmail(d.Owner), d.Fingerprint, store.NormalizeEmail(d.Email), d.CertDER,
		string(d.Source), nilIfEmpty(d.Capabilities), first, last)
	return c.classify("put certificate for "+d.Email, err)
}

func (c *Core) CertsByEmail(ctx context.Context, email, owner string) ([]store.DirectoryCert, error) {
	email, owner = store.NormalizeEmail(email), store.NormalizeEmail(owner)
	rows, err := c.rows(ctx, `SELECT `+certCols+` FROM directory
		WHERE email = ? AND (owner = '' OR owner = ?)
		ORDER BY last_seen DESC, owner, fingerprint`, email, owner)
	out, err := collect(rows, err, func(r Rows) (store.DirectoryCert, error) { return scanCert(r) })
	return out, c.classify("certificates of "+email, err)
}

func (c *Core) DeleteCert(ctx context.Context, owner, fingerprint string) error {
	n, err := c.exec(ctx, `DELETE FROM directory WHERE owner = ? AND fingerprint = ?`,
		store.NormalizeEmail(owner), fingerprint)
	return affected("delete certificate "+fingerprint, n, c.classify("delete certificate", err))
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
