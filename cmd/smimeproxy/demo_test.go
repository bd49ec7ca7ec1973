package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDemoDir(t *testing.T) {
	base := t.TempDir()
	foreign := filepath.Join(base, "foreign")
	earlier := filepath.Join(base, "earlier")
	for _, d := range []string{foreign, earlier} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeFile := func(path string) {
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(filepath.Join(foreign, "thesis.tex"))
	writeFile(filepath.Join(earlier, "demo.json"))
	writeFile(filepath.Join(earlier, "smimeproxy.db"))

	// A directory that is not the demo's stays untouched.
	if _, _, err := demoDir(foreign); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("foreign directory: err %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(foreign, "thesis.tex")); err != nil {
		t.Errorf("foreign file touched: %v", err)
	}
	// An earlier demo's directory is cleared: the demo starts from scratch.
	d, cleanup, err := demoDir(earlier)
	if err != nil || d != earlier {
		t.Fatalf("earlier demo: %q %v", d, err)
	}
	cleanup()
	if entries, _ := os.ReadDir(earlier); len(entries) != 0 {
		t.Errorf("earlier demo's files left: %v", entries)
	}
	// A new directory is made; no -dir gives a temporary one that cleanup removes.
	if d, _, err := demoDir(filepath.Join(base, "new", "demo")); err != nil {
		t.Errorf("new directory: %v", err)
	} else if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
		t.Errorf("new directory not made: %v", err)
	}
	tmp, cleanup, err := demoDir("")
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s left: %v", tmp, err)
	}
}
