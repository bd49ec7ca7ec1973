// Package postgres is the store.Store for PostgreSQL (pgx/v5, pgxpool),
// for an office gateway where several proxy instances share one database.
// Instances coordinate only through the database: migrations run under an
// advisory lock, tokens are spent by one conditional UPDATE (row locks
// make concurrent redemptions wait and then see the token used), and a
// partial unique index keeps one live Digital ID per mailbox.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"smimeproxy/store"
	"smimeproxy/store/internal/sqlcore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key instances take while migrating.
const migrationLock = 0x736d696d65 // "smime"

// Store is a store.Store in PostgreSQL.
type Store struct {
	*sqlcore.Core
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

var dialect = &sqlcore.Dialect{
	Numbered:   true,
	Unique:     func(err error) bool { return pgCode(err) == "23505" },
	ForeignKey: func(err error) bool { return pgCode(err) == "23503" },
}

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Open connects to the database named by dsn (a postgres:// URL or
// key=value string; pool_max_conns and the like are honoured) and brings
// its schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	s := &Store{pool: pool, Core: &sqlcore.Core{C: pgConn{pool}, D: dialect, Now: time.Now}}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	return s.Tx(ctx, func(tx store.Tx) error {
		c := tx.(*sqlcore.Core)
		if _, err := c.C.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		_, err := sqlcore.Migrate(ctx, c, migrations, "migrations")
		return err
	})
}

// SchemaVersion reports the highest migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	return sqlcore.SchemaVersion(ctx, s.Core)
}

// Tx runs fn in one READ COMMITTED transaction (see store.Store). After a
// failed statement PostgreSQL refuses further ones in the transaction, so
// fn should return the first error it gets.
func (s *Store) Tx(ctx context.Context, fn func(tx store.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// Roll back even when ctx is what ended the transaction.
	rbCtx := context.WithoutCancel(ctx)
	done := false
	defer func() {
		if !done {
			tx.Rollback(rbCtx) // fn panicked; the panic goes on
		}
	}()
	err = fn(&sqlcore.Core{C: pgConn{tx}, D: dialect, Now: s.Now})
	done = true
	if err != nil {
		if rbErr := tx.Rollback(rbCtx); rbErr != nil {
			return errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Close closes the connection pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// querier is what *pgxpool.Pool and pgx.Tx share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pgConn adapts pgx to sqlcore.Conn.
type pgConn struct{ q querier }

func (c pgConn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := c.q.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (c pgConn) QueryRow(ctx context.Context, query string, args ...any) sqlcore.Row {
	return pgRow{c.q.QueryRow(ctx, query, args...)}
}

func (c pgConn) Query(ctx context.Context, query string, args ...any) (sqlcore.Rows, error) {
	return c.q.Query(ctx, query, args...)
}

type pgRow struct{ r pgx.Row }

func (r pgRow) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return sqlcore.ErrNoRows
	}
	return err
}
