package mailtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPostgresCluster starts a cluster, uses two databases and two
// schemas in it, and checks Stop leaves no server and no directory behind.
func TestPostgresCluster(t *testing.T) {
	start := time.Now()
	c := StartPostgres(t) // its cleanup calls Stop again: must be harmless
	dsn1 := c.Database(t)
	dsn2 := c.Database(t)
	t.Logf("cluster + 2 databases in %v", time.Since(start))
	if dsn1 == dsn2 {
		t.Fatalf("two databases share the DSN %s", dsn1)
	}
	ctx := context.Background()
	for i, dsn := range []string{dsn1, dsn2} {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect %s: %v", dsn, err)
		}
		var n int
		if err := conn.QueryRow(ctx, `SELECT 41 + $1::int`, i+1).Scan(&n); err != nil || n != 42+i {
			t.Fatalf("query: %d, %v", n, err)
		}
		// Databases are separate: a table made in one is absent from the other.
		if i == 0 {
			if _, err := conn.Exec(ctx, `CREATE TABLE only_here (x int)`); err != nil {
				t.Fatal(err)
			}
		} else if _, err := conn.Exec(ctx, `SELECT * FROM only_here`); err == nil {
			t.Fatal("table of the first database visible in the second")
		}
		conn.Close(ctx)
	}
	checkSchemas(t, c)
	dir := c.dir
	if _, err := os.Stat(filepath.Join(dir, "pg", "data", "PG_VERSION")); err != nil {
		t.Fatalf("data dir: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("cluster dir left behind: %v", err)
	}
	if _, err := pgx.Connect(ctx, dsn1); err == nil {
		t.Fatal("cluster still accepts connections after Stop")
	}
}

// checkSchemas: each Schema DSN sees only its own tables.
func checkSchemas(t *testing.T, c *PostgresCluster) {
	ctx := context.Background()
	var conns []*pgx.Conn
	for range 2 {
		conn, err := pgx.Connect(ctx, c.Schema(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		conns = append(conns, conn)
	}
	if _, err := conns[0].Exec(ctx, `CREATE TABLE tokens (x int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conns[1].Exec(ctx, `SELECT * FROM tokens`); err == nil {
		t.Fatal("table of the first schema visible through the second DSN")
	}
	if _, err := conns[1].Exec(ctx, `CREATE TABLE tokens (x int)`); err != nil {
		t.Fatalf("same table name in the second schema: %v", err)
	}
}
