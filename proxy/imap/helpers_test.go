package imap

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
)

const (
	testUser = "alice@demo.test"
	testPass = "alicepw"
)

// harness is an in-process upstream with the proxy in front of it.
type harness struct {
	up     *mailtest.Upstream
	proxy  *Proxy
	viewer *fakeViewer
	logs   *bytes.Buffer
}

func startHarness(t *testing.T, tweak ...func(*Options)) *harness {
	t.Helper()
	up, err := mailtest.StartUpstream(t.Context(), mailtest.UpstreamOptions{
		Users:    map[string]string{testUser: testPass, "bob@demo.test": "bobpw"},
		IMAPAddr: "127.0.0.1:0",
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	h := &harness{up: up, viewer: &fakeViewer{}, logs: &bytes.Buffer{}}
	h.proxy = startProxy(t, up.IMAPAddr(), h.viewer, h.logs, tweak...)
	return h
}

func startProxy(t *testing.T, upstream string, v Viewer, logs *bytes.Buffer, tweak ...func(*Options)) *Proxy {
	t.Helper()
	opts := Options{
		Listen:      "127.0.0.1:0",
		ListenTLS:   TLSNone,
		Upstream:    upstream,
		UpstreamTLS: TLSNone,
		Viewer:      v,
		UnlockURL:   func(email string) string { return "https://proxy.test/unlock?email=" + email },
		Logger:      slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil)),
	}
	for _, f := range tweak {
		f(&opts)
	}
	p, err := NewProxy(opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Serve(context.Background()); close(done) }()
	t.Cleanup(func() { p.Close(); <-done })
	return p
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (h *harness) viaProxy(t *testing.T) *imapclient.Client {
	t.Helper()
	return dial(t, h.proxy.Addr().String(), testUser, testPass)
}

func (h *harness) direct(t *testing.T) *imapclient.Client {
	t.Helper()
	return dial(t, h.up.IMAPAddr(), testUser, testPass)
}

func dial(t *testing.T, addr, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := mailtest.DialIMAP(t.Context(), mailtest.IMAPLogin{Addr: addr, User: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (h *harness) deliver(t *testing.T, mailbox string, raw []byte, flags ...imap.Flag) imap.UID {
	t.Helper()
	data, err := h.up.Append(testUser, mailbox, raw, &imap.AppendOptions{Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	return data.UID
}

func plainMessage(subject, body string) []byte {
	return []byte("From: Bob <bob@demo.test>\r\nTo: alice@demo.test\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@demo.test>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n" + body)
}

// innerMessage is the plaintext the fake viewer "decrypts" to.
func innerMessage(subject string) []byte {
	return []byte("From: Bob <bob@demo.test>\r\nTo: alice@demo.test\r\nSubject: " + subject +
		"\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsecret text of " + subject + "\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gYmluYXJ5\r\n" +
		"--b1--\r\n")
}

// fakeMessage stands in for an S/MIME enveloped message: its body is the
// base64 of innerMessage, which the fake viewer decodes.
func fakeMessage(subject string) []byte { return fakeMessageBody(subject, "") }

// fakeMessageBody is fakeMessage with extra text in the inner message.
func fakeMessageBody(subject, extra string) []byte {
	inner := innerMessage(subject)
	if extra != "" {
		inner = append(plainMessage(subject, extra), nil...)
	}
	enc := base64.StdEncoding.EncodeToString(inner)
	var b strings.Builder
	b.WriteString("From: Bob <bob@demo.test>\r\nTo: alice@demo.test\r\nSubject: " + subject +
		"\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return []byte(b.String())
}

// fakeViewer is a Viewer for the protocol tests: application/pkcs7-mime
// at the top level is "decrypted" by base64-decoding the body and adding
// a status header; Smimeproxy-Status headers from outside are filtered.
type fakeViewer struct {
	locked atomic.Bool
	views  atomic.Int32
	mu     sync.Mutex
	cache  map[MessageKey]*View
	wiped  []string
}

const statusHeader = "Smimeproxy-Status"

func (v *fakeViewer) Needed(bs imap.BodyStructure) bool {
	sp, ok := bs.(*imap.BodyStructureSinglePart)
	return ok && strings.EqualFold(sp.Type, "application") && strings.EqualFold(sp.Subtype, "pkcs7-mime")
}

func (v *fakeViewer) Lookup(key MessageKey) *View {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cache[key]
}

func (v *fakeViewer) View(_ context.Context, key MessageKey, raw []byte) (*View, error) {
	if v.locked.Load() {
		return nil, fmt.Errorf("view %d: %w", key.UID, identity.ErrLocked)
	}
	v.views.Add(1)
	n := splitHeader(raw)
	dec, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(raw[n:])))
	if err != nil {
		dec = raw // broken: the original, marked
	}
	view := &View{Raw: append([]byte(statusHeader+": decrypted\r\n"), dec...)}
	v.mu.Lock()
	if v.cache == nil {
		v.cache = map[MessageKey]*View{}
	}
	v.cache[key] = view
	v.mu.Unlock()
	return view, nil
}

func (v *fakeViewer) FilterHeader(header []byte) []byte {
	var out []byte
	skipping := false
	for _, line := range bytes.SplitAfter(header, []byte("\n")) {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if skipping {
				continue
			}
		} else {
			skipping = len(line) > len(statusHeader) && strings.EqualFold(string(line[:len(statusHeader)+1]), statusHeader+":")
			if skipping {
				continue
			}
		}
		out = append(out, line...)
	}
	return out
}

func (v *fakeViewer) Wipe(user string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.wiped = append(v.wiped, user)
	clear(v.cache)
}
