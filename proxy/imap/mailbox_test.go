package imap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
)

// updates records the unilateral data a client receives.
type updates struct {
	mu       sync.Mutex
	exists   []uint32
	expunged []uint32
	flags    map[uint32][]imap.Flag
	ch       chan struct{}
}

func (u *updates) handler() *imapclient.UnilateralDataHandler {
	u.ch = make(chan struct{}, 100)
	u.flags = map[uint32][]imap.Flag{}
	note := func() {
		select {
		case u.ch <- struct{}{}:
		default:
		}
	}
	return &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { u.mu.Lock(); u.expunged = append(u.expunged, seq); u.mu.Unlock(); note() },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				u.mu.Lock()
				u.exists = append(u.exists, *d.NumMessages)
				u.mu.Unlock()
				note()
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			buf, err := msg.Collect()
			if err == nil && buf.Flags != nil {
				u.mu.Lock()
				u.flags[buf.SeqNum] = buf.Flags
				u.mu.Unlock()
				note()
			}
		},
	}
}

func (u *updates) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		u.mu.Lock()
		ok := cond()
		u.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-u.ch:
		case <-deadline:
			t.Fatalf("no %s within 10 s", what)
		}
	}
}

// TestIdleForwardsUpstreamUpdates: while the client IDLEs through the
// proxy, another session's APPEND, flag change and EXPUNGE upstream reach
// it as EXISTS, FETCH (FLAGS) and EXPUNGE.
func TestIdleForwardsUpstreamUpdates(t *testing.T) {
	h := startHarness(t)
	h.deliver(t, "INBOX", plainMessage("first", "1\r\n"))
	u := &updates{}
	c, err := imapclient.DialInsecure(h.proxy.Addr().String(), &imapclient.Options{UnilateralDataHandler: u.handler()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatal(err)
	}
	selectInbox(t, c)
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	other := h.direct(t)
	selectInbox(t, other)
	raw := plainMessage("second", "2\r\n")
	ac := other.Append("INBOX", int64(len(raw)), nil)
	ac.Write(raw)
	ac.Close()
	if _, err := ac.Wait(); err != nil {
		t.Fatal(err)
	}
	u.waitFor(t, "EXISTS 2", func() bool { return slices.Contains(u.exists, 2) })
	if err := other.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	u.waitFor(t, "FETCH 1 (FLAGS (\\Flagged))", func() bool { return slices.Contains(u.flags[1], imap.FlagFlagged) })
	if err := other.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := other.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	u.waitFor(t, "EXPUNGE 1", func() bool { return slices.Contains(u.expunged, 1) })
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE ended with %v", err)
	}
	// After IDLE the session goes on, and NOOP polls the upstream.
	h.deliver(t, "INBOX", plainMessage("third", "3\r\n"))
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	u.waitFor(t, "EXISTS 2 after NOOP", func() bool { return len(u.exists) >= 2 && u.exists[len(u.exists)-1] == 2 })
	if n := c.Mailbox().NumMessages; n != 2 {
		t.Fatalf("client counts %d messages, want 2", n)
	}
}

// TestSync1000Messages: a mailbox of 1,000 mixed messages syncs through
// the proxy and matches the upstream message by message.
func TestSync1000Messages(t *testing.T) {
	h := startHarness(t)
	for i := range 1000 {
		var raw []byte
		if i%4 == 3 {
			raw = fakeMessage(fmt.Sprintf("enc %d", i))
		} else {
			raw = plainMessage(fmt.Sprintf("plain %d", i), fmt.Sprintf("body %d\r\n", i))
		}
		var flags []imap.Flag
		if i%3 == 0 {
			flags = []imap.Flag{imap.FlagSeen}
		}
		h.deliver(t, "INBOX", raw, flags...)
	}
	viaProxy, err := mailtest.FetchMessages(t.Context(), mailtest.IMAPLogin{Addr: h.proxy.Addr().String(), User: testUser, Password: testPass}, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	direct, err := h.up.Messages(t.Context(), testUser, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	// Responses come in any order (IMAP allows it; the proxy answers
	// plain messages before those it views).
	slices.SortFunc(viaProxy, func(a, b mailtest.Message) int { return int(a.UID) - int(b.UID) })
	if len(viaProxy) != 1000 || len(direct) != 1000 {
		t.Fatalf("%d messages through the proxy, %d upstream", len(viaProxy), len(direct))
	}
	for i := range direct {
		p, d := viaProxy[i], direct[i]
		if p.UID != d.UID || !reflect.DeepEqual(p.Flags, d.Flags) || !p.InternalDate.Equal(d.InternalDate) {
			t.Fatalf("message %d: proxy UID %d flags %v, upstream UID %d flags %v", i, p.UID, p.Flags, d.UID, d.Flags)
		}
		want := d.Raw
		if i%4 == 3 {
			want = append([]byte(statusHeader+": decrypted\r\n"), innerMessage(fmt.Sprintf("enc %d", i))...)
		}
		if !bytes.Equal(p.Raw, want) {
			t.Fatalf("message %d: body differs", i)
		}
	}
	if n := h.viewer.views.Load(); n != 250 {
		t.Fatalf("%d views, want 250", n)
	}
}

// TestAppendToSentTransformed: APPENDs to Sent and Drafts pass through
// AppendTransform, others do not; a locked key refuses the APPEND.
func TestAppendToSentTransformed(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	locked := false
	h := startHarness(t, func(o *Options) {
		o.AppendTransform = func(_ context.Context, user, mailbox string, raw []byte) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			if locked {
				return nil, fmt.Errorf("encrypt: %w", identity.ErrLocked)
			}
			seen = append(seen, user+" "+mailbox)
			return append([]byte("X-Encrypted: yes\r\n"), raw...), nil
		}
	})
	c := h.viaProxy(t)
	appendMsg := func(mailbox string) error {
		raw := plainMessage("to "+mailbox, "draft\r\n")
		cmd := c.Append(mailbox, int64(len(raw)), nil)
		cmd.Write(raw)
		cmd.Close()
		_, err := cmd.Wait()
		return err
	}
	for _, mb := range []string{"Sent", "Drafts", "INBOX"} {
		if err := appendMsg(mb); err != nil {
			t.Fatalf("APPEND %s: %v", mb, err)
		}
	}
	if !reflect.DeepEqual(seen, []string{testUser + " Sent", testUser + " Drafts"}) {
		t.Fatalf("transform saw %v", seen)
	}
	for mb, want := range map[string]bool{"Sent": true, "Drafts": true, "INBOX": false} {
		msgs, err := h.up.Messages(t.Context(), testUser, mb)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("%s: %d messages, %v", mb, len(msgs), err)
		}
		if got := bytes.HasPrefix(msgs[0].Raw, []byte("X-Encrypted: yes\r\n")); got != want {
			t.Fatalf("%s stored transformed=%v, want %v", mb, got, want)
		}
	}
	mu.Lock()
	locked = true
	mu.Unlock()
	err := appendMsg("Sent")
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeUnavailable {
		t.Fatalf("APPEND with locked key: %v, want NO [UNAVAILABLE]", err)
	}
	if msgs, _ := h.up.Messages(t.Context(), testUser, "Sent"); len(msgs) != 1 {
		t.Fatalf("Sent holds %d messages after a refused APPEND", len(msgs))
	}
}
