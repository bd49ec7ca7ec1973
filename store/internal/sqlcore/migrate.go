package sqlcore

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migrate applies the migrations in dir of fsys — files named
// NNNN_what.sql, applied in order of NNNN — that schema_version does not
// list yet, and records each. c must be a transaction that keeps other
// migrators out (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock),
// so instances starting together apply each migration once. A database
// newer than the migrations known here is refused.
func Migrate(ctx context.Context, c *Core, fsys fs.FS, dir string) (applied int, err error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return 0, fmt.Errorf("read migrations: %w", err)
	}
	type migration struct {
		version int
		name    string
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, convErr := strconv.Atoi(num)
		if !ok || convErr != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return 0, fmt.Errorf("migration file %q is not named NNNN_what.sql", e.Name())
		}
		ms = append(ms, migration{v, e.Name()})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })

	if _, err := c.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("create schema_version: %w", err)
	}
	var current int64
	if err := c.row(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if len(ms) > 0 && current > int64(ms[len(ms)-1].version) {
		return 0, fmt.Errorf("database schema version %d is newer than this build knows (%d): upgrade smimeproxy",
			current, ms[len(ms)-1].version)
	}
	for _, m := range ms {
		if int64(m.version) <= current {
			continue
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, m.name))
		if err != nil {
			return applied, fmt.Errorf("read migration %s: %w", m.name, err)
		}
		if _, err := c.C.Exec(ctx, string(body)); err != nil {
			return applied, fmt.Errorf("apply migration %s: %w", m.name, err)
		}
		if _, err := c.exec(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`,
			m.version, c.Now().UnixMicro()); err != nil {
			return applied, fmt.Errorf("record migration %s: %w", m.name, err)
		}
		applied++
	}
	return applied, nil
}

// SchemaVersion reports the highest applied migration.
func SchemaVersion(ctx context.Context, c *Core) (int, error) {
	var v int64
	err := c.row(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	return int(v), err
}
