package smtp

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"smimeproxy/internal/mailtest"
)

// recorder is the fake sessions' shared log of what the server asked of
// them.
type recorder struct {
	mu     sync.Mutex
	events []string
	panics string // command whose handling panics ("MAIL", "DATA")
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// fakeSession accepts the password "pw" for anyone, every address, and
// records each message read by Data.
type fakeSession struct{ r *recorder }

func (f fakeSession) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }
func (f fakeSession) Auth(mech string) (sasl.Server, error) {
	check := func(user, pw string) error {
		if pw != "pw" {
			return errAuthFailed
		}
		f.r.add("AUTH " + user)
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, u, pw string) error { return check(u, pw) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}
func (f fakeSession) Mail(from string, o *gosmtp.MailOptions) error {
	if f.r.panics == "MAIL" {
		panic("fake session panic")
	}
	f.r.add("MAIL " + from)
	return nil
}
func (f fakeSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	f.r.add("RCPT " + to)
	return nil
}
func (f fakeSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		f.r.add("DATA error " + err.Error())
		return reply(554, "5.6.0", "read: %v", err)
	}
	f.r.add("DATA " + string(b))
	return nil
}
func (f fakeSession) Reset()        {}
func (f fakeSession) Logout() error { f.r.add("LOGOUT"); return nil }

type testServer struct {
	srv *server
	rec *recorder
}

// newTestServer returns a server of fake sessions; o's zero fields get
// test defaults.
func newTestServer(t *testing.T, o serverOptions) *testServer {
	t.Helper()
	ts := &testServer{rec: &recorder{}}
	if o.Hostname == "" {
		o.Hostname = "proxy.test"
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 1 << 20
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = 10 * time.Second
	}
	if o.DataTimeout == 0 {
		o.DataTimeout = 10 * time.Second
	}
	o.NewSession = func(connInfo) serverSession { return fakeSession{ts.rec} }
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ts.srv = newServer(o)
	t.Cleanup(func() { ts.srv.Close() })
	return ts
}

// pipe serves one connection over net.Pipe: each Write of the client
// arrives as one read at the server, and each flush of the server as one
// read at the client, so batching is observable.
func (ts *testServer) pipe(t testing.TB) net.Conn {
	t.Helper()
	cl, sv := net.Pipe()
	t.Cleanup(func() { cl.Close() })
	c := newConn(ts.srv, sv)
	ts.srv.track(c)
	go func() {
		defer ts.srv.untrack(c)
		c.serve()
	}()
	cl.SetDeadline(time.Now().Add(20 * time.Second))
	return cl
}

// readOnce returns what one read of the connection gives.
func readOnce(t testing.TB, c net.Conn) string {
	t.Helper()
	b := make([]byte, 64<<10)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b[:n])
}

func write(t testing.TB, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// codes returns the reply codes of the final lines in s.
func codes(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n") {
		if len(l) >= 4 && l[3] == ' ' {
			out = append(out, l[:3])
		}
	}
	return out
}

// login greets and logs in with AUTH PLAIN over c.
func login(t testing.TB, c net.Conn) {
	t.Helper()
	if got := readOnce(t, c); !strings.HasPrefix(got, "220 proxy.test ESMTP") {
		t.Fatalf("greeting %q", got)
	}
	write(t, c, "EHLO client.test\r\n")
	if got := readOnce(t, c); !strings.Contains(got, "250-AUTH PLAIN LOGIN\r\n") || !strings.Contains(got, "250-CHUNKING\r\n") {
		t.Fatalf("EHLO reply %q", got)
	}
	write(t, c, "AUTH PLAIN "+b64("\x00u@example.test\x00pw")+"\r\n")
	if got := readOnce(t, c); !strings.HasPrefix(got, "235 2.7.0") {
		t.Fatalf("AUTH: %q", got)
	}
}

