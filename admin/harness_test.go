package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/seal"
	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
	"smimeproxy/store/sqlite"
)

// The CA is made once per test binary: generating its keys takes a moment.
var sharedCA struct {
	once sync.Once
	dir  string
	ca   *ca.CA
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedCA.dir != "" {
		os.RemoveAll(sharedCA.dir)
	}
	os.Exit(code)
}

func testCA(t testing.TB) (*ca.CA, string) {
	t.Helper()
	sharedCA.once.Do(func() {
		sharedCA.dir, sharedCA.err = os.MkdirTemp("", "admin-ca-")
		if sharedCA.err == nil {
			sharedCA.ca, sharedCA.err = ca.Open(sharedCA.dir, ca.Options{Org: "Admin Test Org", RootKeyType: ca.KeyP256})
		}
	})
	if sharedCA.err != nil {
		t.Fatalf("test CA: %v", sharedCA.err)
	}
	return sharedCA.ca, sharedCA.dir
}

// mapAuth is an upstream stand-in: address → mail password.
type mapAuth map[string]string

func (m mapAuth) Authenticate(_ context.Context, user string, pw identity.Secret) error {
	if want, ok := m[strings.ToLower(user)]; ok && want == string(pw) {
		return nil
	}
	return identity.ErrAuthFailed
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	alice      = "alice@example.test"
	bob        = "bob@example.test"
	aliceMail  = "alice-mail-pw"
	bobMail    = "bob-mail-pw"
	adminToken = "admin-bearer-0123456789abcdef"
)

// fakeClock is moved by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type harness struct {
	t      testing.TB
	clock  *fakeClock
	srv    *httptest.Server
	h      *Server
	svc    *identity.Service
	ca     *ca.CA
	logs   *syncBuffer
	dbPath string
	// replies collects every reply's headers and body, for the secrets scan.
	replies bytes.Buffer
}

// newHarness runs a real identity.Service on SQLite behind the endpoint.
func newHarness(t testing.TB, adjust ...func(*Options)) *harness {
	t.Helper()
	c, dir := testCA(t)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dbPath := filepath.Join(t.TempDir(), "smimeproxy.db")
	st, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	auth := mapAuth{alice: aliceMail, bob: bobMail}
	clock := &fakeClock{now: time.Now()}
	svc, err := identity.New(st, identity.Options{
		CA: c, CADir: dir, Upstream: auth, Logger: logger, KeyType: ca.KeyP256, Clock: clock,
		IdleTimeout: 5 * time.Hour, // so unlock replies show the remembered period
		Seal:        seal.Params{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}, Limiter: seal.NewLimiter(2),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	srv := httptest.NewUnstartedServer(nil)
	opts := Options{
		Identity: svc, Auth: auth, AdminToken: adminToken, PublicURL: "http://" + srv.Listener.Addr().String(),
		CARootPEM: mailtest.CertPEM(c.Root()), Logger: logger, Clock: clock,
	}
	for _, fn := range adjust {
		fn(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return &harness{t: t, clock: clock, srv: srv, h: h, svc: svc, ca: c, logs: logs, dbPath: dbPath}
}

// call is one API request.
type call struct {
	method, path string
	body         any    // JSON-encoded unless a string
	bearer       string // admin credential
	user, pass   string // Basic
	header       map[string]string
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) errCode() string {
	var e errorBody
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (r reply) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

func (h *harness) do(c call) reply {
	h.t.Helper()
	var body io.Reader
	switch b := c.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequest(c.method, h.srv.URL+c.path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	for k, v := range c.header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	if c.path != "/api/v1/tokens" { // the one reply meant to carry a token
		_ = resp.Header.Write(&h.replies)
		h.replies.Write(data)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: data}
}

// token creates a security token through the API.
func (h *harness) token(email, purpose string) string {
	h.t.Helper()
	r := h.do(call{method: "POST", path: "/api/v1/tokens", bearer: adminToken,
		body: TokenRequest{Email: email, Purpose: purpose}})
	if r.status != http.StatusCreated {
		h.t.Fatalf("create token: %v", r)
	}
	var tr TokenReply
	r.decode(h.t, &tr)
	return tr.Token
}

// enroll enrols email (alice or bob) through the API and accepts the root.
func (h *harness) enroll(email, mailPW, idPW string, accept bool) EnrollReply {
	h.t.Helper()
	r := h.do(call{method: "POST", path: "/api/v1/enroll", user: email, pass: mailPW,
		body: EnrollRequest{Email: email, Token: h.token(email, ""), Name: "Test ID", Password: idPW}})
	if r.status != http.StatusCreated {
		h.t.Fatalf("enroll: %v", r)
	}
	var er EnrollReply
	r.decode(h.t, &er)
	if accept && !er.RootAccepted {
		r := h.do(call{method: "POST", path: "/api/v1/trust/accept", user: email, pass: mailPW,
			body: AcceptRequest{Email: email, Fingerprint: er.Root.Fingerprint}})
		if r.status != http.StatusOK {
			h.t.Fatalf("accept: %v", r)
		}
	}
	return er
}
