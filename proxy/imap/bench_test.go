package imap

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"smimeproxy/internal/mailtest"
)

// BenchmarkIMAPSync is the IMAP figure of `make bench`: 1,000 messages —
// 500 plain of 20 KB in INBOX, 500 S/MIME of 50 KB in "Secure" — synced
// (SELECT; UID FETCH 1:* (UID FLAGS RFC822.SIZE); UID FETCH 1:*
// (BODY.PEEK[])) straight from the in-process upstream and through the
// proxy, in the same run. The proxy runs in a child process so its peak
// RSS is its own; byte counters sit on the TCP path to the upstream.
//
// Goals: plain upstream traffic through the proxy ≤ 1.15 × direct;
// S/MIME cold cache ≤ direct + 1.2 × the decrypt time of the same
// messages; warm cache ≤ 1.3 × direct; proxy RSS ≤ cache limit + 64 MB.
func BenchmarkIMAPSync(b *testing.B) {
	const nPlain, nSecure = 500, 500
	bc := newBenchCrypto(b)
	up, err := mailtest.StartUpstream(b.Context(), mailtest.UpstreamOptions{
		Users: map[string]string{testUser: testPass}, IMAPAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer up.Close()
	if err := up.AddUser(testUser, testPass); err != nil {
		b.Fatal(err)
	}
	var secureRaw [][]byte
	for i := range nPlain {
		raw := plainMessage(fmt.Sprintf("plain %d", i), benchBody(20<<10, i))
		if _, err := up.Append(testUser, "INBOX", raw, nil); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := up.Append(testUser, "Drafts", plainMessage("x", "x\r\n"), nil); err != nil {
		b.Fatal(err)
	}
	c0, err := mailtest.DialIMAP(b.Context(), mailtest.IMAPLogin{Addr: up.IMAPAddr(), User: testUser, Password: testPass})
	if err != nil {
		b.Fatal(err)
	}
	if err := c0.Create("Secure", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	c0.Close()
	for i := range nSecure {
		raw := bc.encrypt(b, fmt.Sprintf("secure %d", i), 50<<10)
		secureRaw = append(secureRaw, raw)
		if _, err := up.Append(testUser, "Secure", raw, nil); err != nil {
			b.Fatal(err)
		}
	}
	// The time the viewer needs for the same messages, in this process,
	// measured before and after the syncs; the shorter one counts, which
	// makes the cold-cache goal the stricter.
	decryptTime := func(round int) time.Duration {
		v := bc.viewer(b)
		start := time.Now()
		for i, raw := range secureRaw {
			key := MessageKey{User: testUser, Mailbox: fmt.Sprint("bench", round), UIDValidity: 1, UID: imap.UID(i + 1)}
			if _, err := v.View(b.Context(), key, raw); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	decrypt := decryptTime(0)

	directRelay := startRelay(b, up.IMAPAddr())
	proxyRelay := startRelay(b, up.IMAPAddr())
	child := startBenchChild(b, proxyRelay.addr, bc.writeKeys(b))

	var plainDirect, plainProxy, secDirect, secCold, secWarm syncResult
	b.ResetTimer()
	for range b.N {
		child.restart(b) // a cold cache for every round
		plainDirect = directRelay.sync(b, "INBOX", nPlain)
		plainProxy = proxyRelay.syncVia(b, child.addr, "INBOX", nPlain)
		secDirect = directRelay.sync(b, "Secure", nSecure)
		secCold = proxyRelay.syncVia(b, child.addr, "Secure", nSecure)
		secWarm = proxyRelay.syncVia(b, child.addr, "Secure", nSecure)
	}
	b.StopTimer()
	decrypt = min(decrypt, decryptTime(1)) // the less disturbed of the two
	rss := child.peakRSS()
	child.stop()

	b.ReportMetric(float64(plainProxy.upBytes)/float64(plainDirect.upBytes), "plain-traffic-x")
	b.ReportMetric(ms(plainDirect.took), "plain-direct-ms")
	b.ReportMetric(ms(plainProxy.took), "plain-proxy-ms")
	b.ReportMetric(ms(secDirect.took), "secure-direct-ms")
	b.ReportMetric(ms(decrypt), "decrypt-ms")
	b.ReportMetric(ms(secCold.took), "secure-cold-ms")
	b.ReportMetric(ms(secDirect.took+decrypt*12/10), "secure-cold-goal-ms")
	b.ReportMetric(ms(secWarm.took), "secure-warm-ms")
	b.ReportMetric(float64(secWarm.took)/float64(secDirect.took), "secure-warm-x")
	b.ReportMetric(float64(rss)/(1<<20), "proxy-rss-MB")
	b.ReportMetric(float64(bc.cacheBytes)/(1<<20)+64, "rss-limit-MB")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchBody is about size bytes of text lines, different per message.
func benchBody(size, seed int) string {
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "message %d line %d: the quick brown fox jumps over the lazy dog\r\n", seed, i)
	}
	return b.String()
}

type syncResult struct {
	took    time.Duration
	upBytes int64 // bytes the upstream sent during the sync
}

// relay is a TCP forwarder to the upstream counting what the upstream
// sends.
type relay struct {
	addr   string
	target string
	down   atomic.Int64
}

func startRelay(b *testing.B, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	r := &relay{addr: ln.Addr().String(), target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.pipe(c)
		}
	}()
	b.Cleanup(func() { ln.Close() })
	return r
}

func (r *relay) pipe(c net.Conn) {
	defer c.Close()
	u, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	defer u.Close()
	go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
	n, _ := io.Copy(c, u)
	r.down.Add(n)
}

func (r *relay) sync(b *testing.B, mailbox string, want int) syncResult {
	return r.syncVia(b, r.addr, mailbox, want)
}

// syncVia syncs mailbox through addr and counts the relay's bytes.
func (r *relay) syncVia(b *testing.B, addr, mailbox string, want int) syncResult {
	before := r.down.Load()
	start := time.Now()
	c, err := mailtest.DialIMAP(b.Context(), mailtest.IMAPLogin{Addr: addr, User: testUser, Password: testPass})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatal(err)
	}
	all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}
	heads, err := c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true}).Collect()
	if err != nil || len(heads) != want {
		b.Fatalf("%s: %d headers, %v", mailbox, len(heads), err)
	}
	cmd := c.Fetch(all, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	n, plain := 0, 0
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			if sec, ok := item.(imapclient.FetchItemDataBodySection); ok && sec.Literal != nil {
				body, _ := io.ReadAll(sec.Literal)
				if bytes.Contains(body, []byte("quick brown fox")) {
					plain++
				}
				n++
			}
		}
	}
	if err := cmd.Close(); err != nil || n != want {
		b.Fatalf("%s: %d bodies, %v", mailbox, n, err)
	}
	if addr != r.addr && plain != want {
		b.Fatalf("%s through the proxy: %d of %d bodies in plaintext", mailbox, plain, want)
	}
	c.Logout().Wait()
	c.Close()
	took := time.Since(start)
	// The relay counts a connection when it closes.
	deadline := time.Now().Add(2 * time.Second)
	last := int64(-1)
	for time.Now().Before(deadline) {
		cur := r.down.Load()
		if cur == last && cur > before {
			break
		}
		last = cur
		time.Sleep(20 * time.Millisecond)
	}
	return syncResult{took: took, upBytes: r.down.Load() - before}
}

