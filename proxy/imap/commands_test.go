package imap

import (
	"bytes"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"smimeproxy/internal/mailtest"
)

func TestLoginCheckedByUpstream(t *testing.T) {
	h := startHarness(t)
	c := h.viaProxy(t)
	if c.State() != imap.ConnStateAuthenticated {
		t.Fatalf("state after LOGIN = %v", c.State())
	}

	bad, err := imapclient.DialInsecure(h.proxy.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	err = bad.Login(testUser, "wrong").Wait()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("wrong password: %v, want NO [AUTHENTICATIONFAILED]", err)
	}
	if strings.Contains(imapErr.Text, "wrong") {
		t.Fatalf("reply echoes the password: %q", imapErr.Text)
	}

	// AUTHENTICATE PLAIN reaches the same check.
	ac, err := imapclient.DialInsecure(h.proxy.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if err := ac.Authenticate(sasl.NewPlainClient("", testUser, testPass)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	if err := ac.Authenticate(sasl.NewPlainClient("", testUser, "nope")); err == nil {
		t.Fatal("second AUTHENTICATE accepted")
	}
	ac2, _ := imapclient.DialInsecure(h.proxy.Addr().String(), nil)
	defer ac2.Close()
	if err := ac2.Authenticate(sasl.NewPlainClient("", testUser, "nope")); err == nil {
		t.Fatal("AUTHENTICATE PLAIN with a wrong password accepted")
	}
}

func TestUpstreamDownAtLogin(t *testing.T) {
	logs := &bytes.Buffer{}
	p := startProxy(t, "127.0.0.1:1", PassThrough{}, logs)
	c, err := imapclient.DialInsecure(p.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login(testUser, testPass).Wait()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeUnavailable {
		t.Fatalf("login with upstream down: %v, want NO [UNAVAILABLE]", err)
	}
	if strings.Contains(imapErr.Text, "127.0.0.1") || strings.Contains(imapErr.Text, "refused") {
		t.Fatalf("reply leaks internal error: %q", imapErr.Text)
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Fatalf("cause not logged: %s", logs)
	}
}

// TestMailboxCommands runs every mailbox-level command through the proxy
// and checks the upstream's state directly.
func TestMailboxCommands(t *testing.T) {
	h := startHarness(t)
	c := h.viaProxy(t)
	d := h.direct(t)

	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []imap.Cap{imap.CapIMAP4rev1, imap.CapIdle, imap.CapMove, imap.CapUIDPlus, imap.CapNamespace, imap.CapUnselect} {
		if !caps.Has(want) {
			t.Errorf("CAPABILITY lacks %s: %v", want, caps)
		}
	}
	if _, err := c.Enable(imap.CapUTF8Accept).Wait(); err != nil {
		t.Errorf("ENABLE: %v", err)
	}
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 {
		t.Errorf("NAMESPACE = %+v, %v", ns, err)
	}
	if err := c.Create("Projects", nil).Wait(); err != nil {
		t.Fatalf("CREATE: %v", err)
	}
	if err := c.Rename("Projects", "Archive", nil).Wait(); err != nil {
		t.Fatalf("RENAME: %v", err)
	}
	if err := c.Subscribe("Archive").Wait(); err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	listNames := func(c *imapclient.Client, opts *imap.ListOptions) []string {
		t.Helper()
		l, err := c.List("", "*", opts).Collect()
		if err != nil {
			t.Fatalf("LIST: %v", err)
		}
		var names []string
		for _, d := range l {
			names = append(names, d.Mailbox)
		}
		slices.Sort(names)
		return names
	}
	viaProxy, direct := listNames(c, nil), listNames(d, nil)
	if !reflect.DeepEqual(viaProxy, direct) || !slices.Contains(viaProxy, "Archive") {
		t.Fatalf("LIST through proxy %v, direct %v", viaProxy, direct)
	}
	subOpts := &imap.ListOptions{SelectSubscribed: true}
	if subs := listNames(c, subOpts); !slices.Contains(subs, "Archive") || !reflect.DeepEqual(subs, listNames(d, subOpts)) {
		t.Fatalf("LSUB through proxy %v", subs)
	}
	if err := c.Unsubscribe("Archive").Wait(); err != nil {
		t.Fatalf("UNSUBSCRIBE: %v", err)
	}
	if subs := listNames(d, subOpts); slices.Contains(subs, "Archive") {
		t.Fatalf("still subscribed upstream: %v", subs)
	}
	h.deliver(t, "Archive", plainMessage("one", "x\r\n"))
	st, err := c.Status("Archive", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	std, _ := d.Status("Archive", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true}).Wait()
	if *st.NumMessages != 1 || st.UIDValidity != std.UIDValidity || st.UIDNext != std.UIDNext {
		t.Fatalf("STATUS through proxy %+v, direct %+v", st, std)
	}
	if err := c.Delete("Archive").Wait(); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	if names := listNames(d, nil); slices.Contains(names, "Archive") {
		t.Fatalf("DELETE did not reach the upstream: %v", names)
	}
	// An upstream NO passes on with its response code.
	_, err = c.Select("NoSuchBox", nil).Wait()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo {
		t.Fatalf("SELECT of a missing mailbox: %v", err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP: %v", err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("LOGOUT: %v", err)
	}
}

// TestMessageCommandsMatchDirect checks that UIDs, UIDVALIDITY, flags and
// message commands through the proxy give what the upstream gives.
func TestMessageCommandsMatchDirect(t *testing.T) {
	h := startHarness(t)
	for i, s := range []string{"alpha", "beta", "gamma", "delta"} {
		flags := []imap.Flag{}
		if i%2 == 0 {
			flags = append(flags, imap.FlagFlagged)
		}
		h.deliver(t, "INBOX", plainMessage(s, "body "+s+"\r\n"), flags...)
	}
	c := h.viaProxy(t)
	d := h.direct(t)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	seld, err := d.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.UIDValidity != seld.UIDValidity || sel.NumMessages != 4 || sel.UIDNext != seld.UIDNext {
		t.Fatalf("SELECT through proxy %+v, direct %+v", sel, seld)
	}
	all := imap.SeqSetNum()
	all.AddRange(1, 0)
	fetchOpts := &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{{Peek: true}}}
	got, err := c.Fetch(all, fetchOpts).Collect()
	if err != nil {
		t.Fatal(err)
	}
	want, err := d.Fetch(all, fetchOpts).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages through proxy, %d direct", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.UID != w.UID || !reflect.DeepEqual(g.Flags, w.Flags) || !g.InternalDate.Equal(w.InternalDate) ||
			g.RFC822Size != w.RFC822Size || !reflect.DeepEqual(g.Envelope, w.Envelope) ||
			!reflect.DeepEqual(g.BodyStructure, w.BodyStructure) || !bytes.Equal(g.BodySection[0].Bytes, w.BodySection[0].Bytes) {
			t.Fatalf("message %d differs:\nproxy  %+v\ndirect %+v", i+1, g, w)
		}
	}

	// STORE (both forms) shows the new flags, and the upstream has them.
	uid2 := got[1].UID
	st, err := c.Store(imap.UIDSetNum(uid2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered}}, nil).Collect()
	if err != nil || len(st) != 1 || !slices.Contains(st[0].Flags, imap.FlagAnswered) || st[0].UID != uid2 {
		t.Fatalf("UID STORE = %+v, %v", st, err)
	}
	if _, err := c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{"$Label1"}}, nil).Collect(); err != nil {
		t.Fatalf("STORE: %v", err)
	}
	up, err := d.Fetch(imap.SeqSetNum(2, 3), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || !slices.Contains(up[0].Flags, imap.FlagAnswered) || !slices.ContainsFunc(up[1].Flags, func(f imap.Flag) bool { return strings.EqualFold(string(f), "$Label1") }) {
		t.Fatalf("upstream flags after STORE: %v %v %v", up[0].Flags, up[1].Flags, err)
	}

	// SEARCH and UID SEARCH.
	sr, err := c.Search(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, nil).Wait()
	if err != nil || !reflect.DeepEqual(sr.AllSeqNums(), []uint32{1, 3}) {
		t.Fatalf("SEARCH FLAGGED = %v, %v", sr, err)
	}
	usr, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "beta"}}}, nil).Wait()
	if err != nil || !reflect.DeepEqual(usr.AllUIDs(), []imap.UID{uid2}) {
		t.Fatalf("UID SEARCH SUBJECT beta = %v, %v", usr, err)
	}

	// COPY and MOVE keep UIDPLUS data.
	cp, err := c.Copy(imap.UIDSetNum(got[0].UID), "Trash").Wait()
	if err != nil || cp.UIDValidity == 0 {
		t.Fatalf("UID COPY = %+v, %v", cp, err)
	}
	mv, err := c.Move(imap.SeqSetNum(4), "Drafts").Wait()
	if err != nil || mv.UIDValidity == 0 {
		t.Fatalf("MOVE = %+v, %v", mv, err)
	}
	if mb := c.Mailbox(); mb.NumMessages != 3 {
		t.Fatalf("after MOVE the client counts %d messages, want 3 (EXPUNGE passed on)", mb.NumMessages)
	}

	// EXPUNGE passes the upstream's expunged sequence numbers.
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	exp, err := c.Expunge().Collect()
	if err != nil || !reflect.DeepEqual(exp, []uint32{1}) {
		t.Fatalf("EXPUNGE = %v, %v", exp, err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	uidExp, err := c.UIDExpunge(imap.UIDSetNum(uid2)).Collect()
	if err != nil || !reflect.DeepEqual(uidExp, []uint32{1}) {
		t.Fatalf("UID EXPUNGE = %v, %v", uidExp, err)
	}

	// APPEND with flags and date; APPENDUID is the upstream's.
	date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	raw := plainMessage("appended", "hello\r\n")
	ac := c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: date})
	ac.Write(raw)
	ac.Close()
	ad, err := ac.Wait()
	if err != nil || ad.UID == 0 || ad.UIDValidity != sel.UIDValidity {
		t.Fatalf("APPEND = %+v, %v", ad, err)
	}
	msgs, err := h.up.Messages(t.Context(), testUser, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	last := msgs[len(msgs)-1]
	if last.UID != ad.UID || !bytes.Equal(last.Raw, raw) || !last.InternalDate.Equal(date) || !slices.Contains(last.Flags, imap.FlagSeen) {
		t.Fatalf("upstream holds %+v after APPEND", last)
	}

	// UNSELECT, then CLOSE (which expunges silently).
	if err := c.Unselect().Wait(); err != nil {
		t.Fatalf("UNSELECT: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Fatalf("CLOSE: %v", err)
	}
	msgs, _ = h.up.Messages(t.Context(), testUser, "INBOX")
	if len(msgs) != 1 {
		t.Fatalf("after CLOSE the upstream holds %d messages, want 1", len(msgs))
	}
	// EXAMINE is read-only: a non-PEEK fetch does not set \Seen.
	if _, err := c.Select("Trash", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatalf("FETCH BODY[] in EXAMINE: %v", err)
	}
}

// TestMoveWithoutUpstreamMove: when the upstream lacks MOVE, the proxy
// still offers it and does COPY, STORE \Deleted and EXPUNGE, passing the
// EXPUNGEs on; UID MOVE keeps the upstream's COPYUID.
func TestMoveWithoutUpstreamMove(t *testing.T) {
	caps := imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapNamespace: {}, imap.CapLiteralPlus: {}}
	up, err := mailtest.StartUpstream(t.Context(), mailtest.UpstreamOptions{
		Users: map[string]string{testUser: testPass}, IMAPAddr: "127.0.0.1:0", IMAPCaps: caps,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	for _, s := range []string{"one", "two", "three"} {
		if _, err := up.Append(testUser, "INBOX", plainMessage(s, s+"\r\n"), nil); err != nil {
			t.Fatal(err)
		}
	}
	p := startProxy(t, up.IMAPAddr(), PassThrough{}, &bytes.Buffer{})
	c := dial(t, p.Addr().String(), testUser, testPass)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 3 {
		t.Fatalf("SELECT: %+v %v", sel, err)
	}
	uids, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	second := uids.AllUIDs()[1]
	mv, err := c.Move(imap.UIDSetNum(second), "Trash").Wait()
	if err != nil || mv.UIDValidity == 0 {
		t.Fatalf("UID MOVE = %+v, %v", mv, err)
	}
	if n := c.Mailbox().NumMessages; n != 2 {
		t.Fatalf("client counts %d messages after MOVE, want 2", n)
	}
	inbox, _ := up.Messages(t.Context(), testUser, "INBOX")
	trash, _ := up.Messages(t.Context(), testUser, "Trash")
	if len(inbox) != 2 || len(trash) != 1 || !bytes.Contains(trash[0].Raw, []byte("Subject: two")) {
		t.Fatalf("upstream INBOX %d, Trash %d messages", len(inbox), len(trash))
	}
}