// TestPipelinedRepliesBatched: commands sent in one write get their
// replies in one write (RFC 2920), in order, after the last of them ran.
func TestPipelinedRepliesBatched(t *testing.T) {
	ts := newTestServer(t, serverOptions{InsecureAuth: true})
	c := ts.pipe(t)
	login(t, c)
	write(t, c, "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<bad address>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n")
	got := readOnce(t, c)
	if want := []string{"250", "250", "501", "250", "354"}; strings.Join(codes(got), " ") != strings.Join(want, " ") {
		t.Fatalf("pipelined replies in one read: %q, want codes %v", got, want)
	}
	write(t, c, "Subject: x\r\n\r\n..dot\r\n.\r\nNOOP\r\nRSET\r\n")
	if got := readOnce(t, c); strings.Join(codes(got), " ") != "250 250 250" {
		t.Fatalf("end of data and pipelined commands: %q", got)
	}
	if ev := ts.rec.all(); !contains(ev, "DATA Subject: x\r\n\r\n.dot\r\n") || !contains(ev, "RCPT c@example.test") {
		t.Errorf("session saw %q", ev)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestSTARTTLSInjectionDiscarded: commands sent in clear behind STARTTLS,
// before the handshake, are dropped, not run inside the TLS session.
func TestSTARTTLSInjectionDiscarded(t *testing.T) {
	st, err := mailtest.NewServerTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, serverOptions{TLSConfig: st.Server})
	c := ts.pipe(t)
	readOnce(t, c)
	write(t, c, "EHLO client.test\r\n")
	if got := readOnce(t, c); !strings.Contains(got, "250-STARTTLS") || strings.Contains(got, "AUTH") {
		t.Fatalf("EHLO before TLS: %q (STARTTLS offered, AUTH not)", got)
	}
	write(t, c, "STARTTLS\r\nEHLO evil.test\r\nAUTH PLAIN "+b64("\x00evil@example.test\x00pw")+"\r\nMAIL FROM:<evil@example.test>\r\n")
	if got := readOnce(t, c); !strings.HasPrefix(got, "220 2.0.0") || strings.Count(got, "\r\n") != 1 {
		t.Fatalf("STARTTLS reply: %q (the injected commands must not be answered)", got)
	}
	tc := tls.Client(c, &tls.Config{RootCAs: st.Roots, ServerName: "127.0.0.1"})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	tp := textproto.NewConn(tc)
	// The first reply after the handshake answers this NOOP.
	if err := tp.PrintfLine("NOOP"); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := tp.ReadResponse(250); err != nil || !strings.HasPrefix(msg, "2.0.0 OK") {
		t.Fatalf("NOOP after TLS: %q %v", msg, err)
	}
	// The session starts over: MAIL needs EHLO again.
	tp.PrintfLine("MAIL FROM:<a@example.test>")
	if code, _, _ := tp.ReadResponse(0); code != 503 {
		t.Errorf("MAIL without EHLO after STARTTLS: %d, want 503", code)
	}
	tp.PrintfLine("EHLO client.test")
	if _, msg, err := tp.ReadResponse(250); err != nil || !strings.Contains(msg, "AUTH PLAIN LOGIN") || strings.Contains(msg, "STARTTLS") {
		t.Fatalf("EHLO over TLS: %q %v", msg, err)
	}
	for _, ev := range ts.rec.all() {
		if strings.Contains(ev, "evil") {
			t.Errorf("injected command reached the session: %q", ev)
		}
	}
}

// TestCommandLineLimits: a command line over the limit, even one larger
// than the read buffer, gets 500 and the next command is read in sync; an
// AUTH line may be longer.
func TestCommandLineLimits(t *testing.T) {
	ts := newTestServer(t, serverOptions{InsecureAuth: true})
	c := ts.pipe(t)
	login(t, c)
	for _, n := range []int{maxCommandLine, 3 * readBufSize} {
		write(t, c, "NOOP "+strings.Repeat("x", n)+"\r\nNOOP\r\n")
		var got string
		for len(codes(got)) < 2 {
			got += readOnce(t, c)
		}
		if !strings.HasPrefix(got, "500 5.5.2") || strings.Join(codes(got), " ") != "500 250" {
			t.Errorf("%d-octet line: %q", n, got)
		}
	}
	write(t, c, "NOOP "+strings.Repeat("x", maxCommandLine-7)+"\r\n")
	if got := readOnce(t, c); !strings.HasPrefix(got, "250 ") {
		t.Errorf("line at the limit: %q", got)
	}
}

// TestTooManyBadCommands: after maxBadCommands bad commands the
// connection is closed with 421.
func TestTooManyBadCommands(t *testing.T) {
	ts := newTestServer(t, serverOptions{InsecureAuth: true})
	c := ts.pipe(t)
	readOnce(t, c)
	write(t, c, strings.Repeat("XYZZY\r\n", maxBadCommands+1)+"NOOP\r\n")
	got, _ := io.ReadAll(c)
	cs := codes(string(got))
	if len(cs) != maxBadCommands+2 || cs[len(cs)-1] != "421" || cs[0] != "500" {
		t.Fatalf("replies %q", got)
	}
}

// TestSessionPanic: a panic in a session ends that connection with 421;
// the server goes on serving others.
func TestSessionPanic(t *testing.T) {
	ts := newTestServer(t, serverOptions{InsecureAuth: true})
	ts.rec.panics = "MAIL"
	c := ts.pipe(t)
	login(t, c)
	write(t, c, "MAIL FROM:<a@example.test>\r\n")
	got, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(got), "421 4.3.0") {
		t.Fatalf("after a panic: %q", got)
	}
	if ev := ts.rec.all(); ev[len(ev)-1] != "LOGOUT" {
		t.Errorf("session not ended: %q", ev)
	}
	c2 := ts.pipe(t)
	login(t, c2)
}

