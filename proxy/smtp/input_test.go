package smtp

import (
	"fmt"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

const goodTail = "\r\n.\r\n"

func hdr(from string) string {
	return "From: " + from + "\r\nTo: " + bob + "\r\nSubject: input\r\nMessage-ID: <in@example.test>\r\n"
}

// TestBadInput: each malformed message gets a clear SMTP error, nothing
// reaches the upstream, and the same session then sends a good message.
func TestBadInput(t *testing.T) {
	e := newEnv(t, envOptions{maxBytes: 64 << 10})
	good := []byte(hdr(alice) + "\r\ngood body" + goodTail)
	cases := []struct {
		name     string
		params   string // MAIL FROM parameters
		body     string
		code     int
		enhanced string
		text     string
	}{
		{"malformed header", "", hdr(alice) + "This line is no header field\r\n\r\nbody" + goodTail, 554, "5.6.0", "header is malformed"},
		{"no From", "", "To: " + bob + "\r\nSubject: x\r\n\r\nbody" + goodTail, 554, "5.6.0", "no From"},
		{"unparsable From", "", "From: <<<\r\nTo: " + bob + "\r\n\r\nbody" + goodTail, 554, "5.6.0", "no From"},
		{"malformed To", "", "From: " + alice + "\r\nTo: bob@@@\r\n\r\nbody" + goodTail, 554, "5.6.0", "To header field is malformed"},
		{"bare LF", "", hdr(alice) + "\r\nline one\nline two" + goodTail, 554, "5.6.0", "bare LF"},
		{"bare CR", "", hdr(alice) + "\r\nline one\rline two" + goodTail, 554, "5.6.0", "bare LF or CR"},
		{"NUL byte", "", hdr(alice) + "\r\nnul \x00 here" + goodTail, 554, "5.6.0", "NUL"},
		{"8-bit in a 7-bit session", "", hdr(alice) + "\r\nna\xc3\xafve" + goodTail, 554, "5.6.0", "BODY=8BITMIME"},
		{"line too long", "", hdr(alice) + "\r\n" + strings.Repeat("x", 3000) + goodTail, 554, "5.6.0", "line longer"},
		{"over the size limit", "", hdr(alice) + "\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 1100) + ".\r\n", 552, "5.3.4", "too big"},
		{"From of someone else", "", hdr(bob) + "\r\nbody" + goodTail, 554, "5.7.1", "only mail From " + alice},
	}
	r := e.raw(alice)
	sent := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := r.dataWith(tc.params, alice, []string{bob}, []byte(tc.body))
			if code != tc.code || !strings.HasPrefix(msg, tc.enhanced+" ") || !strings.Contains(msg, tc.text) {
				t.Errorf("got %d %q, want %d %s …%s…", code, msg, tc.code, tc.enhanced, tc.text)
			}
			if n := len(e.up.Transactions()); n != sent {
				t.Errorf("refused message reached the upstream (%d transactions, want %d)", n, sent)
			}
			// RSET semantics: the session goes on.
			if code, msg := r.data(alice, []string{bob}, good); code != 250 {
				t.Fatalf("good message after %s: %d %s", tc.name, code, msg)
			}
			sent++
		})
	}
	// 8-bit declared with BODY=8BITMIME is fine: the signed copy carries it
	// re-encoded, 7-bit.
	if code, msg := r.dataWith("BODY=8BITMIME", alice, []string{bob}, []byte(hdr(alice)+"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nna\xc3\xafve"+goodTail)); code != 250 {
		t.Fatalf("8BITMIME message: %d %s", code, msg)
	}
	envs := e.up.Envelopes()
	last := envs[len(envs)-1]
	o := e.open(last.Data, bob)
	if !o.valid || !strings.Contains(string(o.entity), "=C3=AF") && !strings.Contains(string(o.entity), "\xc3\xaf") {
		t.Errorf("8-bit message: valid=%v entity %q", o.valid, o.entity)
	}
}

