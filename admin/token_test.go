package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smimeproxy/config"
)

func TestLoadOrCreateToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "admin.token")
	if _, err := ReadToken(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadToken of a missing file: %v", err)
	}
	tok, err := LoadOrCreateToken(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode: %v %v", fi.Mode(), err)
	}
	if len(tok) < 40 {
		t.Fatalf("token of %d characters", len(tok))
	}
	again, err := LoadOrCreateToken(path)
	if err != nil || again != tok {
		t.Fatal("second start got another token")
	}
	other, err := LoadOrCreateToken(filepath.Join(t.TempDir(), "admin.token"))
	if err != nil || other == tok {
		t.Fatal("two token files hold the same token")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token file: %v", err)
	}
	short := filepath.Join(t.TempDir(), "short.token")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	if _, err := LoadOrCreateToken(short); err == nil {
		t.Fatal("a 3-character token was accepted")
	}
}

func TestCheckListen(t *testing.T) {
	cases := []struct {
		addr        string
		tls, remote bool
		ok          bool
	}{
		{"127.0.0.1:8080", false, false, true},
		{"[::1]:8080", false, false, true},
		{"localhost:8080", false, false, true},
		{"0.0.0.0:8080", false, false, false},
		{":8080", false, false, false},
		{"192.0.2.1:8080", false, false, false},
		{"192.0.2.1:8080", true, false, true},
		{"0.0.0.0:8080", false, true, true},
	}
	for _, c := range cases {
		err := CheckListen(c.addr, c.tls, c.remote)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrPlaintextRemote)) {
			t.Errorf("CheckListen(%q, tls=%v, remote=%v) = %v", c.addr, c.tls, c.remote, err)
		}
	}
}

func TestServeStopsWithContext(t *testing.T) {
	h := newHarness(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Identity: h.svc, Auth: mapAuth{}, PublicURL: "http://" + l.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, srv, ServeOptions{}) }()
	url := "http://" + l.Addr().String() + "/healthz"
	var resp *http.Response
	for i := 0; i < 50; i++ {
		if resp, err = http.Get(url); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz through Serve: %v", err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if err := ListenAndServe(context.Background(), "0.0.0.0:0", h.h, ServeOptions{}); !errors.Is(err, ErrPlaintextRemote) {
		t.Fatalf("ListenAndServe on 0.0.0.0 without TLS: %v", err)
	}
}

func TestOptionsFromConfig(t *testing.T) {
	cfg := config.Default()
	cfg.Admin.TokenFile = filepath.Join(t.TempDir(), "admin.token")
	cfg.Admin.PublicURL = "https://gw.example.org"
	cfg.Admin.SessionTTL = config.Duration(20 * time.Minute)
	cfg.Admin.MaxRequestSize = 4096
	cfg.Keys.RememberMax = config.Duration(3 * time.Hour)
	o, err := OptionsFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := ReadToken(cfg.Admin.TokenFile)
	if err != nil || o.AdminToken != onDisk || o.PublicURL != cfg.Admin.PublicURL || o.SessionTTL != 20*time.Minute ||
		o.MaxRequestSize != 4096 || o.RememberMax != 3*time.Hour || o.RememberDefault != cfg.Keys.RememberDefault.Std() {
		t.Fatalf("options %+v (token file: %v)", o, err)
	}
	cfg.Admin.ListenTLS = config.TLSImplicit
	if _, err := ServeOptionsFromConfig(cfg, nil); err == nil {
		t.Fatal("implicit TLS without a certificate accepted")
	}
	so, err := ServeOptionsFromConfig(cfg, &tls.Config{})
	if err != nil || so.TLS == nil {
		t.Fatalf("serve options: %+v %v", so, err)
	}
}
