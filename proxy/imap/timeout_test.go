package imap

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// startSilentUpstream is a fake IMAP server that answers LOGIN and SELECT
// and then, from the command named silentOn on, reads on but never
// answers (an IDLE gets its continuation first). It reports each line it
// read on lines.
func startSilentUpstream(t *testing.T, silentOn string) (addr string, lines <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 100)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(conn)
		fmt.Fprint(conn, "* OK [CAPABILITY IMAP4rev1 IDLE] fake ready\r\n")
		silent := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			select {
			case ch <- strings.TrimSpace(line):
			default:
			}
			fields := strings.Fields(line)
			if silent || len(fields) < 2 {
				continue
			}
			tag, cmd := fields[0], strings.ToUpper(fields[1])
			if cmd == silentOn {
				silent = true
				if cmd == "IDLE" {
					fmt.Fprint(conn, "+ idling\r\n")
				}
				continue
			}
			switch cmd {
			case "SELECT":
				fmt.Fprint(conn, "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* FLAGS (\\Seen)\r\n"+tag+" OK [READ-WRITE] selected\r\n")
			case "STATUS":
				fmt.Fprint(conn, "* STATUS INBOX (MESSAGES 1)\r\n"+tag+" OK done\r\n")
			case "IDLE":
				fmt.Fprint(conn, "+ idling\r\n")
			default:
				fmt.Fprint(conn, tag+" OK done\r\n")
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), ch
}

// A silent upstream costs the client at most CommandTimeout: LOGIN,
// a command after login and the end of an IDLE each get NO [UNAVAILABLE]
// (or BYE) in time, where imapclient alone would wait forever.
func TestUpstreamSilentTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	cases := []struct {
		silentOn string
		steps    []string // commands before the one that waits
		cmd      string
	}{
		{"LOGIN", nil, "a LOGIN u p"},
		{"STATUS", []string{"a LOGIN u p"}, "b STATUS INBOX (MESSAGES)"},
		{"FETCH", []string{"a LOGIN u p", "b SELECT INBOX"}, "c FETCH 1 (FLAGS)"},
	}
	for _, tc := range cases {
		t.Run(tc.silentOn, func(t *testing.T) {
			addr, _ := startSilentUpstream(t, tc.silentOn)
			p := startProxy(t, addr, &fakeViewer{}, &bytes.Buffer{}, func(o *Options) { o.CommandTimeout = timeout })
			conn, r := dialRaw(t, p.Addr().String())
			for _, s := range tc.steps {
				if got := rawCommand(t, conn, r, s); !strings.Contains(got, " OK") {
					t.Fatalf("%s: %q", s, got)
				}
			}
			start := time.Now()
			got := rawCommand(t, conn, r, tc.cmd)
			took := time.Since(start)
			if !strings.Contains(got, " NO [UNAVAILABLE]") {
				t.Fatalf("%s to a silent upstream: %q, want NO [UNAVAILABLE]", tc.cmd, got)
			}
			if took < timeout || took > 10*timeout {
				t.Fatalf("answered after %v, want about %v", took, timeout)
			}
			if tc.silentOn != "LOGIN" {
				if got := rawCommand(t, conn, r, "z NOOP"); !strings.Contains(got, "EOF") && !strings.Contains(got, " NO") {
					t.Fatalf("NOOP after the upstream was dropped: %q", got)
				}
			}
		})
	}
}

// IDLE may wait long, but the keepalive restarts it and an upstream that
// does not answer the DONE is dropped within CommandTimeout.
func TestIdleKeepaliveBoundsSilence(t *testing.T) {
	addr, lines := startSilentUpstream(t, "DONE")
	p := startProxy(t, addr, &fakeViewer{}, &bytes.Buffer{}, func(o *Options) {
		o.CommandTimeout = 300 * time.Millisecond
		o.IdleKeepalive = 200 * time.Millisecond
	})
	conn, r := dialRaw(t, p.Addr().String())
	for _, s := range []string{"a LOGIN u p", "b SELECT INBOX"} {
		if got := rawCommand(t, conn, r, s); !strings.Contains(got, " OK") {
			t.Fatalf("%s: %q", s, got)
		}
	}
	fmt.Fprint(conn, "c IDLE\r\n")
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+") {
		t.Fatalf("IDLE: %q %v", line, err)
	}
	// The keepalive sends DONE upstream; the silent upstream never ends
	// its IDLE, so the proxy gives up and tells the client.
	deadline := time.After(5 * time.Second)
	sawDone := false
	for !sawDone {
		select {
		case l := <-lines:
			sawDone = l == "DONE"
		case <-deadline:
			t.Fatal("no DONE sent upstream by the IDLE keepalive")
		}
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		got = append(got, line)
		if strings.HasPrefix(line, "c ") {
			break
		}
	}
	all := strings.Join(got, "")
	if !strings.Contains(all, "c NO [UNAVAILABLE]") && !strings.Contains(all, "* BYE") {
		t.Fatalf("IDLE on a silent upstream ended with %q, want NO [UNAVAILABLE] or BYE", all)
	}
}

// A client that sends nothing for IdleTimeout is disconnected.
func TestIdleClientLoggedOut(t *testing.T) {
	addr, _ := startSilentUpstream(t, "")
	p := startProxy(t, addr, &fakeViewer{}, &bytes.Buffer{}, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
	conn, r := dialRaw(t, p.Addr().String())
	if got := rawCommand(t, conn, r, "a LOGIN u p"); !strings.Contains(got, " OK") {
		t.Fatalf("LOGIN: %q", got)
	}
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := r.ReadString('\n'); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("idle client still connected after 5 s")
			}
			break
		}
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("disconnected after %v, before the idle timeout", took)
	}
}

// dialRaw connects to the proxy and reads its greeting.
func dialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	return conn, r
}

// The silence bound covers a command's wait only: a client that pauses
// longer than CommandTimeout between commands keeps its upstream, even
// after a command the upstream answered with NO.
func TestPauseBetweenCommandsKeepsUpstream(t *testing.T) {
	const timeout = 200 * time.Millisecond
	addr, _ := startSilentUpstream(t, "")
	p := startProxy(t, addr, &fakeViewer{}, &bytes.Buffer{}, func(o *Options) { o.CommandTimeout = timeout })
	conn, r := dialRaw(t, p.Addr().String())
	for i, cmd := range []string{"a LOGIN u p", "b SELECT INBOX", "c STATUS INBOX (MESSAGES)", "d FETCH 1 (FLAGS)"} {
		if i > 0 {
			time.Sleep(3 * timeout)
		}
		if got := rawCommand(t, conn, r, cmd); !strings.Contains(got, " OK") {
			t.Fatalf("%s after a pause: %q", cmd, got)
		}
	}
}
