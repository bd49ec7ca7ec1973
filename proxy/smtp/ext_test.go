package smtp

import (
	"strconv"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"smimeproxy/internal/mailtest"
)

// TestExtensionsFollowUpstream: SIZE is lowered so the encrypted copy fits
// the upstream's limit, SMTPUTF8 is offered because the upstream offers it,
// and a message over the advertised SIZE is refused with 552 5.3.4 at MAIL
// when declared and at DATA when not.
func TestExtensionsFollowUpstream(t *testing.T) {
	const upstreamMax = 1 << 20
	e := newEnv(t, envOptions{upstream: mailtest.UpstreamOptions{MaxMessageBytes: upstreamMax}})
	c, err := gosmtp.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	want := (upstreamMax - 64<<10) * 3 / 4
	if ok, v := c.Extension("SIZE"); !ok || v != strconv.Itoa(want) {
		t.Errorf("SIZE %q, want %d", v, want)
	}
	if ok, _ := c.Extension("SMTPUTF8"); !ok {
		t.Errorf("SMTPUTF8 not offered although the upstream offers it")
	}
	for _, ext := range []string{"8BITMIME", "PIPELINING", "ENHANCEDSTATUSCODES", "AUTH"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("%s not offered", ext)
		}
	}

	r := e.raw(alice)
	r.cmd(552, "MAIL FROM:<"+alice+"> SIZE="+strconv.Itoa(want+1))
	line := "0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
	big := hdr(alice) + "\r\n" + strings.Repeat(line, want/len(line)+1)
	if code, msg := r.data(alice, []string{bob}, []byte(big+".\r\n")); code != 552 {
		t.Errorf("message over SIZE: %d %s", code, msg)
	}
	if code, msg := r.data(alice, []string{bob}, []byte(hdr(alice)+"\r\nsmall"+goodTail)); code != 250 {
		t.Errorf("small message after the refusal: %d %s", code, msg)
	}
}
