package main

import (
	"bytes"
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionCommand: `smimeproxy version` prints one line naming the
// module version, the revision field and the Go version of this binary's
// build information ("(devel)" in a test binary), and exits 0.
func TestVersionCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	code := dispatch(context.Background(), stdio{strings.NewReader(""), &out, &errOut}, "smimeproxy", topCommands(), []string{"version"})
	if code != exitOK || errOut.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("test binary without build information")
	}
	want := bi.Main.Version
	if want == "" {
		want = "(devel)"
	}
	line := out.String()
	if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
		t.Fatalf("output %q is not one line", line)
	}
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "smimeproxy" || f[1] != want || f[2] != "revision" || f[len(f)-1] != runtime.Version() {
		t.Fatalf("output %q, want \"smimeproxy %s revision REV … %s\"", line, want, runtime.Version())
	}
}

func TestFormatVersion(t *testing.T) {
	set := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"devel, no VCS", debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			"smimeproxy (devel) revision unknown go1.26.0"},
		{"empty version", debug.BuildInfo{GoVersion: "go1.26.0"},
			"smimeproxy (devel) revision unknown go1.26.0"},
		{"release", debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.2.3"},
			Settings: set("vcs.revision", "0123abcd", "vcs.time", "2026-11-25T10:00:00Z", "vcs.modified", "false")},
			"smimeproxy v1.2.3 revision 0123abcd 2026-11-25T10:00:00Z go1.26.1"},
		{"modified tree", debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"},
			Settings: set("vcs.revision", "0123abcd", "vcs.modified", "true")},
			"smimeproxy (devel) revision 0123abcd+dirty go1.26.1"},
	} {
		if got := formatVersion(&tc.bi); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
