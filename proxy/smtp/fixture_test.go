package smtp

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/seal"
	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
	"smimeproxy/policy"
	"smimeproxy/store/sqlite"
)

// Test mailboxes. alice and bob have Digital IDs of the gateway (identity
// on SQLite); carol is an outside correspondent whose certificate was
// imported with GCM and OAEP advertised; dave has no certificate.
const (
	alice   = "alice@example.test"
	bob     = "bob@example.test"
	carol   = "carol@other.test"
	dave    = "dave@other.test"
	mailPW  = "mail-pw"
	idPW    = "digital-id-password"
	unlockU = "https://proxy.test/unlock"
	enrolU  = "https://proxy.test/enroll"
)

var sharedCA struct {
	once sync.Once
	dir  string
	ca   *ca.CA
	err  error
}

func TestMain(m *testing.M) {
	smime.ConfigureLibrary()
	code := m.Run()
	if sharedCA.dir != "" {
		os.RemoveAll(sharedCA.dir)
	}
	os.Exit(code)
}

func testCA(t testing.TB) (*ca.CA, string) {
	t.Helper()
	sharedCA.once.Do(func() {
		sharedCA.dir, sharedCA.err = os.MkdirTemp("", "smtp-ca-")
		if sharedCA.err == nil {
			sharedCA.ca, sharedCA.err = ca.Open(sharedCA.dir, ca.Options{Org: "SMTP Proxy Test Org", RootKeyType: ca.KeyP256})
		}
	})
	if sharedCA.err != nil {
		t.Fatalf("test CA: %v", sharedCA.err)
	}
	return sharedCA.ca, sharedCA.dir
}

// okAuth accepts mailPW for every mailbox (identity's user calls).
type okAuth struct{}

func (okAuth) Authenticate(_ context.Context, _ string, pw identity.Secret) error {
	if pw == mailPW {
		return nil
	}
	return identity.ErrAuthFailed
}

type env struct {
	t     testing.TB
	ctx   context.Context
	ids   *identity.Service
	roots *x509.CertPool
	up    *mailtest.Upstream
	proxy *Proxy
	addr  string
	carol *mailtest.User
	logs  *bytes.Buffer // proxy logs (lockedWriter)
	// upAddr, when set, is where proxies started later connect instead
	// of the upstream (e.g. a relay that rewrites its replies).
	upAddr string
}

type envOptions struct {
	policy   policy.Policy
	upstream mailtest.UpstreamOptions
	maxBytes int64
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx}
	authority, caDir := testCA(t)

	st, err := sqlite.Open(ctx, t.TempDir()+"/ids.db")
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	e.ids, err = identity.New(st, identity.Options{
		CA: authority, CADir: caDir, Upstream: okAuth{},
		Seal:   seal.Params{Time: 1, MemoryKiB: 8 * 1024, Threads: 1},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("identity: %v", err)
	}
	t.Cleanup(func() { e.ids.Close() })
	e.roots = x509.NewCertPool()
	chain := authority.Chain()
	e.roots.AddCert(chain[len(chain)-1])
	for _, who := range []string{alice, bob} {
		e.enrol(who)
	}
	pki := mailtest.NewPKI(t)
	e.carol = pki.User(t, carol, mailtest.RSA)
	if _, err := e.ids.ImportCertificate(ctx, e.carol.EncCert, []smime.Capability{
		{OID: smime.OIDCapAES256GCM}, {OID: smime.OIDCapAES256CBC}, {OID: smime.OIDCapRSAOAEP},
	}); err != nil {
		t.Fatalf("import carol: %v", err)
	}

	uo := o.upstream
	if uo.Users == nil {
		uo.Users = map[string]string{alice: mailPW, bob: mailPW}
	}
	uo.SMTPAddr = "127.0.0.1:0"
	uo.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	e.up, err = mailtest.StartUpstream(ctx, uo)
	if err != nil {
		t.Fatalf("upstream: %v", err)
	}
	t.Cleanup(func() { e.up.Close() })

	e.addr = e.startProxy(o.policy, o.maxBytes)
	return e
}

