package smtp

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"smimeproxy/internal/mailtest"
)

// BenchmarkSMTPProxy is the load test of `make bench`: 100 KB messages from
// concurrent clients (SMTP_BENCH_CLIENTS, default 8; SMTP_BENCH_MESSAGES per
// client, default 100), first straight to the in-process upstream (which
// discards them), then through the proxy, which signs each with alice's
// Digital ID and encrypts it to bob and alice. It reports throughput, p50/p99
// latency, the peak RSS of the proxy phase and the ratio of the proxy's
// throughput to the crypto ceiling measured in the same run: cores ÷ the time
// of one sign+encrypt of the same message.
//
// Goals: ratio ≥ 0.7; peak RSS < 3 × (clients × message size) + 50 MB.
//
// On a shared, loaded machine wall-clock rates depend on what else runs, so
// it also reports the CPU time (user + system, whole process) per message of
// each phase and of one sign+encrypt, and the same ratios computed from CPU
// time: what the wall-clock ratios would be with the cores to itself.
func BenchmarkSMTPProxy(b *testing.B) {
	clients := envInt("SMTP_BENCH_CLIENTS", 8)
	perClient := envInt("SMTP_BENCH_MESSAGES", 100)
	const size = 100 << 10
	e := newEnv(b, envOptions{upstream: mailtest.UpstreamOptions{DiscardMail: true}})
	msg := benchMessage(size)

	// The ceiling is measured before and after the load and averaged, so
	// that it sees the same machine load as the load does.
	ceiling, cryptoCPU := cryptoCeiling(b, e, msg)
	var direct, proxied loadResult
	var peakRSS int64
	b.ResetTimer()
	for range b.N {
		direct = runLoad(b, e.up.SMTPAddr(), clients, perClient, msg)
		resetPeakRSS()
		proxied = runLoad(b, e.addr, clients, perClient, msg)
		peakRSS = peakRSSBytes()
	}
	b.StopTimer()
	ceiling2, cryptoCPU2 := cryptoCeiling(b, e, msg)
	ceiling, cryptoCPU = (ceiling+ceiling2)/2, (cryptoCPU+cryptoCPU2)/2
	if got, want := len(e.up.Envelopes()), b.N*2*clients*perClient; got != want {
		b.Fatalf("upstream accepted %d messages, want %d", got, want)
	}
	limit := float64(3*clients*size)/(1<<20) + 50
	b.ReportMetric(proxied.rate, "msgs/s")
	b.ReportMetric(direct.rate, "direct-msgs/s")
	b.ReportMetric(ms(proxied.p50), "p50-ms")
	b.ReportMetric(ms(proxied.p99), "p99-ms")
	b.ReportMetric(ms(direct.p50), "direct-p50-ms")
	b.ReportMetric(ceiling, "ceiling-msgs/s")
	b.ReportMetric(proxied.rate/ceiling, "ratio")
	// The clients and the upstream run in this process on the same cores:
	// the best the proxy could do is the crypto plus the direct path's SMTP
	// work, each message paying both.
	b.ReportMetric(proxied.rate*(1/ceiling+1/direct.rate), "ratio-vs-crypto+direct")
	b.ReportMetric(ms(proxied.cpu), "cpu-ms/msg")
	b.ReportMetric(ms(direct.cpu), "direct-cpu-ms/msg")
	b.ReportMetric(ms(cryptoCPU), "crypto-cpu-ms")
	b.ReportMetric(float64(cryptoCPU)/float64(proxied.cpu), "cpu-ratio")
	b.ReportMetric(float64(cryptoCPU+direct.cpu)/float64(proxied.cpu), "cpu-ratio-vs-crypto+direct")
	b.ReportMetric(float64(peakRSS)/(1<<20), "peak-rss-MB")
	b.ReportMetric(limit, "rss-limit-MB")
	b.ReportMetric(float64(clients), "clients")
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchMessage is a text message of about size bytes.
func benchMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString(compose(alice, bob, "", "", "load", ""))
	line := "The quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUV\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

// cryptoCeiling measures the crypto of one message as the proxy does it,
// on one core, and returns cores ÷ that time in messages per second, and
// the CPU time of one. It runs the proxy's own build steps on alice's
// message to bob (its plan: sign with alice's Digital ID, encrypt to bob
// and alice) — session.sign, session.buildCopy and writeCopy into memory —
// so it follows whatever send.go does; the policy decision and key lookups
// are made once, outside the timing.
func cryptoCeiling(b *testing.B, e *env, msg []byte) (float64, time.Duration) {
	b.Helper()
	s := &session{p: e.proxy, id: "ceiling", ctx: e.ctx, log: slog.New(slog.DiscardHandler),
		user: alice, mailbox: alice, from: alice, rcpts: []string{bob}}
	m, rerr := s.parseMessage(bytes.Clone(msg)) // parsing rearranges its input
	if rerr != nil {
		b.Fatal(rerr)
	}
	pl, rerr := s.plan(m)
	if rerr != nil {
		b.Fatal(rerr)
	}
	if len(pl.envs) != 1 || !pl.envs[0].Sign || !pl.envs[0].Encrypt || pl.sign == nil {
		b.Fatalf("plan %+v: want one signed and encrypted envelope", pl.envs)
	}
	const rounds = 100
	var sink bytes.Buffer
	start, cpu0 := time.Now(), cpuTime()
	for range rounds {
		signed, rerr := s.sign(m, pl)
		if rerr != nil {
			b.Fatal(rerr)
		}
		for _, env := range pl.envs {
			body, rerr := s.buildCopy(m, pl, env, signed)
			if rerr != nil {
				b.Fatal(rerr)
			}
			sink.Reset()
			if err := writeCopy(&sink, m, body); err != nil {
				b.Fatal(err)
			}
		}
	}
	one, cpu := time.Since(start)/rounds, (cpuTime()-cpu0)/rounds
	return float64(runtime.NumCPU()) / one.Seconds(), cpu
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type loadResult struct {
	rate     float64
	p50, p99 time.Duration
	cpu      time.Duration // process CPU time per message: clients, proxy and upstream
}

// runLoad sends perClient messages from each of clients connections (one
// login each) and measures each message from MAIL to the reply to DATA.
func runLoad(b *testing.B, addr string, clients, perClient int, msg []byte) loadResult {
	b.Helper()
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	data := dotStuff(msg)
	start, cpu0 := time.Now(), cpuTime()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialLoad(addr, alice, mailPW)
			if err != nil {
				errs <- fmt.Errorf("login at %s: %w", addr, err)
				return
			}
			defer c.conn.Close()
			mine := make([]time.Duration, 0, perClient)
			for range perClient {
				t0 := time.Now()
				if err := c.send(alice, bob, data); err != nil {
					errs <- fmt.Errorf("send via %s: %w", addr, err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	slices.Sort(lat)
	return loadResult{
		rate: float64(len(lat)) / elapsed.Seconds(),
		p50:  lat[len(lat)/2],
		p99:  lat[min(len(lat)-1, len(lat)*99/100)],
		cpu:  cpu / time.Duration(len(lat)),
	}
}

// loadClient is the load's SMTP client: what a mail client does (EHLO,
// AUTH PLAIN, then MAIL, RCPT, DATA per message), with the message
// dot-stuffed once and written in one Write, so the measurement is of the
// server, not of the client's writer.
type loadClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialLoad(addr, user, password string) (*loadClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := &loadClient{conn: conn, r: bufio.NewReaderSize(conn, maxReplyLine)}
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	for _, step := range []struct {
		line string
		want int
	}{{"", 220}, {"EHLO load.test", 250}, {"AUTH PLAIN " + ir, 235}} {
		if err := c.cmd(step.line, step.want); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

// cmd writes line (unless empty) and reads a reply with code want.
func (c *loadClient) cmd(line string, want int) error {
	c.conn.SetDeadline(time.Now().Add(time.Minute))
	if line != "" {
		if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
			return err
		}
	}
	rep, err := readReply(c.r)
	if err != nil {
		return err
	}
	if rep.code != want {
		return fmt.Errorf("%q: %d %s", strings.Fields(line + " reply")[0], rep.code, rep.text())
	}
	return nil
}

// send runs one transaction; data is the dot-stuffed message with its
// terminating ".". MAIL, RCPT and DATA go out in one write, as mail clients
// send them to a server offering PIPELINING (RFC 2920), and their replies
// are read after; the message follows the 354.
func (c *loadClient) send(from, to string, data []byte) error {
	c.conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(c.conn, "MAIL FROM:<"+from+">\r\nRCPT TO:<"+to+">\r\nDATA\r\n"); err != nil {
		return err
	}
	for _, want := range []struct {
		cmd  string
		code int
	}{{"MAIL", 250}, {"RCPT", 250}, {"DATA", 354}} {
		rep, err := readReply(c.r)
		if err != nil {
			return err
		}
		if rep.code != want.code {
			return fmt.Errorf("%s: %d %s", want.cmd, rep.code, rep.text())
		}
	}
	if _, err := c.conn.Write(data); err != nil {
		return err
	}
	return c.cmd("", 250)
}

// dotStuff returns msg (CRLF lines, ending with CRLF) as DATA sends it:
// a "." before every line that starts with one, then ".\r\n".
func dotStuff(msg []byte) []byte {
	out := bytes.ReplaceAll(msg, []byte("\r\n."), []byte("\r\n.."))
	if bytes.HasPrefix(out, []byte(".")) {
		out = append([]byte("."), out...)
	}
	return append(out, ".\r\n"...)
}

// resetPeakRSS resets the kernel's high-water mark of this process's RSS
// (Linux: "5" to /proc/self/clear_refs), so the next peak is the load's.
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSSBytes reads VmHWM from /proc/self/status.
func peakRSSBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
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
