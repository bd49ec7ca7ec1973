package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"smimeproxy/config"
	"smimeproxy/internal/mailtest"
)

// demoInfo is demo.json as DESIGN.md specifies it.
type demoInfo struct {
	IMAP         string `json:"imap"`
	SMTP         string `json:"smtp"`
	Admin        string `json:"admin"`
	UpstreamIMAP string `json:"upstream_imap"`
	UpstreamSMTP string `json:"upstream_smtp"`
	CAPEM        string `json:"ca_pem"`
	AdminToken   string `json:"admin_token"`
	Users        []struct {
		Email         string `json:"email"`
		LoginPassword string `json:"login_password"`
		IDPassword    string `json:"id_password"`
		State         string `json:"state"`
	} `json:"users"`
}

func (d *demoInfo) user(t testing.TB, local string) (email, login, idpw, state string) {
	t.Helper()
	for _, u := range d.Users {
		if strings.HasPrefix(u.Email, local+"@") {
			return u.Email, u.LoginPassword, u.IDPassword, u.State
		}
	}
	t.Fatalf("demo.json has no user %s@", local)
	return
}

// demoProc is a running `smimeproxy demo`.
type demoProc struct {
	cmd      *exec.Cmd
	out, err *syncBuf
	done     chan struct{}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDemo runs the binary's demo on free ports; it is killed when the
// test ends if it still runs.
func startDemo(t *testing.T, args ...string) *demoProc {
	t.Helper()
	args = append([]string{"demo", "-imap", "127.0.0.1:0", "-smtp", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-log", "warn"}, args...)
	p := &demoProc{cmd: exec.Command(smimeproxyBin, args...), out: &syncBuf{}, err: &syncBuf{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.err
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start smimeproxy demo: %v", err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("demo stdout:\n%s\ndemo stderr:\n%s", p.out, p.err)
		}
	})
	return p
}

// waitFile waits for path to appear (the demo writes it once everything
// listens), or for the demo to exit.
func (p *demoProc) waitFile(t *testing.T, path func() string, within time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if f := path(); f != "" {
			if data, err := os.ReadFile(f); err == nil {
				return data
			}
		}
		select {
		case <-p.done:
			t.Fatalf("smimeproxy demo exited early (%v):\n%s", p.cmd.ProcessState, p.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("no %s after %s", path(), within)
	return nil
}

// TestDemo runs `smimeproxy demo` and uses it as a person would: alice
// sends to bob with swaks through the SMTP proxy; bob reads the plaintext
// with mbsync through the IMAP proxy, signature reported valid, while the
// upstream holds only ciphertext; dave enrols with a token from `smimeproxy
// admin token create` through the admin API and his mail to alice arrives
// signed.
func TestDemo(t *testing.T) {
	mailtest.LookTool(t, "swaks", "swaks")
	mailtest.LookTool(t, "mbsync", "isync")
	began := time.Now()
	dir := mailtest.ShortTempDir(t, "smt-demo-")
	p := startDemo(t, "-dir", dir)
	raw := p.waitFile(t, func() string { return filepath.Join(dir, "demo.json") }, 60*time.Second)
	t.Logf("demo.json after %.2fs", time.Since(began).Seconds())

	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatalf("demo.json: %v", err)
	}
	want := []string{"admin", "admin_token", "ca_pem", "imap", "smtp", "upstream_imap", "upstream_smtp", "users"}
	got := make([]string, 0, len(keys))
	for k := range keys {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("demo.json keys %v, want %v", got, want)
	}
	var info demoInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatalf("demo.json: %v", err)
	}
	alice, alicePW, _, aliceState := info.user(t, "alice")
	bob, bobPW, _, bobState := info.user(t, "bob")
	dave, davePW, daveIDPW, daveState := info.user(t, "dave")
	if aliceState != "enrolled" || bobState != "enrolled" || daveState != "none" {
		t.Errorf("states alice %q bob %q dave %q, want enrolled, enrolled, none", aliceState, bobState, daveState)
	}
	cfg, err := config.Load(filepath.Join(dir, "smimeproxy.toml"))
	if err != nil {
		t.Fatalf("the demo's smimeproxy.toml: %v", err)
	}
	if cfg.IMAP.Listen != info.IMAP || cfg.SMTP.Listen != info.SMTP {
		t.Errorf("smimeproxy.toml listens on %s / %s, demo.json says %s / %s", cfg.IMAP.Listen, cfg.SMTP.Listen, info.IMAP, info.SMTP)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	rootPool := x509.NewCertPool()
	if !rootPool.AppendCertsFromPEM(readFile(t, info.CAPEM)) {
		t.Fatalf("ca_pem %s holds no certificate", info.CAPEM)
	}
	upPool := x509.NewCertPool()
	if !upPool.AppendCertsFromPEM(readFile(t, cfg.IMAP.UpstreamCA)) {
		t.Fatalf("imap.upstream_ca %s holds no certificate", cfg.IMAP.UpstreamCA)
	}
	upstream := func(user, pw string) mailtest.IMAPLogin {
		return mailtest.IMAPLogin{Addr: info.UpstreamIMAP, User: user, Password: pw, TLS: mailtest.TLSStartTLS,
			Config: &tls.Config{RootCAs: upPool}}
	}
	proxied := func(user, pw string) mailtest.IMAPLogin {
		return mailtest.IMAPLogin{Addr: info.IMAP, User: user, Password: pw, TLS: mailtest.TLSStartTLS,
			Config: &tls.Config{RootCAs: rootPool}}
	}
	send := func(from, pw, to, subject, body string) {
		t.Helper()
		out, err := mailtest.RunSwaks(ctx, t, mailtest.Submission{
			Addr: info.SMTP, TLS: mailtest.TLSStartTLS, CAFile: info.CAPEM, User: from, Password: pw,
			From: from, To: []string{to},
			Message: []byte("From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject +
				"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@demo.test>\r\n\r\n" + body + "\r\n"),
		})
		if err != nil {
			t.Fatalf("swaks %s -> %s through the SMTP proxy: %v\n%s", from, to, err, out)
		}
	}
	const secret = "The demo's secret: the upstream never sees this line."
	send(alice, alicePW, bob, "demo one", secret)

	// Straight from the upstream: ciphertext only.
	stored, err := mailtest.WaitForMessage(ctx, upstream(bob, bobPW), "INBOX", func(m mailtest.Message) bool {
		return bytes.Contains(m.Raw, []byte("Subject: demo one"))
	})
	if err != nil {
		t.Fatalf("bob's message on the upstream: %v", err)
	}
	if !bytes.Contains(stored.Raw, []byte("application/pkcs7-mime")) || bytes.Contains(stored.Raw, []byte("secret")) {
		t.Errorf("the upstream holds no ciphertext, or the plaintext:\n%s", stored.Raw)
	}

	// Through the IMAP proxy with a real client: plaintext, signature valid.
	synced, err := mailtest.RunMbsync(ctx, t, proxied(bob, bobPW), info.CAPEM, filepath.Join(dir, "mbsync-bob"))
	if err != nil {
		t.Fatalf("mbsync as bob through the IMAP proxy: %v", err)
	}
	var read []byte
	for _, m := range synced.Folders["INBOX"] {
		if bytes.Contains(m, []byte("Subject: demo one")) {
			read = m
		}
	}
	if read == nil {
		t.Fatalf("mbsync: no 'demo one' in bob's INBOX (%d messages)", len(synced.Folders["INBOX"]))
	}
	if !bytes.Contains(read, []byte(secret)) {
		t.Errorf("bob reads no plaintext through the proxy:\n%s", read)
	}
	wantStatus(t, read, alice)

	// dave enrols with a token from the admin CLI, through the admin API.
	tokOut := mustCLI(t, nil, "admin", "-config", filepath.Join(dir, "smimeproxy.toml"), "-json", "token", "create", "-email", dave)
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(tokOut, &tok); err != nil || tok.Token == "" {
		t.Fatalf("admin token create -json: %v: %s", err, tokOut)
	}
	var enrolled struct {
		Root struct {
			Fingerprint string `json:"fingerprint_sha256"`
		} `json:"root"`
		RootAccepted bool `json:"root_accepted"`
	}
	adminPost(t, ctx, info.Admin+"/api/v1/enroll", dave, davePW, map[string]string{
		"email": dave, "token": tok.Token, "name": "Dave (demo)", "password": daveIDPW,
	}, &enrolled)
	if !enrolled.RootAccepted {
		adminPost(t, ctx, info.Admin+"/api/v1/trust/accept", dave, davePW, map[string]string{
			"email": dave, "fingerprint": enrolled.Root.Fingerprint,
		}, nil)
	}
	send(dave, davePW, alice, "demo two", "dave has a Digital ID now")
	m, err := mailtest.WaitForMessage(ctx, proxied(alice, alicePW), "INBOX", func(m mailtest.Message) bool {
		return bytes.Contains(m.Raw, []byte("Subject: demo two"))
	})
	if err != nil {
		t.Fatalf("dave's message to alice through the IMAP proxy: %v", err)
	}
	if !bytes.Contains(m.Raw, []byte("dave has a Digital ID now")) {
		t.Errorf("alice reads no plaintext:\n%s", m.Raw)
	}
	wantStatus(t, m.Raw, dave)
	if !bytes.Contains(m.Raw, []byte("Smimeproxy-Status: decrypted;")) {
		t.Errorf("dave's message to alice was not encrypted to her:\n%s", m.Raw)
	}
	t.Logf("whole demo test %.2fs", time.Since(began).Seconds())
}

// wantStatus fails unless msg carries the proxy's statement of a valid
// signature by signer, with the From address matching.
func wantStatus(t *testing.T, msg []byte, signer string) {
	t.Helper()
	var status string
	sc := bufio.NewScanner(bytes.NewReader(msg))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line == "\r" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Smimeproxy-Status:"); ok {
			status = strings.TrimSpace(v)
		}
	}
	if !strings.Contains(status, "signature valid") || !strings.Contains(status, "signer="+signer) || strings.Contains(status, "from-mismatch") {
		t.Errorf("Smimeproxy-Status %q, want a valid signature by %s", status, signer)
	}
}

// adminPost calls a user endpoint of the admin API with the mailbox login
// as HTTP Basic credentials.
func adminPost(t *testing.T, ctx context.Context, url, user, pw string, body any, reply any) {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pw)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, out)
	}
	if reply != nil {
		if err := json.Unmarshal(out, reply); err != nil {
			t.Fatalf("POST %s reply: %v: %s", url, err, out)
		}
	}
}

// TestDemoStopsOnSIGTERM starts the demo without -dir and checks that
// SIGTERM ends it within two seconds, with exit status 0 and its temporary
// directory removed.
func TestDemoStopsOnSIGTERM(t *testing.T) {
	p := startDemo(t)
	var dir string
	p.waitFile(t, func() string {
		if _, rest, ok := strings.Cut(p.out.String(), "Files: "); ok {
			dir, _, _ = strings.Cut(rest, "\n")
			return filepath.Join(dir, "demo.json")
		}
		return ""
	}, 60*time.Second)
	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("demo still running 5 s after SIGTERM")
	}
	took := time.Since(sent)
	t.Logf("stopped %.2fs after SIGTERM", took.Seconds())
	if took > 2*time.Second {
		t.Errorf("demo took %s to stop after SIGTERM, want at most 2s", took)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary demo directory %s not removed: %v", dir, err)
	}
}
