package imap

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
)

func selectInbox(t *testing.T, c *imapclient.Client) *imap.SelectData {
	t.Helper()
	d, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fetchOne(t *testing.T, c *imapclient.Client, uid imap.UID, opts *imap.FetchOptions) *imapclient.FetchMessageBuffer {
	t.Helper()
	opts.UID = true
	bufs, err := c.Fetch(imap.UIDSetNum(uid), opts).Collect()
	if err != nil {
		t.Fatalf("UID FETCH %d: %v", uid, err)
	}
	if len(bufs) != 1 {
		t.Fatalf("UID FETCH %d: %d messages", uid, len(bufs))
	}
	return bufs[0]
}

// TestForgedStatusHeaderRemoved: a plain message arriving with a status
// header of the proxy's name loses it, and every size and range the client
// sees agrees with the filtered bytes.
func TestForgedStatusHeaderRemoved(t *testing.T) {
	h := startHarness(t)
	body := strings.Repeat("line of plain text\r\n", 200)
	raw := []byte("From: Mallory <mallory@evil.test>\r\n" + statusHeader + ": decrypted; signature valid;\r\n signer=alice@demo.test\r\n" +
		"To: alice@demo.test\r\nSubject: forged\r\n\r\n" + body)
	uid := h.deliver(t, "INBOX", raw)
	want := h.viewer.FilterHeader(raw[:splitHeader(raw)])
	want = append(want, body...)
	if bytes.Contains(want, []byte(statusHeader)) || len(want) >= len(raw) {
		t.Fatal("test filter did not remove the header")
	}
	c := h.viaProxy(t)
	selectInbox(t, c)

	whole := &imap.FetchItemBodySection{Peek: true}
	hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	fields := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{statusHeader, "Subject"}, Peek: true}
	text := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true}
	m := fetchOne(t, c, uid, &imap.FetchOptions{RFC822Size: true, Flags: true,
		BodySection:       []*imap.FetchItemBodySection{whole, hdr, fields, text},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{}}})
	got := m.FindBodySection(whole)
	if !bytes.Equal(got, want) {
		t.Fatalf("BODY[] =\n%q\nwant\n%q", got, want)
	}
	if m.RFC822Size != int64(len(got)) {
		t.Fatalf("RFC822.SIZE %d != len(BODY[]) %d", m.RFC822Size, len(got))
	}
	if sz, _ := m.FindBinarySectionSize(nil); int(sz) != len(got) {
		t.Fatalf("BINARY.SIZE[] %d != %d", sz, len(got))
	}
	if g := m.FindBodySection(hdr); !bytes.Equal(g, want[:splitHeader(want)]) {
		t.Fatalf("BODY[HEADER] = %q", g)
	}
	if g := m.FindBodySection(fields); string(g) != "Subject: forged\r\n\r\n" {
		t.Fatalf("BODY[HEADER.FIELDS (%s SUBJECT)] = %q", statusHeader, g)
	}
	if g := m.FindBodySection(text); string(g) != body {
		t.Fatalf("BODY[TEXT] differs (%d bytes)", len(g))
	}

	// Every partial range is the same slice of BODY[], across the
	// header/text boundary too.
	n := int64(len(want))
	hl := int64(splitHeader(want))
	for _, r := range [][2]int64{{0, 10}, {0, hl}, {hl - 5, 10}, {hl, 100}, {5, n}, {n - 3, 10}, {n, 10}, {n + 100, 5}, {0, 1 << 30}} {
		sec := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: r[0], Size: r[1]}}
		got := fetchOne(t, c, uid, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{sec}}).FindBodySection(sec)
		lo, hi := min(r[0], n), min(r[0]+r[1], n)
		if !bytes.Equal(got, want[lo:hi]) {
			t.Errorf("BODY[]<%d.%d> = %q, want %q", r[0], r[1], got, want[lo:hi])
		}
		bin := &imap.FetchItemBinarySection{Peek: true, Partial: &imap.SectionPartial{Offset: r[0], Size: r[1]}}
		gotBin := fetchOne(t, c, uid, &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{bin}}).FindBinarySection(bin)
		if !bytes.Equal(gotBin, want[lo:hi]) {
			t.Errorf("BINARY[]<%d.%d> = %q, want %q", r[0], r[1], gotBin, want[lo:hi])
		}
	}

	// Non-PEEK BODY[] sets \Seen upstream and reports it.
	seen := &imap.FetchItemBodySection{}
	m = fetchOne(t, c, uid, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{seen}})
	if !slices.Contains(m.Flags, imap.FlagSeen) {
		t.Fatalf("FETCH BODY[] returned flags %v, want \\Seen", m.Flags)
	}
	up, _ := h.up.Messages(t.Context(), testUser, "INBOX")
	if !slices.Contains(up[0].Flags, imap.FlagSeen) {
		t.Fatalf("upstream flags %v after BODY[]", up[0].Flags)
	}
	// The upstream still holds the forged header: the proxy filters on
	// the way out only.
	if !bytes.Equal(up[0].Raw, raw) {
		t.Fatal("upstream copy changed")
	}
}

