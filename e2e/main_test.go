package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"smimeproxy/internal/mailtest"
)

// smimeproxyBin is the binary under test, set by TestMain.
var smimeproxyBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	smimeproxyBin = os.Getenv("SMIMEPROXY_BIN")
	if smimeproxyBin == "" {
		dir, err := os.MkdirTemp("", "smt-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		smimeproxyBin = filepath.Join(dir, "smimeproxy")
		cmd := exec.Command("go", "build", "-o", smimeproxyBin, "smimeproxy/cmd/smimeproxy")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build smimeproxy: %v\n%s", err, out)
			return 1
		}
	}
	code := m.Run()
	if theWorld != nil {
		os.RemoveAll(theWorld.dir)
	}
	return code
}

// result is what one run of a program gave.
type result struct {
	stdout, stderr []byte
	code           int
	took           time.Duration
	killed         bool // by run's deadline
}

// String says how the run ended, with its stderr, for failure messages;
// a run killed at the deadline says so, since its stderr is often empty.
func (r result) String() string {
	stderr := bytes.TrimSpace(r.stderr)
	if len(stderr) == 0 {
		stderr = []byte("(empty)")
	}
	how := fmt.Sprintf("exit %d after %v", r.code, r.took.Round(time.Millisecond))
	if r.killed {
		how = fmt.Sprintf("killed at the %v deadline", runDeadline)
	}
	return fmt.Sprintf("%s, stderr: %s", how, stderr)
}

// runDeadline bounds one run of an external program. It only ends a
// program that hangs: on a loaded 2-core CI machine, starting gpg-agent or
// a 3DES PKCS#12 import has taken seconds, never minutes.
const runDeadline = 2 * time.Minute

// run runs a program with a deadline and returns its output and exit code;
// it fails the test only when the program cannot be started.
func run(t testing.TB, env []string, stdin []byte, prog string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
	default:
		t.Fatalf("run %s: %v", prog, err)
	}
	return result{out.Bytes(), errb.Bytes(), cmd.ProcessState.ExitCode(), took, ctx.Err() != nil}
}

// cli runs `smimeproxy args…`.
func cli(t testing.TB, stdin []byte, args ...string) result {
	t.Helper()
	return run(t, nil, stdin, smimeproxyBin, args...)
}

// mustCLI runs `smimeproxy args…` and fails the test unless it exits 0.
func mustCLI(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	r := cli(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("smimeproxy %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// mustOpenSSL runs `openssl args…` and fails the test unless it exits 0.
func mustOpenSSL(t testing.TB, args ...string) []byte {
	t.Helper()
	openssl := mailtest.LookTool(t, "openssl", "openssl")
	r := run(t, nil, nil, openssl, args...)
	if r.code != 0 {
		t.Fatalf("openssl %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// party is a test user with its files on disk.
type party struct {
	*mailtest.User
	F mailtest.UserFiles // its PEM files
}

// world is the test PKI written to disk once per test binary.
type world struct {
	dir       string
	ca        mailtest.PKIFiles
	otherRoot string // root of an unrelated PKI: the wrong trust anchor
	alice     party  // RSA-2048
	bob       party  // EC P-256
	carol     party  // EC P-384
	dave      party  // RSA-2048, never a recipient: the wrong key
}

var (
	worldOnce sync.Once
	theWorld  *world
	worldErr  error
)

// getWorld returns the shared test PKI files; they live until the test
// binary exits.
func getWorld(t testing.TB) *world {
	t.Helper()
	p := mailtest.NewPKI(t)
	other := mailtest.OtherPKI(t)
	worldOnce.Do(func() {
		theWorld, worldErr = makeWorld(t, p, other)
	})
	if worldErr != nil {
		t.Fatalf("e2e PKI files: %v", worldErr)
	}
	return theWorld
}

func makeWorld(t testing.TB, p, other *mailtest.PKI) (*world, error) {
	dir, err := os.MkdirTemp("", "smt-pki-")
	if err != nil {
		return nil, err
	}
	w := &world{dir: dir}
	if w.ca, err = p.WriteFiles(dir); err != nil {
		return nil, err
	}
	otherDir := filepath.Join(dir, "other")
	if err := os.Mkdir(otherDir, 0o700); err != nil {
		return nil, err
	}
	of, err := other.WriteFiles(otherDir)
	if err != nil {
		return nil, err
	}
	w.otherRoot = of.Root
	for _, pu := range []struct {
		dst   *party
		email string
		kt    mailtest.KeyType
	}{
		{&w.alice, "alice@example.test", mailtest.RSA},
		{&w.bob, "bob@example.test", mailtest.P256},
		{&w.carol, "carol@example.test", mailtest.P384},
		{&w.dave, "dave@example.test", mailtest.RSA},
	} {
		u, err := p.NewUser(pu.email, pu.kt)
		if err != nil {
			return nil, err
		}
		f, err := u.WriteFiles(dir)
		if err != nil {
			return nil, err
		}
		*pu.dst = party{u, f}
	}
	return w, nil
}

// message is a whole RFC 5322 message with a text/plain body.
func message(from, to, body string) []byte {
	return []byte("From: " + from + "\r\nTo: " + to + "\r\nSubject: interop test\r\n" +
		"Date: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <interop@example.test>\r\n" +
		"MIME-Version: 1.0\r\n" + entity(body))
}

// entity is the MIME entity of message(), what openssl cms -sign/-encrypt take.
func entity(body string) string {
	return "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body
}

// bodyFor is a body unique to a test, with several CRLF lines and a line
// starting with "From " (which transports like to mangle).
func bodyFor(name string) string {
	return "Interop test " + name + ".\r\nFrom here on, a second line.\r\n\r\nLast line.\r\n"
}

// wantContent fails the test unless out holds the body (line ends
// normalised: our outputs are CRLF, openssl's may be LF).
func wantContent(t testing.TB, what string, out []byte, body string) {
	t.Helper()
	norm := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }
	if !bytes.Contains(norm(out), norm([]byte(body))) {
		t.Errorf("%s: output does not hold the original body %q:\n%s", what, body, out)
	}
}

func writeFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