// TestSMTPSmuggling: an end-of-data look-alike inside DATA ("\n.\n" and
// friends) must neither end the message nor let the text after it become
// commands, here or at any server further on.
func TestSMTPSmuggling(t *testing.T) {
	e := newEnv(t, envOptions{})
	const victim = "victim@evil.test"
	smuggled := "MAIL FROM:<" + alice + ">\r\nRCPT TO:<" + victim + ">\r\nDATA\r\nFrom: " + alice + "\r\nTo: " + victim + "\r\n\r\nsmuggled\r\n"
	// "\r\n.\r" followed by text is a stuffed dot: the dot goes and the
	// lone CR after it stays, so it is refused like the others.
	for _, end := range []string{"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r\n.\r"} {
		t.Run(strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(end), func(t *testing.T) {
			r := e.raw(alice)
			before := len(e.up.Transactions())
			body := hdr(alice) + "\r\nfirst part" + end + smuggled + goodTail
			code, msg := r.data(alice, []string{bob}, []byte(body))
			if code != 554 {
				t.Errorf("smuggling attempt: %d %s, want 554", code, msg)
			}
			// The next reply belongs to the next command: nothing was
			// read as commands in between.
			r.cmd(250, "NOOP")
			if code, msg := r.data(alice, []string{bob}, []byte(hdr(alice)+"\r\nafter"+goodTail)); code != 250 {
				t.Fatalf("good message after the attempt: %d %s", code, msg)
			}
			txs := e.up.Transactions()[before:]
			if len(txs) != 1 {
				t.Fatalf("%d transactions reached the upstream, want 1", len(txs))
			}
			for _, tx := range txs {
				for _, rc := range tx.Rcpts {
					if strings.EqualFold(rc, victim) {
						t.Fatalf("smuggled recipient reached the upstream")
					}
				}
			}
		})
	}
}

// TestBDAT: a message sent in CHUNKING (RFC 3030) BDAT chunks goes
// through the same checks and crypto as one sent with DATA.
func TestBDAT(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.raw(alice)
	msg := hdr(alice) + "\r\nbody in two chunks\r\n"
	r.cmd(250, "MAIL FROM:<"+alice+">")
	r.cmd(250, "RCPT TO:<"+bob+">")
	half := len(msg) / 2
	r.conn.Write([]byte(fmt.Sprintf("BDAT %d\r\n%s", half, msg[:half])))
	r.expect(250)
	r.conn.Write([]byte(fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg)-half, msg[half:])))
	if code, text, err := r.tp.ReadResponse(250); err != nil {
		t.Fatalf("BDAT LAST: %d %s %v", code, text, err)
	}
	envs := e.up.Envelopes()
	if len(envs) != 1 {
		t.Fatalf("%d envelopes upstream", len(envs))
	}
	if o := e.open(envs[0].Data, bob); !o.encrypted || !o.valid || !strings.Contains(string(o.entity), "body in two chunks") {
		t.Errorf("BDAT message: encrypted=%v valid=%v", o.encrypted, o.valid)
	}
	// A bare LF is refused in chunks too.
	bad := hdr(alice) + "\r\nbare\nLF\r\n"
	r.cmd(250, "MAIL FROM:<"+alice+">")
	r.cmd(250, "RCPT TO:<"+bob+">")
	r.conn.Write([]byte(fmt.Sprintf("BDAT %d LAST\r\n%s", len(bad), bad)))
	if code, _, _ := r.tp.ReadResponse(250); code != 554 {
		t.Errorf("bare LF in BDAT: %d, want 554", code)
	}
}

// TestReadBufferReuseNoLeftovers: read buffers are reused between messages
// (and sessions); a short message after a long one carries nothing of the
// long one.
func TestReadBufferReuseNoLeftovers(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(alice)
	long := strings.Repeat("LEFTOVER-FROM-THE-LONG-MESSAGE 0123456789\r\n", 2000)
	if err := send(c, alice, []string{dave}, compose(alice, dave, "", "", "long", long)); err != nil {
		t.Fatal(err)
	}
	for i, cl := range []*gosmtp.Client{c, e.client(alice)} {
		before := len(e.up.Envelopes())
		if err := send(cl, alice, []string{dave}, compose(alice, dave, "", "", "short", "short body")); err != nil {
			t.Fatal(err)
		}
		o := e.open(copyFor(t, e.up.Envelopes()[before:], dave).Data, dave)
		if !o.valid || !strings.Contains(string(o.entity), "short body") {
			t.Fatalf("short message %d: valid=%v entity %.200q", i, o.valid, o.entity)
		}
		if strings.Contains(string(e.up.Envelopes()[before].Data), "LEFTOVER") {
			t.Fatalf("short message %d carries text of the long one", i)
		}
	}
}