// TestPlainPartsStreamThrough: numbered parts, MIME headers and
// BODYSTRUCTURE of a plain multipart are the upstream's.
func TestPlainPartsStreamThrough(t *testing.T) {
	h := startHarness(t)
	raw := innerMessage("plain multipart")
	uid := h.deliver(t, "INBOX", raw)
	c := h.viaProxy(t)
	d := h.direct(t)
	selectInbox(t, c)
	selectInbox(t, d)
	secs := []*imap.FetchItemBodySection{
		{Part: []int{1}, Peek: true},
		{Part: []int{2}, Specifier: imap.PartSpecifierMIME, Peek: true},
		{Part: []int{2}, Peek: true, Partial: &imap.SectionPartial{Offset: 2, Size: 5}},
		{Specifier: imap.PartSpecifierText, Peek: true},
	}
	opts := &imap.FetchOptions{BodySection: secs, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}, Envelope: true,
		BinarySection: []*imap.FetchItemBinarySection{{Part: []int{2}, Peek: true}}}
	got := fetchOne(t, c, uid, opts)
	want := fetchOne(t, d, uid, opts)
	for _, s := range secs {
		if g, w := got.FindBodySection(s), want.FindBodySection(s); !bytes.Equal(g, w) || len(w) == 0 {
			t.Errorf("section %v %s: proxy %q, direct %q", s.Part, s.Specifier, g, w)
		}
	}
	if g := got.FindBinarySection(opts.BinarySection[0]); string(g) != "hello binary" {
		t.Errorf("BINARY[2] = %q", g)
	}
	if !reflect.DeepEqual(got.BodyStructure, want.BodyStructure) || !reflect.DeepEqual(got.Envelope, want.Envelope) {
		t.Errorf("structure/envelope differ:\n%+v\n%+v", got.BodyStructure, want.BodyStructure)
	}
}

