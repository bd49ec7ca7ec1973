package mailtest

import (
	"os"
	"os/exec"
	"testing"
)

// RequireToolsEnv names the environment variable that turns a missing tool
// from a skipped test into a failed one. CI sets it to 1.
const RequireToolsEnv = "SMIMEPROXY_REQUIRE_TOOLS"

// ToolsRequired reports whether a missing tool must fail the test.
func ToolsRequired() bool { return os.Getenv(RequireToolsEnv) == "1" }

// LookTool returns the path of an external program (a name looked up in
// PATH, or an absolute path). When it is missing the test is skipped with a
// message naming the tool and its Debian package, or failed when
// SMIMEPROXY_REQUIRE_TOOLS=1.
func LookTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	MissingTool(t, name+" (Debian package "+debianPackage+")")
	return ""
}

// MissingTool skips (or, under SMIMEPROXY_REQUIRE_TOOLS=1, fails) the test
// because what names is not available here.
func MissingTool(t testing.TB, what string) {
	t.Helper()
	if ToolsRequired() {
		t.Fatalf("%s is required (%s=1) but not available; run 'make test-deps'", what, RequireToolsEnv)
	}
	t.Skipf("skipping: %s not available; run 'make test-deps' to install it", what)
}

// RequireRoot skips (or fails under SMIMEPROXY_REQUIRE_TOOLS=1) a test that
// starts daemons which drop privileges and so must start as root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		MissingTool(t, "root ("+why+")")
	}
}

// ShortTempDir makes a 0755 temporary directory with a short path, removed
// when the test ends. Daemons that drop privileges need to enter it, and
// unix socket paths inside it must stay under 108 bytes, which rules out
// t.TempDir().
func ShortTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("chmod temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
