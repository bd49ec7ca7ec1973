package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

type serveBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *serveBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *serveBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[imap]\nlisten_tls = \"sometimes\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"invalid value", []string{"-config", bad}, bad + ":2: imap.listen_tls"},
		{"missing file", []string{"-config", filepath.Join(dir, "nope.toml")}, "no such file"},
		{"stray argument", []string{"extra"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runServe(context.Background(), stdio{strings.NewReader(""), &out, &errb}, tc.args)
			if code != exitUsage || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errb.String(), exitUsage, tc.want)
			}
		})
	}
}

// TestServeStartsAndStops runs serve on free ports: one log line per
// listener with its address and TLS mode, the admin token file created,
// the listeners accepting, and a prompt stop when the context (the signal)
// ends.
func TestServeStartsAndStops(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "smimeproxy.toml")
	if err := os.WriteFile(cfg, []byte(`
[ca]
org = "Serve Test Org"
[imap]
listen = "127.0.0.1:0"
upstream = "127.0.0.1:9"
upstream_tls = "none"
[smtp]
listen = "127.0.0.1:0"
listen_tls = "implicit"
upstream = "127.0.0.1:9"
upstream_tls = "none"
[admin]
listen = "127.0.0.1:0"
[log]
format = "json"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var errb serveBuf
	done := make(chan int, 1)
	go func() {
		done <- runServe(ctx, stdio{strings.NewReader(""), &bytes.Buffer{}, &errb}, []string{"-config", cfg})
	}()

	listenRE := regexp.MustCompile(`"msg":"listening","service":"(\w+)","addr":"([0-9.:]+)","tls":"(\w+)"`)
	deadline := time.Now().Add(30 * time.Second)
	var found [][]string
	for time.Now().Before(deadline) {
		if found = listenRE.FindAllStringSubmatch(errb.String(), -1); len(found) == 3 {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d:\n%s", code, errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if len(found) != 3 {
		t.Fatalf("want 3 listener lines, log:\n%s", errb.String())
	}
	modes := map[string]string{}
	for _, m := range found {
		modes[m[1]] = m[3]
		c, err := net.DialTimeout("tcp", m[2], 2*time.Second)
		if err != nil {
			t.Errorf("%s listener %s: %v", m[1], m[2], err)
			continue
		}
		c.Close()
	}
	if modes["imap"] != "starttls" || modes["smtp"] != "implicit" || modes["admin"] != "none" {
		t.Errorf("TLS modes logged %v", modes)
	}
	if fi, err := os.Stat(filepath.Join(dir, "admin.token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.token next to the config: %v %v", fi, err)
	}
	stop := time.Now()
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d after the signal, log:\n%s", code, errb.String())
		}
	case <-time.After(3 * time.Second):
		t.Fatal("serve still running 3 s after the signal")
	}
	if took := time.Since(stop); took > 2*time.Second {
		t.Errorf("shutdown took %s", took)
	}
	if !strings.Contains(errb.String(), "every Digital ID is locked") {
		t.Errorf("no shutdown line in the log:\n%s", errb.String())
	}
}
