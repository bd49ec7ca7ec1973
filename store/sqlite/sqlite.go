// Package sqlite is the embedded store.Store: one SQLite file (pure Go,
// modernc.org/sqlite, no cgo) in WAL mode with a busy timeout, foreign keys
// on, and the schema migrated from files embedded in the binary.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"smimeproxy/store"
	"smimeproxy/store/internal/sqlcore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// BusyTimeout is how long a statement waits for another connection's
// write lock before failing.
const BusyTimeout = 10 * time.Second

// Store is a store.Store in a SQLite file.
type Store struct {
	*sqlcore.Core
	db *sql.DB
}

var _ store.Store = (*Store)(nil)

var dialect = &sqlcore.Dialect{
	Unique: func(err error) bool {
		var e *sqlite.Error
		return errors.As(err, &e) &&
			(e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
	},
	ForeignKey: func(err error) bool {
		var e *sqlite.Error
		return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	},
}

// Open opens (creating if needed) the database file at path and brings its
// schema up to date. ":memory:" gives a private in-memory database on a
// single connection (tests). Write transactions start with BEGIN IMMEDIATE
// so concurrent writers queue on the busy timeout instead of failing.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite store: invalid database path %q", path)
	}
	pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_txlock=immediate",
		BusyTimeout.Milliseconds())
	memory := path == ":memory:"
	if !memory {
		pragmas += "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+pragmas)
	if err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	if memory {
		db.SetMaxOpenConns(1) // every connection would be its own database
	} else {
		db.SetMaxOpenConns(8)
	}
	s := &Store{db: db, Core: &sqlcore.Core{C: sqlConn{db}, D: dialect, Now: time.Now}}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	return s.Tx(ctx, func(tx store.Tx) error {
		_, err := sqlcore.Migrate(ctx, tx.(*sqlcore.Core), migrations, "migrations")
		return err
	})
}

// SchemaVersion reports the highest migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	return sqlcore.SchemaVersion(ctx, s.Core)
}

// Tx runs fn in one transaction (see store.Store).
func (s *Store) Tx(ctx context.Context, fn func(tx store.Tx) error) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tx.Rollback() // fn panicked; the panic goes on
		}
	}()
	err = fn(&sqlcore.Core{C: sqlConn{tx}, D: dialect, Now: s.Now})
	done = true
	if err != nil {
		if rbErr := tx.Rollback(); rbErr != nil {
			return errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }
