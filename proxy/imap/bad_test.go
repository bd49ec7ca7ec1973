package imap

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// fakeUpstream speaks just enough IMAP to log in and select, then answers
// every FETCH with a scripted response: hostile upstream behaviour that a
// real server will not produce on demand.
type fakeUpstream struct {
	ln    net.Listener
	fetch func(tag, line string) string // raw response text, may end the stream
	wg    sync.WaitGroup
}

func startFakeUpstream(t *testing.T, fetch func(tag, line string) string) *fakeUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{ln: ln, fetch: fetch}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() { defer f.wg.Done(); f.serve(conn) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *fakeUpstream) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	fmt.Fprint(conn, "* OK [CAPABILITY IMAP4rev1 UIDPLUS MOVE] fake ready\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			return
		}
		tag, cmd := fields[0], strings.ToUpper(fields[1])
		if cmd == "UID" && len(fields) > 2 {
			cmd = strings.ToUpper(fields[2])
		}
		var resp string
		switch cmd {
		case "LOGIN":
			resp = tag + " OK logged in\r\n"
		case "CAPABILITY":
			resp = "* CAPABILITY IMAP4rev1 UIDPLUS MOVE\r\n" + tag + " OK done\r\n"
		case "SELECT", "EXAMINE":
			resp = "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 2] ok\r\n* FLAGS (\\Seen)\r\n" + tag + " OK [READ-WRITE] selected\r\n"
		case "FETCH":
			if !strings.Contains(line, "BODY") {
				// the proxy's first step: cheap items only
				resp = "* 1 FETCH (UID 1 RFC822.SIZE 114)\r\n" + tag + " OK done\r\n"
				break
			}
			resp = f.fetch(tag, line)
			if resp == "" {
				return // hang up
			}
		case "LOGOUT":
			fmt.Fprint(conn, "* BYE\r\n"+tag+" OK bye\r\n")
			return
		default:
			resp = tag + " OK done\r\n"
		}
		resp, closing := strings.CutSuffix(resp, "\x00CLOSE")
		if _, err := fmt.Fprint(conn, resp); err != nil || closing {
			return
		}
	}
}

// rawClient logs in to the proxy and selects INBOX over a plain socket.
func rawClient(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	r := bufio.NewReader(conn)
	r.ReadString('\n')
	for _, cmd := range []string{"a LOGIN u p", "b SELECT INBOX"} {
		if last := rawCommand(t, conn, r, cmd); !strings.Contains(last, " OK") {
			t.Fatalf("%s: %q", cmd, last)
		}
	}
	return conn, r
}

// rawCommand sends cmd and returns the tagged reply, or the error text
// when the connection ends first.
func rawCommand(t *testing.T, conn net.Conn, r *bufio.Reader, cmd string) string {
	t.Helper()
	fmt.Fprintf(conn, "%s\r\n", cmd)
	tag := strings.Fields(cmd)[0]
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "EOF: " + err.Error()
		}
		if strings.HasPrefix(line, tag+" ") {
			return line
		}
	}
}

const fakeHeader = "Subject: x\r\n\r\n"

func TestHostileUpstream(t *testing.T) {
	smime := `("application" "pkcs7-mime" ("smime-type" "enveloped-data") NIL NIL "base64" 100 NIL NIL NIL NIL)`
	plain := `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 100 3 NIL NIL NIL NIL)`
	first := func(bs string) string {
		return `* 1 FETCH (UID 1 RFC822.SIZE 114 BODYSTRUCTURE ` + bs + ` BODY[HEADER] {14}` + "\r\n" + fakeHeader + ")\r\n"
	}
	cases := []struct {
		name  string
		fetch func(tag, line string) string
		cmd   string
		want  string // prefix of the tagged reply, or "EOF"
	}{
		{"malformed BODYSTRUCTURE", func(tag, line string) string {
			return `* 1 FETCH (UID 1 RFC822.SIZE 10 BODYSTRUCTURE ("text" "plain" (((( "x")) BODY[HEADER] {14}` + "\r\n" + fakeHeader + ")\r\n" + tag + " OK done\r\n"
		}, "c FETCH 1 (BODYSTRUCTURE RFC822.SIZE)", "c NO [UNAVAILABLE]"},
		{"multipart without children", func(tag, line string) string {
			return `* 1 FETCH (UID 1 RFC822.SIZE 10 BODYSTRUCTURE ( "mixed" NIL NIL NIL NIL))` + "\r\n" + tag + " OK done\r\n"
		}, "c FETCH 1 (BODYSTRUCTURE)", "c NO [UNAVAILABLE]"},
		{"truncated literal of an S/MIME message", func(tag, line string) string {
			if strings.Contains(line, "BODYSTRUCTURE") {
				return first(smime) + tag + " OK done\r\n"
			}
			return "* 1 FETCH (UID 1 BODY[] {1000}\r\nonly a few bytes\x00CLOSE"
		}, "c FETCH 1 (BODY.PEEK[])", "c NO [UNAVAILABLE]"},
		{"huge literal of an S/MIME message", func(tag, line string) string {
			if strings.Contains(line, "BODYSTRUCTURE") {
				return first(smime) + tag + " OK done\r\n"
			}
			return "* 1 FETCH (UID 1 BODY[] {99999999999}\r\n" + strings.Repeat("A", 1000)
		}, "c FETCH 1 (BODY.PEEK[])", "c NO [UNAVAILABLE]"},
		{"truncated literal of a plain message", func(tag, line string) string {
			if strings.Contains(line, "BODYSTRUCTURE") {
				return first(plain) + tag + " OK done\r\n"
			}
			return "* 1 FETCH (UID 1 BODY[TEXT] {100}\r\nshort\x00CLOSE"
		}, "c FETCH 1 (BODY.PEEK[])", "EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := startFakeUpstream(t, tc.fetch)
			logs := &bytes.Buffer{}
			p := startProxy(t, fake.ln.Addr().String(), &fakeViewer{}, logs, func(o *Options) { o.MaxMessageBytes = 1 << 20 })
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			conn, r := rawClient(t, p.Addr().String())
			start := time.Now()
			got := rawCommand(t, conn, r, tc.cmd)
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("reply %q, want %q", got, tc.want)
			}
			if strings.Contains(got, "fake") || strings.Contains(got, "parse") || strings.Contains(got, "literal") {
				t.Fatalf("reply leaks internal detail: %q", got)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("answer took %v", d)
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 16<<20 {
				t.Fatalf("heap grew by %d bytes", grown)
			}
			// The proxy goes on serving new connections.
			conn2, r2 := rawClient(t, p.Addr().String())
			if got := rawCommand(t, conn2, r2, "z NOOP"); !strings.HasPrefix(got, "z OK") {
				t.Fatalf("after the failure, NOOP on a new connection: %q", got)
			}
		})
	}
}

