package identity

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/seal"
)

// testSeal are Argon2 parameters small enough for many enrolments per test
// (the benchmarks use the defaults).
var testSeal = seal.Params{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}

// The CA is made once per test binary: its root and escrow keys take a
// second or two to generate.
var sharedCA struct {
	once sync.Once
	dir  string
	ca   *ca.CA
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pgCluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop postgres:", err)
	}
	if sharedCA.dir != "" {
		os.RemoveAll(sharedCA.dir)
	}
	os.Exit(code)
}

func testCA(t testing.TB) (*ca.CA, string) {
	t.Helper()
	sharedCA.once.Do(func() {
		sharedCA.dir, sharedCA.err = os.MkdirTemp("", "identity-ca-")
		if sharedCA.err == nil {
			sharedCA.ca, sharedCA.err = ca.Open(sharedCA.dir, ca.Options{Org: "Identity Test Org", RootKeyType: ca.KeyP256})
		}
	})
	if sharedCA.err != nil {
		t.Fatalf("test CA: %v", sharedCA.err)
	}
	return sharedCA.ca, sharedCA.dir
}

// fakeAuth accepts password "mail-pw" for every address.
type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, _ string, pw Secret) error {
	if pw == "mail-pw" {
		return nil
	}
	return ErrAuthFailed
}

// countingRecords counts token lookups, to prove a typo never reaches the
// store, and reads of Digital IDs and keys, to prove cached keys do not.
type countingRecords struct {
	records
	tokenLookups atomic.Int32
	idReads      atomic.Int32 // Identity, IdentitiesByEmail, Identities
	keyReads     atomic.Int32
	// onKeys, when set, runs inside every Keys call (before the read).
	onKeys atomic.Pointer[func()]
}

func (c *countingRecords) Token(ctx context.Context, hash []byte) (tokenInfo, error) {
	c.tokenLookups.Add(1)
	return c.records.Token(ctx, hash)
}

func (c *countingRecords) Identity(ctx context.Context, id string) (idRecord, error) {
	c.idReads.Add(1)
	return c.records.Identity(ctx, id)
}

func (c *countingRecords) IdentitiesByEmail(ctx context.Context, email string) ([]idRecord, error) {
	c.idReads.Add(1)
	return c.records.IdentitiesByEmail(ctx, email)
}

func (c *countingRecords) Identities(ctx context.Context) ([]idRecord, error) {
	c.idReads.Add(1)
	return c.records.Identities(ctx)
}

func (c *countingRecords) Keys(ctx context.Context, identityID string) ([]keyRecord, error) {
	if f := c.onKeys.Load(); f != nil {
		(*f)()
	}
	c.keyReads.Add(1)
	return c.records.Keys(ctx, identityID)
}

// storeReads is how many ID and key reads reached the store so far.
func (c *countingRecords) storeReads() int32 { return c.idReads.Load() + c.keyReads.Load() }

type fixture struct {
	svc   *Service
	rec   *countingRecords
	clk   *fakeClock
	logs  *syncBuffer
	caDir string
	ca    *ca.CA
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

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// newFixture makes a Service on rec (an in-memory one when nil) with P-256
// user keys and small Argon2 parameters; opts adjust the options.
func newFixture(t testing.TB, rec records, opts ...func(*Options)) *fixture {
	t.Helper()
	c, dir := testCA(t)
	if rec == nil {
		rec = newMemRecords()
	}
	f := &fixture{rec: &countingRecords{records: rec}, clk: newFakeClock(), logs: &syncBuffer{}, caDir: dir, ca: c}
	o := Options{
		CA: c, CADir: dir, Upstream: fakeAuth{}, Clock: f.clk,
		Logger:  slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		KeyType: ca.KeyP256, Seal: testSeal, Limiter: seal.NewLimiter(2),
	}
	for _, fn := range opts {
		fn(&o)
	}
	svc, err := newService(f.rec, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	f.svc = svc
	return f
}

func (f *fixture) token(t testing.TB, email string, p Purpose) Secret {
	t.Helper()
	tok, exp, err := f.svc.CreateToken(context.Background(), email, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.clk.Now().Add(DefaultTokenTTL); !exp.Equal(want) {
		t.Fatalf("token expires %v, want %v", exp, want)
	}
	return tok
}

// enroll enrols email with a fresh token and accepts the root.
func (f *fixture) enroll(t testing.TB, email string, password Secret) *EnrollResult {
	t.Helper()
	ctx := context.Background()
	res, err := f.svc.Enroll(ctx, EnrollRequest{Email: email, Token: f.token(t, email, PurposeEnroll), Name: "Test ID", Password: password})
	if err != nil {
		t.Fatalf("enrol %s: %v", email, err)
	}
	if _, err := f.svc.AcceptRoot(ctx, email, res.Root.Fingerprint); err != nil {
		t.Fatalf("accept root: %v", err)
	}
	return res
}