// TestAuthExchanges: PLAIN without an initial response, LOGIN, cancel,
// bad base64, and AUTH refused before TLS on a TLS listener.
func TestAuthExchanges(t *testing.T) {
	ts := newTestServer(t, serverOptions{InsecureAuth: true})
	steps := []struct{ send, want string }{
		{"AUTH PLAIN", "334 "},
		{"*", "501 "},
		{"AUTH PLAIN not-base64!", "501 5.5.2"},
		{"AUTH PLAIN", "334 "},
		{"%%%", "501 5.5.2"},
		{"AUTH CRAM-MD5", "504 "},
		{"AUTH LOGIN", "334 " + b64("Username:")},
		{b64("u@example.test"), "334 " + b64("Password:")},
		{b64("wrong"), "535 5.7.8"},
		{"AUTH PLAIN", "334 "},
		{b64("\x00u@example.test\x00pw"), "235 2.7.0"},
		{"AUTH PLAIN", "503 5.5.1"},
	}
	c := ts.pipe(t)
	readOnce(t, c)
	write(t, c, "EHLO client.test\r\n")
	readOnce(t, c)
	for _, s := range steps {
		write(t, c, s.send+"\r\n")
		if got := readOnce(t, c); !strings.HasPrefix(got, s.want) {
			t.Fatalf("%q: %q, want %q", s.send, got, s.want)
		}
	}

	st, err := mailtest.NewServerTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c2 := newTestServer(t, serverOptions{TLSConfig: st.Server}).pipe(t)
	readOnce(t, c2)
	write(t, c2, "EHLO client.test\r\nAUTH PLAIN "+b64("\x00u@example.test\x00pw")+"\r\n")
	if got := readOnce(t, c2); !strings.Contains(got, "\r\n530 5.7.0") {
		t.Errorf("AUTH before STARTTLS: %q", got)
	}
}

// TestIdleTimeout: a client silent for CommandTimeout gets 421 4.4.2.
func TestIdleTimeout(t *testing.T) {
	ts := newTestServer(t, serverOptions{CommandTimeout: 200 * time.Millisecond})
	c := ts.pipe(t)
	readOnce(t, c)
	start := time.Now()
	got, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(got), "421 4.4.2") || time.Since(start) > 5*time.Second {
		t.Fatalf("after %v: %q", time.Since(start), got)
	}
}

// TestServerCloseEndsSessions: Close ends every connection and its
// session, and Serve returns.
func TestServerCloseEndsSessions(t *testing.T) {
	ts := newTestServer(t, serverOptions{InsecureAuth: true})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ts.srv.Serve(l) }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if got := readOnce(t, c); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("greeting %q", got)
	}
	ts.srv.Close()
	if err := <-done; err != errServerClosed {
		t.Errorf("Serve: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("connection still open after Close")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !contains(ts.rec.all(), "LOGOUT") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !contains(ts.rec.all(), "LOGOUT") {
		t.Errorf("session not ended by Close")
	}
}

// TestMaxConnections: a connection over the limit gets 421 4.7.0 and is
// closed; once a served connection ends, a new one is served again.
func TestMaxConnections(t *testing.T) {
	ts := newTestServer(t, serverOptions{InsecureAuth: true, MaxConnections: 2})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.srv.Serve(l)
	dial := func() (net.Conn, string) {
		t.Helper()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, readOnce(t, c)
	}
	first, g1 := dial()
	_, g2 := dial()
	if !strings.HasPrefix(g1, "220 ") || !strings.HasPrefix(g2, "220 ") {
		t.Fatalf("greetings within the limit: %q, %q", g1, g2)
	}
	over, g3 := dial()
	if !strings.HasPrefix(g3, "421 4.7.0 ") {
		t.Fatalf("connection over the limit: %q, want 421 4.7.0", g3)
	}
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Error("connection over the limit left open")
	}
	write(t, first, "QUIT\r\n")
	if got := readOnce(t, first); !strings.HasPrefix(got, "221 ") {
		t.Fatalf("QUIT: %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, g := dial()
		if strings.HasPrefix(g, "220 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one ended: %q", g)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
