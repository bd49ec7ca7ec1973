package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runConfigCapture(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runConfig(context.Background(), stdio{in: strings.NewReader(""), out: &out, err: &errb}, args)
	return code, out.String(), errb.String()
}

func TestConfigTest(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(good, []byte("[policy]\nsign = \"never\"\nencrypt = \"always\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("[imap]\nlisten = \":1143\"\nlisten_tls = \"none\"\n[keys]\nremember_default = \"10h\"\nbogus = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	example, err := filepath.Abs("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		args       []string
		code       int
		out, err   []string // substrings, in order for err
		emptyOut   bool
		chdirEmpty bool
	}{
		{name: "valid file", args: []string{"test", "-config", good}, code: exitOK, out: []string{"ok: " + good}},
		{name: "documented example", args: []string{"test", "-config", example}, code: exitOK, out: []string{"ok: " + example}},
		{name: "every problem with its line", args: []string{"test", "-config", bad}, code: exitUsage, emptyOut: true,
			err: []string{
				bad + ":3: imap.listen_tls: \"none\" is allowed only",
				bad + ":5: keys.remember_default: 10h is longer than keys.remember_max (5h)",
				bad + ":6: keys.bogus: unknown key",
				"3 problem(s) found",
			}},
		{name: "missing file", args: []string{"test", "-config", filepath.Join(dir, "nope.toml")}, code: exitUsage, emptyOut: true,
			err: []string{"nope.toml", "no such file"}},
		{name: "defaults when no ./smimeproxy.toml", args: []string{"test"}, code: exitOK, chdirEmpty: true,
			out: []string{"ok: built-in defaults", "config.example.toml", "no ./smimeproxy.toml found"}},
		{name: "help", args: []string{"test", "-h"}, code: exitOK, emptyOut: true, err: []string{"usage: smimeproxy config test", "-config"}},
		{name: "stray argument", args: []string{"test", good}, code: exitUsage, emptyOut: true, err: []string{"unexpected argument"}},
		{name: "unknown flag", args: []string{"test", "-conf", good}, code: exitUsage, emptyOut: true, err: []string{"flag provided but not defined"}},
		{name: "no verb", args: nil, code: exitUsage, emptyOut: true, err: []string{"test"}},
		{name: "unknown verb", args: []string{"check"}, code: exitUsage, emptyOut: true, err: []string{"unknown command \"check\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.chdirEmpty {
				t.Chdir(t.TempDir())
			}
			code, out, errOut := runConfigCapture(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if tt.emptyOut && out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			for _, s := range tt.out {
				if !strings.Contains(out, s) {
					t.Errorf("stdout %q lacks %q", out, s)
				}
			}
			rest := errOut
			for _, s := range tt.err {
				i := strings.Index(rest, s)
				if i < 0 {
					t.Errorf("stderr lacks %q (in order):\n%s", s, errOut)
					break
				}
				rest = rest[i+len(s):]
			}
		})
	}
}