// TestClientLiteralLimits: an APPEND literal beyond the limit is refused
// before it is read; a literal cut short stores nothing upstream.
func TestClientLiteralLimits(t *testing.T) {
	h := startHarness(t, func(o *Options) { o.MaxMessageBytes = 1 << 20 })
	conn, err := net.Dial("tcp", h.proxy.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	r.ReadString('\n')
	rawCommand(t, conn, r, "a LOGIN "+testUser+" "+testPass)
	if got := rawCommand(t, conn, r, "b APPEND INBOX {50000000000}"); !strings.HasPrefix(got, "b NO [TOOBIG]") {
		t.Fatalf("huge APPEND: %q", got)
	}
	if got := rawCommand(t, conn, r, "c NOOP"); !strings.HasPrefix(got, "c OK") {
		t.Fatalf("session after refused literal: %q", got)
	}

	// Cut short: announce 1000 bytes, send 10, hang up.
	conn2, err := net.Dial("tcp", h.proxy.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn2.SetDeadline(time.Now().Add(10 * time.Second))
	r2 := bufio.NewReader(conn2)
	r2.ReadString('\n')
	rawCommand(t, conn2, r2, "a LOGIN "+testUser+" "+testPass)
	fmt.Fprint(conn2, "b APPEND INBOX {1000}\r\n")
	if line, _ := r2.ReadString('\n'); !strings.HasPrefix(line, "+") {
		t.Fatalf("no continuation: %q", line)
	}
	fmt.Fprint(conn2, "Subject: c")
	conn2.Close()
	time.Sleep(200 * time.Millisecond)
	msgs, err := h.up.Messages(t.Context(), testUser, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 0 {
		t.Fatalf("upstream stored %d messages from a truncated APPEND", len(msgs))
	}
	_ = imap.FlagSeen
}

// TestUpstreamLostSaysBye: once the upstream connection is gone, the next
// command ends the client's connection with BYE instead of failing
// forever.
func TestUpstreamLostSaysBye(t *testing.T) {
	fake := startFakeUpstream(t, func(tag, line string) string {
		return "* 1 FETCH (UID 1 BODY[TEXT] {100}\r\nshort\x00CLOSE"
	})
	p := startProxy(t, fake.ln.Addr().String(), &fakeViewer{}, &bytes.Buffer{})
	conn, r := rawClient(t, p.Addr().String())
	rawCommand(t, conn, r, "c FETCH 1 (BODY.PEEK[TEXT])")
	fmt.Fprint(conn, "d NOOP\r\n")
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		lines = append(lines, line)
	}
	if !strings.Contains(strings.Join(lines, ""), "* BYE") {
		t.Fatalf("no BYE after the upstream was lost: %q", lines)
	}
}

// An upstream that answers STATUS with OK but no STATUS response gets the
// client a NO, and the session goes on.
func TestUpstreamStatusWithoutData(t *testing.T) {
	fake := startFakeUpstream(t, func(tag, line string) string { return "" })
	p := startProxy(t, fake.ln.Addr().String(), &fakeViewer{}, &bytes.Buffer{})
	conn, r := rawClient(t, p.Addr().String())
	for _, cmd := range []string{"c STATUS INBOX (MESSAGES)", "c STATUS INBOX (UNSEEN)"} {
		if got := rawCommand(t, conn, r, cmd); !strings.Contains(got, "c NO") {
			t.Fatalf("%s answered without data: %q, want NO", cmd, got)
		}
	}
	if got := rawCommand(t, conn, r, "d NOOP"); !strings.Contains(got, "d OK") {
		t.Fatalf("NOOP after: %q", got)
	}
}

// STATUS (RECENT), which imapclient cannot send, is answered with 0 and
// the other items from the upstream, without dropping the session.
func TestStatusRecent(t *testing.T) {
	addr, _ := startSilentUpstream(t, "")
	p := startProxy(t, addr, &fakeViewer{}, &bytes.Buffer{})
	conn, r := dialRaw(t, p.Addr().String())
	if got := rawCommand(t, conn, r, "a LOGIN u p"); !strings.Contains(got, " OK") {
		t.Fatalf("LOGIN: %q", got)
	}
	fmt.Fprint(conn, "b STATUS INBOX (MESSAGES RECENT)\r\n")
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("STATUS (RECENT): connection ended after %q", lines)
		}
		lines = append(lines, line)
		if strings.HasPrefix(line, "b ") {
			break
		}
	}
	all := strings.Join(lines, "")
	if !strings.Contains(all, "MESSAGES 1") || !strings.Contains(all, "RECENT 0") || !strings.Contains(all, "b OK") {
		t.Fatalf("STATUS (MESSAGES RECENT): %q", all)
	}
}
