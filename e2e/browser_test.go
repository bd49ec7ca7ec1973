package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"smimeproxy/admin"
	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/seal"
	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
	"smimeproxy/store/sqlite"
)

// ArtifactsEnv names the directory the browser test saves screenshots to.
const artifactsEnv = "SMIMEPROXY_ARTIFACTS"

// browserWorld is a real admin endpoint: identity.Service on SQLite, the
// built-in CA, and mailbox logins checked over IMAP against an in-process
// upstream.
type browserWorld struct {
	url   string
	svc   *identity.Service
	ca    *ca.CA
	token string // admin bearer
}

func startBrowserWorld(t *testing.T, users map[string]string) *browserWorld {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	up, err := mailtest.StartUpstream(ctx, mailtest.UpstreamOptions{Users: users, IMAPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	auth, err := identity.NewIMAPAuthenticator(identity.IMAPAuthOptions{Addr: up.IMAPAddr(), TLS: identity.TLSNone, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.Open(filepath.Join(dir, "ca"), ca.Options{Org: "Browser Test Org", RootKeyType: ca.KeyP256})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "smimeproxy.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logger := slog.New(slog.NewTextHandler(&testLogWriter{t}, nil))
	svc, err := identity.New(st, identity.Options{
		CA: authority, CADir: authority.Dir(), Upstream: auth, Logger: logger, KeyType: ca.KeyP256,
		Seal: seal.Params{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}, Limiter: seal.NewLimiter(2),
		Remember: 30 * time.Minute, RememberMax: 5 * time.Hour, IdleTimeout: 5 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	tokenFile := filepath.Join(dir, "admin.token")
	bearer, err := admin.LoadOrCreateToken(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	h, err := admin.New(admin.Options{
		Identity: svc, Auth: auth, AdminToken: bearer, PublicURL: "http://" + srv.Listener.Addr().String(),
		CARootPEM: mailtest.CertPEM(authority.Root()), Logger: logger,
		RememberDefault: 30 * time.Minute, RememberMax: 5 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return &browserWorld{url: srv.URL, svc: svc, ca: authority, token: string(bearer)}
}

type testLogWriter struct{ t *testing.T }

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// createToken asks the admin API for a security token, as an administrator.
func (w *browserWorld) createToken(t *testing.T, email string) string {
	t.Helper()
	body, _ := json.Marshal(admin.TokenRequest{Email: email})
	req, _ := http.NewRequest("POST", w.url+"/api/v1/tokens", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+w.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr admin.TokenReply
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create token: %d %v", resp.StatusCode, err)
	}
	return tr.Token
}

// TestBrowserEnrolAcceptUnlock drives Debian's headless Chromium through the
// pages: log in with the mail password (checked over IMAP), enrol with a
// token from the API, decline and then accept the root, lock, and unlock
// with a remembered period of two hours.
func TestBrowserEnrolAcceptUnlock(t *testing.T) {
	chromium := mailtest.LookTool(t, "chromium", "chromium")
	const (
		dave   = "dave@example.test"
		mailPW = "dave-mail-password"
		idPW   = "dave's digital id password"
	)
	w := startBrowserWorld(t, map[string]string{dave: mailPW})
	token := w.createToken(t, dave)
	shots := artifactDir(t)

	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1000, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	step := func(name string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			screenshot(t, ctx, shots, "failed-"+name)
			t.Fatalf("%s: %v", name, err)
		}
	}

	// Not logged in: /enroll shows the login form; the mail server checks it.
	step("open enroll",
		chromedp.Navigate(w.url+"/enroll"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), dave),
		chromedp.SendKeys(chromedp.ID("password"), "not the mail password"),
		chromedp.Click(chromedp.ID("login")),
	)
	waitText(t, ctx, "#error", "mail server refused")
	step("log in",
		chromedp.SetValue(chromedp.ID("password"), mailPW),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
	if got := text(t, ctx, "#user"); got != dave {
		t.Fatalf("logged in as %q", got)
	}
	screenshot(t, ctx, shots, "1-enroll-form")

	// A mismatched second password is caught before anything happens.
	step("enrol with mismatched passwords",
		chromedp.SendKeys(chromedp.ID("token"), strings.ToLower(token)),
		chromedp.SendKeys(chromedp.ID("name"), "Dave's S/MIME ID"),
		chromedp.SendKeys(chromedp.ID("password"), idPW),
		chromedp.SendKeys(chromedp.ID("password2"), idPW+"x"),
		chromedp.Click(chromedp.ID("enroll")),
	)
	waitText(t, ctx, "#error", "two passwords are not the same")
	step("enrol",
		chromedp.SetValue(chromedp.ID("token"), token),
		chromedp.SendKeys(chromedp.ID("password"), idPW),
		chromedp.SendKeys(chromedp.ID("password2"), idPW),
		chromedp.Click(chromedp.ID("enroll")),
		chromedp.WaitVisible(chromedp.ID("root-prompt")),
	)
	wantFpr := ca.Fingerprint(w.ca.Root())
	if got := text(t, ctx, "#root-fingerprint"); got != wantFpr {
		t.Fatalf("fingerprint shown %q, want %q", got, wantFpr)
	}
	if got := text(t, ctx, "#root-subject"); !strings.Contains(got, "Browser Test Org") {
		t.Fatalf("root subject shown %q", got)
	}
	screenshot(t, ctx, shots, "2-root-prompt")
	if st := state(t, w, dave); st.State != identity.StatePending {
		t.Fatalf("after enrolment: %s", st.State)
	}

	// Declining keeps the Digital ID pending and the prompt available.
	step("decline", chromedp.Click(chromedp.ID("decline")))
	waitText(t, ctx, "#notice", "stays pending")
	if st := state(t, w, dave); st.State != identity.StatePending {
		t.Fatalf("after decline: %s", st.State)
	}
	step("accept",
		chromedp.WaitVisible(chromedp.ID("accept")),
		chromedp.Click(chromedp.ID("accept")),
		chromedp.WaitVisible(chromedp.ID("ready")),
	)
	waitText(t, ctx, "#notice", "Your Digital ID is active")
	screenshot(t, ctx, shots, "3-accepted")
	if st := state(t, w, dave); st.State != identity.StateActive {
		t.Fatalf("after accept: %s", st.State)
	}

	// Unlock page: lock, then unlock for two hours.
	step("lock",
		chromedp.Navigate(w.url+"/unlock"),
		chromedp.WaitVisible(chromedp.ID("lock")),
		chromedp.Click(chromedp.ID("lock")),
	)
	waitText(t, ctx, "#notice", "is locked")
	waitText(t, ctx, "#status", "Locked")
	if st := state(t, w, dave); !st.UnlockedUntil.IsZero() {
		t.Fatalf("after lock: unlocked until %v", st.UnlockedUntil)
	}
	step("wrong password",
		chromedp.SendKeys(chromedp.ID("password"), "wrong password"),
		chromedp.Click(chromedp.ID("unlock")),
	)
	waitText(t, ctx, "#error", "wrong Digital ID password")
	time.Sleep(1100 * time.Millisecond) // the back-off after one wrong password
	before := time.Now()
	step("unlock",
		chromedp.SetValue(chromedp.ID("password"), idPW),
		chromedp.SetValue(chromedp.ID("remember"), "2h0m0s"),
		chromedp.Click(chromedp.ID("unlock")),
	)
	waitText(t, ctx, "#notice", "is unlocked")
	status := waitText(t, ctx, "#status", "Unlocked until")
	screenshot(t, ctx, shots, "4-unlocked")
	st := state(t, w, dave)
	if got := st.UnlockedUntil.Sub(before); got < 2*time.Hour-time.Minute || got > 2*time.Hour+time.Minute {
		t.Fatalf("unlocked until %v, %v after the click; want 2h", st.UnlockedUntil, got)
	}
	if want := st.UnlockedUntil.UTC().Format("15:04"); !strings.Contains(status, want) {
		t.Fatalf("page says %q, identity says until %s", status, want)
	}
	if _, err := w.svc.DecryptionKeys(context.Background(), dave); err != nil {
		t.Fatalf("keys after unlock: %v", err)
	}
}

// state is the mailbox's current Digital ID as package identity sees it.
func state(t *testing.T, w *browserWorld, email string) *identity.DigitalID {
	t.Helper()
	d, err := w.svc.Show(context.Background(), email)
	if err != nil || d.Current == nil {
		t.Fatalf("show %s: %v %+v", email, err, d)
	}
	return d.Current
}

// text reads an element's text now.
func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("text of %s: %v", css, err)
	}
	return strings.TrimSpace(s)
}

// waitText polls until the element holds want (a form post navigates, so
// the element may belong to the next page) and returns its text.
func waitText(t *testing.T, ctx context.Context, css, want string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	expr := fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, css)
	var last string
	for time.Now().Before(deadline) {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err == nil {
			last = strings.Join(strings.Fields(got), " ")
			if strings.Contains(last, want) {
				return last
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	t.Fatalf("%s never showed %q (last %q); page:\n%s", css, want, last, body)
	return ""
}

// artifactDir is where screenshots go: $SMIMEPROXY_ARTIFACTS, or a
// directory under the test's temp dir.
func artifactDir(t *testing.T) string {
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "artifacts")
	}
	dir = filepath.Join(dir, "browser")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
	}
}
