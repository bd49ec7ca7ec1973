package smtp

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"smimeproxy/crypto/smime"
	"smimeproxy/policy"
)

// hideExtension relays SMTP between the proxy and upstream, dropping the
// EHLO keyword ext from the upstream's replies, and records the commands
// the proxy sends. It stands in for a submission server without ext.
type hideExtension struct {
	ext    string
	addr   string
	mu     sync.Mutex
	cmds   []string // command lines seen (not message data)
	hidden int      // extension lines dropped
}

func startHideExtension(t *testing.T, upstream, ext string) *hideExtension {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hideExtension{ext: ext, addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); h.down(c, u) }()
			go func() { defer wg.Done(); h.up(c, u) }()
		}
	}()
	return h
}

// down copies upstream replies to the proxy without the ext keyword line.
func (h *hideExtension) down(c, u net.Conn) {
	defer c.Close()
	r := bufio.NewReader(u)
	for {
		line, err := r.ReadString('\n')
		if kw := strings.TrimSpace(line); len(kw) > 4 && strings.EqualFold(strings.Fields(kw[4:] + " x")[0], h.ext) && strings.HasPrefix(kw, "250") {
			h.mu.Lock()
			h.hidden++
			h.mu.Unlock()
			continue
		}
		if _, werr := io.WriteString(c, line); werr != nil || err != nil {
			return
		}
	}
}

// up copies the proxy's commands and data to the upstream, recording
// command lines (everything outside DATA and BDAT chunks).
func (h *hideExtension) up(c, u net.Conn) {
	defer u.Close()
	r := bufio.NewReader(c)
	inData := false
	for {
		line, err := r.ReadString('\n')
		if !inData && line != "" {
			h.mu.Lock()
			h.cmds = append(h.cmds, strings.TrimRight(line, "\r\n"))
			h.mu.Unlock()
			inData = strings.EqualFold(strings.TrimSpace(line), "DATA")
		} else if line == ".\r\n" {
			inData = false
		}
		if _, werr := io.WriteString(u, line); werr != nil || err != nil {
			return
		}
		// A BDAT chunk follows its command line as it is.
		if f := strings.Fields(strings.ToUpper(line)); !inData && len(f) >= 2 && f[0] == "BDAT" {
			n, perr := strconv.ParseInt(f[1], 10, 64)
			if perr != nil {
				return
			}
			if _, err := io.CopyN(u, r, n); err != nil {
				return
			}
		}
	}
}

func (h *hideExtension) commands() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.cmds...)
}

// TestEightBitToSevenBitUpstream: behind an upstream that does not offer
// 8BITMIME, a client's BODY=8BITMIME message still goes through, because
// every copy the proxy sends is 7-bit: the encrypted copy is base64, and
// the signed-only copy has its 8-bit parts re-encoded by canonicalisation
// (RFC 8551 section 3.1.1). The proxy never declares BODY=8BITMIME
// upstream. Unsigned plain copies (sign = "never") are converted the same
// way.
func TestEightBitToSevenBitUpstream(t *testing.T) {
	for _, sign := range []policy.Mode{policy.Always, policy.Never} {
		t.Run(string(sign), func(t *testing.T) { eightBitThrough(t, sign) })
	}
}

func eightBitThrough(t *testing.T, sign policy.Mode) {
	e := newEnv(t, envOptions{})
	relay := startHideExtension(t, e.up.SMTPAddr(), "8BITMIME")
	e.upAddr = relay.addr
	e.addr = e.startProxy(policy.Policy{Sign: sign, Encrypt: policy.WhenPossible}, 0)

	text := strings.Repeat("Naïve café, Grüße aus Köln — ½ € ✓\r\n", 40)
	msg := "From: " + alice + "\r\nTo: " + bob + ", " + dave + "\r\nSubject: eight bit\r\nMessage-ID: <8bit@example.test>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text
	r := e.raw(alice)
	if code, m := r.dataWith("BODY=8BITMIME", alice, []string{bob, dave}, []byte(msg+".\r\n")); code != 250 {
		t.Fatalf("8-bit message: %d %s", code, m)
	}

	relay.mu.Lock()
	hidden := relay.hidden
	relay.mu.Unlock()
	if hidden == 0 {
		t.Fatal("the relay never saw 8BITMIME offered, so hid nothing")
	}
	for _, cmd := range relay.commands() {
		if strings.HasPrefix(strings.ToUpper(cmd), "EHLO") {
			continue
		}
		if strings.Contains(strings.ToUpper(cmd), "8BITMIME") {
			t.Errorf("proxy declared 8BITMIME to an upstream without it: %q", cmd)
		}
	}
	envs := e.up.Envelopes()
	for _, who := range []string{bob, dave} {
		raw := copyFor(t, envs, who).Data
		if i := bytes.IndexFunc(raw, func(r rune) bool { return r >= 0x80 || r == 0 }); i >= 0 {
			t.Errorf("copy for %s not 7-bit at byte %d: %q", who, i, raw[max(0, i-40):min(len(raw), i+40)])
		}
		o := e.open(raw, who)
		if o.signed != (sign == policy.Always) || (o.signed && !o.valid) {
			t.Errorf("copy for %s: signed=%v valid=%v under sign=%s", who, o.signed, o.valid, sign)
		}
		if wantEnc := who == bob; o.encrypted != wantEnc {
			t.Errorf("copy for %s: encrypted=%v, want %v", who, o.encrypted, wantEnc)
		}
		// Inside CMS 8-bit is fine; in the clear it must not be.
		if !o.encrypted && bytes.IndexFunc(o.entity, func(r rune) bool { return r >= 0x80 }) >= 0 {
			t.Errorf("entity for %s is not 7-bit", who)
		}
		got, err := decodeText(o.entity)
		if err != nil {
			t.Fatalf("copy for %s: %v", who, err)
		}
		if got != strings.ReplaceAll(text, "\r\n", "\n") && got != text {
			t.Errorf("copy for %s: text changed:\n%q", who, got[:min(len(got), 200)])
		}
	}
}

// decodeText returns the body of a single-part entity without its
// transfer encoding.
func decodeText(entity []byte) (string, error) {
	ent, err := smime.ParseEntity(entity)
	if err != nil {
		return "", err
	}
	b, err := ent.Body()
	return string(b), err
}