// startProxy starts a proxy with pol in front of the env's upstream and
// returns its address.
func (e *env) startProxy(pol policy.Policy, maxBytes int64) string {
	t := e.t
	t.Helper()
	if pol.Sign == "" {
		pol = policy.Policy{Sign: policy.Always, Encrypt: policy.WhenPossible}
	}
	if e.logs == nil {
		e.logs = &bytes.Buffer{}
	}
	p, err := NewProxy(Options{
		ListenTLS: TLSNone, Upstream: cmp.Or(e.upAddr, e.up.SMTPAddr()), UpstreamTLS: TLSNone,
		MaxMessageBytes: maxBytes,
		Keys:            e.ids, Policy: pol,
		UnlockURL:      func(a string) string { return unlockU + "?email=" + a },
		EnrollURL:      func(a string) string { return enrolU + "?email=" + a },
		CommandTimeout: 10 * time.Second, DataTimeout: 20 * time.Second, DialTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: e.logs}, nil)),
	})
	if err != nil {
		t.Fatalf("NewProxy: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(e.ctx, l) }()
	t.Cleanup(func() {
		p.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	if e.proxy == nil {
		e.proxy = p
	}
	return l.Addr().String()
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (e *env) enrol(who string) {
	e.t.Helper()
	tok, _, err := e.ids.CreateToken(e.ctx, who, identity.PurposeEnroll, 0)
	if err != nil {
		e.t.Fatalf("token %s: %v", who, err)
	}
	res, err := e.ids.Enroll(e.ctx, identity.EnrollRequest{Email: who, Token: tok, Name: who, Password: idPW})
	if err != nil {
		e.t.Fatalf("enrol %s: %v", who, err)
	}
	if !res.RootAccepted {
		if _, err := e.ids.AcceptRoot(e.ctx, who, res.Root.Fingerprint); err != nil {
			e.t.Fatalf("accept root %s: %v", who, err)
		}
	}
}

// keysOf returns the decryption keys of a test mailbox.
func (e *env) keysOf(who string) []smime.KeyPair {
	e.t.Helper()
	if who == carol {
		return []smime.KeyPair{{Cert: e.carol.EncCert, Key: e.carol.EncKey}}
	}
	ks, err := e.ids.DecryptionKeys(e.ctx, who)
	if err != nil {
		e.t.Fatalf("decryption keys of %s: %v", who, err)
	}
	return ks
}

// client logs in to the proxy as user.
func (e *env) client(user string) *gosmtp.Client {
	e.t.Helper()
	return e.clientAt(e.addr, user)
}

func (e *env) clientAt(addr, user string) *gosmtp.Client {
	e.t.Helper()
	c, err := gosmtp.Dial(addr)
	if err != nil {
		e.t.Fatalf("dial proxy: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	if err := c.Auth(sasl.NewPlainClient("", user, mailPW)); err != nil {
		e.t.Fatalf("AUTH as %s: %v", user, err)
	}
	return c
}

// send runs one transaction and returns the reply to the end of DATA (nil
// for 250) or the first refusal before it.
func send(c *gosmtp.Client, from string, rcpts []string, msg string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			c.Reset()
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}

func compose(from, to, cc, bcc, subject, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", from)
	if to != "" {
		fmt.Fprintf(&b, "To: %s\r\n", to)
	}
	if cc != "" {
		fmt.Fprintf(&b, "Cc: %s\r\n", cc)
	}
	if bcc != "" {
		fmt.Fprintf(&b, "Bcc: %s\r\n", bcc)
	}
	fmt.Fprintf(&b, "Subject: %s\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <%s@example.test>\r\n", subject, strings.ReplaceAll(subject, " ", "-"))
	fmt.Fprintf(&b, "Content-Type: text/plain; charset=us-ascii\r\n\r\n%s\r\n", body)
	return b.String()
}

func smtpCode(err error) int {
	if se, ok := err.(*gosmtp.SMTPError); ok {
		return se.Code
	}
	return -1
}

// open decrypts (when encrypted) and verifies a delivered copy as who.
type opened struct {
	encrypted bool
	cipher    smime.Cipher
	keyMgmt   string
	signed    bool
	valid     bool
	entity    []byte
	header    smime.Header
}

func (e *env) open(raw []byte, who string) opened {
	e.t.Helper()
	var o opened
	outer, entity, err := smime.SplitMessage(raw)
	if err != nil {
		e.t.Fatalf("split: %v", err)
	}
	o.header = outer
	msg := raw
	if strings.Contains(strings.ToLower(string(entity[:min(len(entity), 200)])), "application/pkcs7-mime") {
		d, err := smime.Decrypt(raw, e.keysOf(who))
		if err != nil {
			e.t.Fatalf("decrypt as %s: %v", who, err)
		}
		o.encrypted, o.cipher, o.keyMgmt = true, d.Cipher, d.KeyManagement
		var b bytes.Buffer
		smime.Compose(&b, d.Header, d.Entity)
		msg = b.Bytes()
		entity = d.Entity
	}
	o.entity = entity
	if strings.Contains(strings.ToLower(string(entity[:min(len(entity), 200)])), "multipart/signed") {
		o.signed = true
		v, err := smime.Verify(msg, smime.VerifyOptions{Roots: e.roots})
		if err != nil {
			e.t.Fatalf("verify: %v", err)
		}
		o.valid = v.Valid && v.FromMatches
		o.entity = v.Entity
	}
	return o
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