// TestViewedMessageConsistent: every item of a message the Viewer
// transforms comes from the view's bytes.
func TestViewedMessageConsistent(t *testing.T) {
	h := startHarness(t)
	uid := h.deliver(t, "INBOX", fakeMessage("secret"))
	view := append([]byte(statusHeader+": decrypted\r\n"), innerMessage("secret")...)
	c := h.viaProxy(t)
	selectInbox(t, c)

	whole := &imap.FetchItemBodySection{Peek: true}
	secs := []*imap.FetchItemBodySection{
		whole,
		{Specifier: imap.PartSpecifierHeader, Peek: true},
		{Specifier: imap.PartSpecifierText, Peek: true},
		{Part: []int{1}, Peek: true},
		{Part: []int{2}, Specifier: imap.PartSpecifierMIME, Peek: true},
		{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true},
		{Peek: true, Partial: &imap.SectionPartial{Offset: 10, Size: 40}},
	}
	bin := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
	m := fetchOne(t, c, uid, &imap.FetchOptions{RFC822Size: true, Envelope: true, BodySection: secs,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true}, BinarySection: []*imap.FetchItemBinarySection{bin},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}}})
	for _, s := range secs {
		want := imapserver.ExtractBodySection(bytes.NewReader(view), s)
		if len(s.Part) == 0 && s.Specifier == imap.PartSpecifierNone {
			want = partial(view, s.Partial)
		}
		if g := m.FindBodySection(s); !bytes.Equal(g, want) || len(want) == 0 {
			t.Errorf("section %v %s %v: %q, want %q", s.Part, s.Specifier, s.Partial, g, want)
		}
	}
	if !bytes.Equal(m.FindBodySection(whole), view) || m.RFC822Size != int64(len(view)) {
		t.Fatalf("BODY[] (%d bytes, RFC822.SIZE %d) is not the view (%d bytes)", len(m.FindBodySection(whole)), m.RFC822Size, len(view))
	}
	if g := m.FindBinarySection(bin); string(g) != "hello binary" {
		t.Errorf("BINARY[2] = %q", g)
	}
	if sz, ok := m.FindBinarySectionSize([]int{2}); !ok || sz != uint32(len("hello binary")) {
		t.Errorf("BINARY.SIZE[2] = %d", sz)
	}
	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "mixed" || len(mp.Children) != 2 {
		t.Fatalf("BODYSTRUCTURE = %#v, want the view's multipart/mixed", m.BodyStructure)
	}
	if m.Envelope == nil || m.Envelope.Subject != "secret" || len(m.Envelope.From) != 1 || m.Envelope.From[0].Host != "demo.test" {
		t.Fatalf("ENVELOPE = %+v", m.Envelope)
	}
	if n := h.viewer.views.Load(); n != 1 {
		t.Fatalf("viewed %d times, want 1", n)
	}
	// A second fetch is served from the viewer's cache.
	fetchOne(t, c, uid, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{whole}})
	if n := h.viewer.views.Load(); n != 1 {
		t.Fatalf("viewed %d times after a cached fetch, want 1", n)
	}
	// Non-PEEK BODY[] of a viewed message sets \Seen upstream.
	m = fetchOne(t, c, uid, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}})
	if !slices.Contains(m.Flags, imap.FlagSeen) {
		t.Fatalf("flags after BODY[] = %v", m.Flags)
	}
	// The upstream keeps the original.
	up, _ := h.up.Messages(t.Context(), testUser, "INBOX")
	if !bytes.Equal(up[0].Raw, fakeMessage("secret")) {
		t.Fatal("upstream copy changed")
	}
}

// TestLockedKeyRefusesFetch: a message that needs a locked key is never
// answered with a stand-in; the command ends NO [UNAVAILABLE] after an
// untagged [ALERT] naming the unlock URL, and plain messages of the same
// FETCH are still delivered.
func TestLockedKeyRefusesFetch(t *testing.T) {
	h := startHarness(t)
	h.deliver(t, "INBOX", plainMessage("plain one", "hello\r\n"))
	h.deliver(t, "INBOX", fakeMessage("locked one"))
	h.viewer.locked.Store(true)

	conn, err := net.Dial("tcp", h.proxy.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	send := func(cmd string) []string {
		t.Helper()
		fmt.Fprintf(conn, "%s\r\n", cmd)
		tag := strings.Fields(cmd)[0]
		var lines []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v after %q", cmd, err, lines)
			}
			lines = append(lines, line)
			if strings.HasPrefix(line, tag+" ") {
				return lines
			}
		}
	}
	r.ReadString('\n') // greeting
	send("a LOGIN " + testUser + " " + testPass)
	send("b SELECT INBOX")
	lines := send("c FETCH 1:2 (UID BODY.PEEK[])")
	all := strings.Join(lines, "")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "c NO [UNAVAILABLE]") || !strings.Contains(last, "https://proxy.test/unlock?email="+testUser) {
		t.Fatalf("tagged reply %q", last)
	}
	if !strings.Contains(all, "* OK [ALERT]") || !strings.Contains(all, "unlock?email=") {
		t.Fatalf("no ALERT with the unlock URL:\n%s", all)
	}
	if !strings.Contains(all, "* 1 FETCH") || !strings.Contains(all, "Subject: plain one") {
		t.Fatalf("plain message missing:\n%s", all)
	}
	if strings.Contains(all, "* 2 FETCH") {
		t.Fatalf("locked message answered:\n%s", all)
	}
	// Once unlocked the same FETCH succeeds.
	h.viewer.locked.Store(false)
	lines = send("d FETCH 2 (BODY.PEEK[])")
	if !strings.HasPrefix(lines[len(lines)-1], "d OK") || !strings.Contains(strings.Join(lines, ""), "secret text of locked one") {
		t.Fatalf("after unlock: %q", lines)
	}
}