// benchChild is the proxy running in a child process (this test binary
// re-run with IMAP_BENCH_CHILD set), so its RSS is its own.
type benchChild struct {
	upstream string
	keys     string
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	addr     string
}

func startBenchChild(b *testing.B, upstream, keys string) *benchChild {
	c := &benchChild{upstream: upstream, keys: keys}
	c.start(b)
	b.Cleanup(c.stop)
	return c
}

func (c *benchChild) start(b *testing.B) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestIMAPBenchChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "IMAP_BENCH_CHILD="+c.upstream, "IMAP_BENCH_KEYS="+c.keys)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "LISTEN ")
	if err != nil || !ok {
		cmd.Process.Kill()
		b.Fatalf("bench child: %q, %v", line, err)
	}
	go io.Copy(io.Discard, stdout)
	c.cmd, c.stdin, c.addr = cmd, stdin, addr
}

func (c *benchChild) restart(b *testing.B) {
	c.stop()
	c.start(b)
}

func (c *benchChild) stop() {
	if c.cmd == nil {
		return
	}
	c.stdin.Close()
	c.cmd.Wait()
	c.cmd = nil
}

// peakRSS reads VmHWM of the child.
func (c *benchChild) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestIMAPBenchChild is the proxy process of BenchmarkIMAPSync; it does
// nothing unless IMAP_BENCH_CHILD names the upstream.
func TestIMAPBenchChild(t *testing.T) {
	upstream := os.Getenv("IMAP_BENCH_CHILD")
	if upstream == "" {
		t.Skip("only run by BenchmarkIMAPSync")
	}
	bc := newBenchCrypto(t)
	p, err := NewProxy(Options{
		Listen: "127.0.0.1:0", ListenTLS: TLSNone, Upstream: upstream, UpstreamTLS: TLSNone,
		Viewer: bc.viewer(t), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	fmt.Printf("LISTEN %s\n", p.Addr())
	p.Serve(ctx)
}
