// Package sqlcore implements store.Tx once, in SQL both SQLite and
// PostgreSQL accept, over a small connection interface that
// store/sqlite (database/sql) and store/postgres (pgx) adapt to. Placeholders
// are written as ? and rewritten per dialect; times are stored as Unix
// microseconds (BIGINT) so both databases compare them the same way.
package sqlcore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"smimeproxy/store"
)

// ErrNoRows is what adapters return from Row.Scan when nothing matched.
var ErrNoRows = errors.New("sqlcore: no rows")

// Conn is a database connection or transaction.
type Conn interface {
	// Exec runs a statement and reports the rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
	Query(ctx context.Context, query string, args ...any) (Rows, error)
}

// Row is one result row; Scan returns ErrNoRows when there was none.
type Row interface{ Scan(dest ...any) error }

// Rows is a result set.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Dialect holds what differs between databases.
type Dialect struct {
	// Numbered turns ? placeholders into $1, $2, … (PostgreSQL).
	Numbered bool
	// Unique and ForeignKey classify constraint violations.
	Unique     func(error) bool
	ForeignKey func(error) bool
}

// Core implements store.Tx over a Conn.
type Core struct {
	C   Conn
	D   *Dialect
	Now func() time.Time // for timestamps the caller left zero
}

var _ store.Tx = (*Core)(nil)

// q rewrites placeholders for the dialect.
func (c *Core) q(query string) string {
	if !c.D.Numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c *Core) exec(ctx context.Context, query string, args ...any) (int64, error) {
	return c.C.Exec(ctx, c.q(query), args...)
}

func (c *Core) row(ctx context.Context, query string, args ...any) Row {
	return c.C.QueryRow(ctx, c.q(query), args...)
}

func (c *Core) rows(ctx context.Context, query string, args ...any) (Rows, error) {
	return c.C.Query(ctx, c.q(query), args...)
}

// classify maps driver errors onto the store's sentinels.
func (c *Core) classify(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoRows):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case c.D.Unique != nil && c.D.Unique(err):
		return fmt.Errorf("%s: %w", op, store.ErrConflict)
	case c.D.ForeignKey != nil && c.D.ForeignKey(err):
		return fmt.Errorf("%s: referenced record: %w", op, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// stamp is t as stored, or now when t is zero.
func (c *Core) stamp(t time.Time) int64 {
	if t.IsZero() {
		t = c.Now()
	}
	return t.UnixMicro()
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// collect scans every row with scan.
func collect[T any](rows Rows, err error, scan func(Rows) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// affected turns "no row changed" into ErrNotFound.
func affected(op string, n int64, err error) error {
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return nil
}
