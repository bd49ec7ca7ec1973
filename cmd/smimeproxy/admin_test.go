package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"smimeproxy/admin"
	"smimeproxy/config"
	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/seal"
	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
	"smimeproxy/store/sqlite"
)

type anyLogin struct{}

func (anyLogin) Authenticate(context.Context, string, identity.Secret) error { return nil }

// adminServer runs a real admin endpoint and writes a configuration file
// naming it; the token file holds the bearer.
func adminServer(t *testing.T) (svc *identity.Service, cfgPath, tokenFile string) {
	t.Helper()
	dir := t.TempDir()
	authority, err := ca.Open(filepath.Join(dir, "ca"), ca.Options{Org: "CLI Test Org", RootKeyType: ca.KeyP256})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err = identity.New(st, identity.Options{CA: authority, CADir: authority.Dir(), Upstream: anyLogin{},
		KeyType: ca.KeyP256, Seal: seal.Params{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	tokenFile = filepath.Join(dir, "admin.token")
	tok, err := admin.LoadOrCreateToken(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	h, err := admin.New(admin.Options{Identity: svc, Auth: anyLogin{}, AdminToken: tok,
		PublicURL: "http://" + srv.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return svc, writeAdminConfig(t, dir, srv.URL, tokenFile), tokenFile
}

func writeAdminConfig(t *testing.T, dir, url, tokenFile string) string {
	t.Helper()
	cfg := config.Default()
	cfg.Admin.PublicURL = url
	cfg.Admin.Listen = strings.TrimPrefix(url, "http://")
	cfg.Admin.TokenFile = tokenFile
	var buf bytes.Buffer
	if err := cfg.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "smimeproxy.toml")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runAdminCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runAdmin(context.Background(), stdio{strings.NewReader(""), &out, &errb}, args)
	return code, out.String(), errb.String()
}

var tokenRE = regexp.MustCompile(`(?m)^    (\S+)$`)

func TestAdminCLIAgainstServer(t *testing.T) {
	svc, cfg, tokenFile := adminServer(t)
	const carol = "carol@example.test"

	code, out, errs := runAdminCLI(t, "-config", cfg, "ids", "list")
	if code != exitOK || !strings.Contains(out, "No Digital IDs yet") {
		t.Fatalf("ids list on empty server: %d %q %q", code, out, errs)
	}
	code, out, errs = runAdminCLI(t, "-config", cfg, "token", "create", "-email", carol, "-ttl", "24h")
	m := tokenRE.FindStringSubmatch(out)
	if code != exitOK || m == nil || !strings.Contains(out, "(enroll)") {
		t.Fatalf("token create: %d %q %q", code, out, errs)
	}
	bearer, _ := os.ReadFile(tokenFile)
	if strings.Contains(out+errs, strings.TrimSpace(string(bearer))) {
		t.Fatal("the admin bearer was printed")
	}
	// The printed token really enrols carol.
	if _, err := svc.Enroll(context.Background(), identity.EnrollRequest{Email: carol, Token: identity.Secret(m[1]),
		Name: "Carol's ID", Password: "carol id password"}); err != nil {
		t.Fatalf("enrol with the printed token: %v", err)
	}
	code, out, _ = runAdminCLI(t, "-config", cfg, "ids", "list")
	if code != exitOK || !regexp.MustCompile(carol+`\s+pending\s+ca`).MatchString(out) {
		t.Fatalf("ids list: %d %q", code, out)
	}
	code, out, _ = runAdminCLI(t, "-config", cfg, "-json", "ids", "show", carol)
	var det admin.DetailsReply
	if code != exitOK || json.Unmarshal([]byte(out), &det) != nil || det.Current == nil || det.Current.Name != "Carol's ID" {
		t.Fatalf("ids show -json: %d %q", code, out)
	}
	code, out, _ = runAdminCLI(t, "-config", cfg, "ids", "show", carol)
	if code != exitOK || !strings.Contains(out, "Carol's ID") || !strings.Contains(out, "root SHA-256") {
		t.Fatalf("ids show: %d %q", code, out)
	}
	if code, out, _ = runAdminCLI(t, "-config", cfg, "ids", "revoke", carol); code != exitOK || !strings.Contains(out, "Revoked") {
		t.Fatalf("ids revoke: %d %q", code, out)
	}
	code, _, errs = runAdminCLI(t, "-config", cfg, "ids", "revoke", carol)
	if code != exitFailed || !strings.Contains(errs, "no Digital ID") || !strings.Contains(errs, "no_identity") {
		t.Fatalf("revoke twice: %d %q", code, errs)
	}

	// Trust roots: add from a file, list, remove, remove again.
	pemFile := filepath.Join(t.TempDir(), "other-root.pem")
	other := mailtest.OtherPKI(t)
	if err := os.WriteFile(pemFile, mailtest.CertPEM(other.Root), 0o644); err != nil {
		t.Fatal(err)
	}
	fpr := ca.Fingerprint(other.Root)
	if code, out, errs = runAdminCLI(t, "-config", cfg, "trust", "add", pemFile); code != exitOK || !strings.Contains(out, fpr) {
		t.Fatalf("trust add: %d %q %q", code, out, errs)
	}
	if code, out, _ = runAdminCLI(t, "-config", cfg, "trust", "list"); code != exitOK || !strings.Contains(out, fpr) {
		t.Fatalf("trust list: %d %q", code, out)
	}
	if code, out, _ = runAdminCLI(t, "-config", cfg, "trust", "remove", fpr); code != exitOK {
		t.Fatalf("trust remove: %d %q", code, out)
	}
	if code, _, errs = runAdminCLI(t, "-config", cfg, "trust", "remove", fpr); code != exitFailed || !strings.Contains(errs, "not_trusted") {
		t.Fatalf("trust remove twice: %d %q", code, errs)
	}
	code, out, _ = runAdminCLI(t, "-config", cfg, "token", "create", "-email", carol, "-purpose", "recover", "-json")
	var tr admin.TokenReply
	if code != exitOK || json.Unmarshal([]byte(out), &tr) != nil || tr.Purpose != "recover" || tr.Token == "" {
		t.Fatalf("token create -json: %d %q", code, out)
	}
}

func TestAdminCLIErrors(t *testing.T) {
	_, cfg, tokenFile := adminServer(t)
	dir := t.TempDir()

	// Nothing listens: a clear hint, exit 1.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String()
	l.Close()
	deadCfg := writeAdminConfig(t, filepath.Join(dir), deadURL, tokenFile)
	code, _, errs := runAdminCLI(t, "-config", deadCfg, "ids", "list")
	if code != exitFailed || !strings.Contains(errs, "cannot reach the admin endpoint at "+deadURL) || !strings.Contains(errs, "smimeproxy serve") || !strings.Contains(errs, "connection refused") {
		t.Fatalf("dead endpoint: %d %q", code, errs)
	}

	// A token file that is not the server's: refused, exit 1.
	wrongDir := t.TempDir()
	wrongTok := filepath.Join(wrongDir, "admin.token")
	if _, err := admin.LoadOrCreateToken(wrongTok); err != nil {
		t.Fatal(err)
	}
	liveURL := readPublicURL(t, cfg)
	code, _, errs = runAdminCLI(t, "-config", writeAdminConfig(t, wrongDir, liveURL, wrongTok), "ids", "list")
	if code != exitFailed || !strings.Contains(errs, "refused the admin token") {
		t.Fatalf("wrong token: %d %q", code, errs)
	}

	// Missing token file: a configuration problem, exit 2.
	missingDir := t.TempDir()
	code, _, errs = runAdminCLI(t, "-config", writeAdminConfig(t, missingDir, liveURL, filepath.Join(missingDir, "none.token")), "ids", "list")
	if code != exitUsage || !strings.Contains(errs, "does not exist") {
		t.Fatalf("missing token file: %d %q", code, errs)
	}

	usage := [][]string{
		{"token", "create"},
		{"token", "create", "-email", "a@b.test", "-purpose", "admin"},
		{"ids", "show"},
		{"ids", "show", "a@b.test", "extra"},
		{"trust", "remove"},
		{"frobnicate"},
		{"ids", "frobnicate"},
	}
	for _, args := range usage {
		if code, _, errs := runAdminCLI(t, append([]string{"-config", cfg}, args...)...); code != exitUsage || errs == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
	// A bad request the server refuses: exit 1 with the server's sentence.
	code, _, errs = runAdminCLI(t, "-config", cfg, "token", "create", "-email", "not-an-address")
	if code != exitFailed || !strings.Contains(errs, "not a plain e-mail address") {
		t.Fatalf("bad address: %d %q", code, errs)
	}
}

func readPublicURL(t *testing.T, cfgPath string) string {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Admin.PublicURL
}
