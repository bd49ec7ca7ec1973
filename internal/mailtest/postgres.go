package mailtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresCluster is a throwaway PostgreSQL cluster (recipes/postgres.md,
// foreground variant): a data dir in a short 0755 temporary directory,
// listening on 127.0.0.1 at a free port and on a unix socket beside the
// data, fsync off. Started as root, initdb and postgres run as the postgres
// user, which owns the cluster directory.
//
// A package shares one cluster across its tests: declare a
// PostgresCluster in the test package, call Database in each test (the
// first call starts the cluster, each call creates a fresh database), and
// call Stop from TestMain after m.Run. StartPostgres gives a cluster to
// one test instead.
type PostgresCluster struct {
	once   sync.Once
	err    error
	dir    string // temporary root, removed by Stop
	port   int
	cmd    *exec.Cmd
	exited chan struct{}

	mu sync.Mutex
	n  int // databases created
}

// PostgresBinDir finds the server binaries (initdb, postgres), which
// Debian keeps out of PATH in /usr/lib/postgresql/<version>/bin; the
// newest version wins. "" when none is installed.
func PostgresBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// StartPostgres starts a cluster for t alone, stopped when t ends.
func StartPostgres(t testing.TB) *PostgresCluster {
	t.Helper()
	c := &PostgresCluster{}
	c.ensure(t)
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})
	return c
}

// Database creates a fresh, empty database for t (starting the cluster on
// first use) and returns its DSN. Without the PostgreSQL server installed
// the test is skipped, or failed under SMIMEPROXY_REQUIRE_TOOLS=1.
func (c *PostgresCluster) Database(t testing.TB) string {
	t.Helper()
	return c.dsn(c.create(t, "DATABASE"))
}

// create makes a DATABASE or SCHEMA named after t (starting the cluster on
// first use) and returns its name.
func (c *PostgresCluster) create(t testing.TB, kind string) string {
	t.Helper()
	c.ensure(t)
	c.mu.Lock()
	c.n++
	name := fmt.Sprintf("t%d_%s", c.n, dbName(t.Name()))
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.dsn("postgres"))
	if err != nil {
		t.Fatalf("connect to test cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE `+kind+` `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create %s %s: %v", strings.ToLower(kind), name, err)
	}
	return name
}

// Schema creates a fresh, empty schema for t in one database shared by
// the cluster's tests and returns a DSN whose search_path is that schema,
// so unqualified tables land there. Much faster than Database (no copy of
// a template database), isolated enough for code that keeps to its own
// tables.
func (c *PostgresCluster) Schema(t testing.TB) string {
	t.Helper()
	name := c.create(t, "SCHEMA") // first: it starts the cluster, which sets the port
	return c.dsn("postgres") + "&search_path=" + name
}

// Port is the TCP port on 127.0.0.1.
func (c *PostgresCluster) Port() int { return c.port }

func (c *PostgresCluster) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=10", c.port, db)
}

// dbName turns a test name into an identifier of at most 40 characters.
func dbName(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}

// ensure starts the cluster once; a failed start fails every test that
// asks for a database.
func (c *PostgresCluster) ensure(t testing.TB) {
	t.Helper()
	bin := PostgresBinDir()
	if bin == "" {
		MissingTool(t, "PostgreSQL server: initdb, postgres (Debian package postgresql)")
	}
	LookTool(t, "pg_isready", "postgresql-client")
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			MissingTool(t, "the postgres system user (Debian package postgresql)")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	c.once.Do(func() {
		c.err = c.start(bin, cred, FreePorts(t, 1)[0])
	})
	if c.err != nil {
		t.Fatalf("postgres test cluster: %v", c.err)
	}
}

func (c *PostgresCluster) start(bin string, cred *syscall.Credential, port int) error {
	// Not ShortTempDir: the cluster outlives the test that starts it.
	dir, err := os.MkdirTemp("", "smt-pg-")
	if err != nil {
		return err
	}
	c.dir, c.port = dir, port
	g := filepath.Join(dir, "pg") // owned by the server's user: data, socket, logs
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(g, 0o700); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(g, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	asServer := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.Dir = g
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
		return cmd
	}

	initdb := asServer(exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(g, "data"),
		"-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"))
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}

	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	c.cmd = asServer(exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(g, "data"),
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(port), "-k", g,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200"))
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	if err := c.cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	c.exited = make(chan struct{})
	go func() { c.cmd.Wait(); logFile.Close(); close(c.exited) }() //nolint:errcheck // SIGINT makes it non-nil

	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := exec.Command("pg_isready", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port))
		if ready.Run() == nil {
			return nil
		}
		select {
		case <-c.exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited during start-up:\n%s", log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("postgres not ready within 30 s")
		}
	}
}

// Stop shuts the cluster down (SIGINT: fast shutdown) and removes its
// directory. Safe to call when it never started.
func (c *PostgresCluster) Stop() error {
	var err error
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
			err = errors.New("postgres did not stop within 10 s of SIGINT")
		}
		c.cmd = nil
	}
	if c.dir != "" {
		if rmErr := os.RemoveAll(c.dir); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		c.dir = ""
	}
	return err
}
