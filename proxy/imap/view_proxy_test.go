package imap

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"smimeproxy/crypto/smime"
	"smimeproxy/internal/mailtest"
)

const (
	svLogin = "bob@example.test"
	svPass  = "bobpw"
)

// svProxy runs the proxy with the S/MIME viewer and the APPEND transform
// in front of an in-process upstream.
func svProxy(t *testing.T, v *SMIMEViewer) (*mailtest.Upstream, *Proxy) {
	t.Helper()
	up, err := mailtest.StartUpstream(t.Context(), mailtest.UpstreamOptions{
		Users:    map[string]string{svLogin: svPass},
		IMAPAddr: "127.0.0.1:0",
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	p, err := NewProxy(Options{
		Listen: "127.0.0.1:0", ListenTLS: TLSNone,
		Upstream: up.IMAPAddr(), UpstreamTLS: TLSNone,
		Viewer: v, AppendTransform: v.AppendTransform,
		UnlockURL: func(string) string { return "https://proxy.test/unlock" },
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Serve(context.Background()); close(done) }()
	t.Cleanup(func() { p.Close(); <-done })
	return up, p
}

func svFetch(t *testing.T, c *imapclient.Client, uid imap.UID) (body []byte, size int64, err error) {
	t.Helper()
	sec := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		return nil, 0, err
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages for UID %d", len(msgs), uid)
	}
	return msgs[0].FindBodySection(sec), msgs[0].RFC822Size, nil
}

// Through the proxy, with the mailbox's real BODYSTRUCTURE deciding what
// is viewed: S/MIME at the top is opened, nested S/MIME and plain mail
// pass (forged status fields removed), and a locked key refuses only the
// messages that need it.
func TestViewThroughProxy(t *testing.T) {
	w := newSVWorld(t)
	v := w.viewer(t, 0)
	up, p := svProxy(t, v)
	plain := svPlain("alice@example.test")
	forged := "Smimeproxy-Status: decrypted; signature valid; signer=ceo@example.test\r\n"
	encrypted := append([]byte(forged), svEncrypt(t, svSign(t, w.alice, plain, false), smime.AES256CBC, w.bob)...)
	_, entity, _ := smime.SplitMessage(svEncrypt(t, plain, smime.AES256CBC, w.bob))
	nested := []byte("From: alice@example.test\r\nSubject: efail\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/html\r\n\r\n<img src=\"http://efail.test/\r\n" +
		"--B\r\n" + string(entity) + "\r\n--B\r\nContent-Type: text/html\r\n\r\n\">\r\n--B--\r\n")
	plainForged := append([]byte(forged), plain...)
	detached := svSign(t, w.alice, plain, false)

	deliver := func(raw []byte) imap.UID {
		data, err := up.Append(svLogin, "INBOX", raw, &imap.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return data.UID
	}
	uEnc, uNested, uPlain, uSigned := deliver(encrypted), deliver(nested), deliver(plainForged), deliver(detached)

	c, err := mailtest.DialIMAP(t.Context(), mailtest.IMAPLogin{Addr: p.Addr().String(), User: svLogin, Password: svPass})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	check := func(uid imap.UID, status string, want func([]byte) bool) {
		t.Helper()
		body, size, err := svFetch(t, c, uid)
		if err != nil {
			t.Fatalf("UID %d: %v", uid, err)
		}
		if size != int64(len(body)) {
			t.Errorf("UID %d: RFC822.SIZE %d, BODY[] %d bytes", uid, size, len(body))
		}
		fs := svHeaderFields(body, "Smimeproxy-")
		switch {
		case status == "" && len(fs) != 0:
			t.Errorf("UID %d: status fields %q", uid, fs)
		case status != "" && (len(fs) != 1 || fs[0] != StatusHeader+": "+status):
			t.Errorf("UID %d: status fields %q, want %q", uid, fs, status)
		}
		if !want(body) {
			t.Errorf("UID %d: unexpected body:\n%s", uid, body)
		}
	}
	check(uEnc, "decrypted; signature valid; signer=alice@example.test", func(b []byte) bool { return bytes.Contains(b, []byte(svSecret)) })
	check(uNested, "", func(b []byte) bool { return bytes.Equal(b, nested) })
	check(uPlain, "", func(b []byte) bool { return bytes.Equal(b, plain) })
	check(uSigned, "not-encrypted; signature valid; signer=alice@example.test", func(b []byte) bool {
		return bytes.HasSuffix(b, detached) && len(b) == len(detached)+len(StatusHeader+": not-encrypted; signature valid; signer=alice@example.test\r\n")
	})

	// Locked: the cached decrypted view goes with the lock, the encrypted
	// message is refused (no stand-in), everything else still reads.
	w.keys.setLocked(true)
	v.Wipe(svLogin)
	if _, _, err := svFetch(t, c, uEnc); err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Fatalf("locked key: FETCH gave %v, want NO [UNAVAILABLE]", err)
	}
	check(uPlain, "", func(b []byte) bool { return bytes.Equal(b, plain) })
	check(uSigned, "not-encrypted; signature valid; signer=alice@example.test", func(b []byte) bool { return bytes.HasSuffix(b, detached) })
	w.keys.setLocked(false)

	// APPEND to Sent is stored encrypted upstream and reads back in clear.
	sent := []byte("From: bob@example.test\r\nTo: alice@example.test\r\nSubject: mine\r\n\r\n" + svSecret + "\r\n")
	cmd := c.Append("Sent", int64(len(sent)), nil)
	cmd.Write(sent)
	cmd.Close()
	data, err := cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	stored, err := mailtest.FetchMessages(t.Context(), mailtest.IMAPLogin{Addr: up.IMAPAddr(), User: svLogin, Password: svPass}, "Sent")
	if err != nil || len(stored) != 1 {
		t.Fatalf("upstream Sent: %d messages, %v", len(stored), err)
	}
	if bytes.Contains(stored[0].Raw, []byte(svSecret)) {
		t.Fatal("the upstream holds the plaintext the user wrote")
	}
	if _, err := c.Select("Sent", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	uid := stored[0].UID
	if data != nil && data.UID != 0 {
		uid = data.UID
	}
	check(uid, "decrypted; signature absent", func(b []byte) bool { return bytes.HasSuffix(b, []byte("\r\n\r\n"+svSecret+"\r\n")) })
}
