package imap

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"smimeproxy/crypto/smime"
	"smimeproxy/internal/mailtest"
)

// One FETCH of many S/MIME messages, views running beside one another:
// every message comes back once, with its own plaintext (not a
// neighbour's), in the order the upstream sent them; a large message
// (viewed alone) and a message that cannot be opened (answered with an
// error status) sit among them. Without BODY.PEEK every answered message
// is marked \Seen, in one STORE after the upstream FETCH (a STORE while
// it streams would deadlock). With the key locked, the messages are left
// out and none is marked.
func TestViewManyInOneFetch(t *testing.T) {
	w := newSVWorld(t)
	v := w.viewer(t, 0)
	up, p := svProxy(t, v)
	const n = 12
	plain := func(i int, body string) []byte {
		return []byte(fmt.Sprintf("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: m%d\r\n"+
			"Content-Type: text/plain; charset=us-ascii\r\n\r\nsecret number %d\r\n%s", i, i, body))
	}
	want := map[imap.UID]string{}
	var broken imap.UID
	for i := range n {
		body := ""
		if i == 5 {
			body = strings.Repeat("a large message, viewed alone while nothing else runs\r\n", 2*parallelViewMax/55)
		}
		raw := svEncrypt(t, svSign(t, w.alice, plain(i, body), false), smime.AES256CBC, w.bob)
		if i == 8 {
			raw = append(raw[:len(raw)*2/3:len(raw)*2/3], "\r\n"...) // truncated CMS
		}
		data, err := up.Append(svLogin, "INBOX", raw, &imap.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if i == 8 {
			broken = data.UID
		}
		want[data.UID] = fmt.Sprintf("secret number %d\r\n", i)
	}
	if broken == 0 {
		t.Fatal("no broken message")
	}

	c, err := mailtest.DialIMAP(t.Context(), mailtest.IMAPLogin{Addr: p.Addr().String(), User: svLogin, Password: svPass})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sec := &imap.FetchItemBodySection{}
	cmd := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true,
		BodySection: []*imap.FetchItemBodySection{sec}})
	var got []imap.UID
	for {
		md := cmd.Next()
		if md == nil {
			break
		}
		m, err := md.Collect()
		if err != nil {
			t.Fatal(err)
		}
		body := m.FindBodySection(sec)
		if body == nil {
			continue
		}
		got = append(got, m.UID)
		secret, ok := want[m.UID]
		if !ok {
			t.Errorf("UID %d unknown", m.UID)
			continue
		}
		if m.UID == broken {
			if bytes.Contains(body, []byte(StatusHeader+": decrypted")) || !bytes.Contains(body, []byte(StatusHeader+": ")) {
				t.Errorf("unreadable UID %d: no failure status:\n%.300s", m.UID, body)
			}
			continue
		}
		if !slices.Contains(m.Flags, imap.FlagSeen) {
			t.Errorf("UID %d answered without \\Seen", m.UID)
		}
		if !bytes.Contains(body, []byte(secret)) || bytes.Count(body, []byte("secret number")) != 1 {
			t.Errorf("UID %d: body does not hold %q alone:\n%.300s", m.UID, secret, body)
		}
		if !bytes.Contains(body, []byte(StatusHeader+": decrypted; signature valid")) {
			t.Errorf("UID %d: no valid status", m.UID)
		}
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages answered, want %d", len(got), len(want))
	}
	if !slices.IsSorted(got) {
		t.Errorf("answers out of upstream order: %v", got)
	}
	seenFlags := func() map[imap.UID]bool {
		t.Helper()
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		out := map[imap.UID]bool{}
		for _, m := range msgs {
			out[m.UID] = slices.Contains(m.Flags, imap.FlagSeen)
		}
		return out
	}
	for uid, seen := range seenFlags() {
		if !seen {
			t.Errorf("UID %d not \\Seen upstream", uid)
		}
	}

	// Locked: nothing answered, nothing marked.
	if err := c.Store(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	w.keys.setLocked(true)
	v.Wipe(svLogin)
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Fatalf("locked: FETCH gave %v (%d messages), want NO [UNAVAILABLE]", err, len(msgs))
	}
	for uid, seen := range seenFlags() {
		if seen {
			t.Errorf("locked: UID %d marked \\Seen", uid)
		}
	}
}
