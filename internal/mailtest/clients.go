package mailtest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TLSMode says how a client secures a connection; the values are those
// of the config file's *_tls keys.
type TLSMode string

const (
	TLSNone     TLSMode = "none"     // clear text (loopback only)
	TLSStartTLS TLSMode = "starttls" // STARTTLS after the greeting
	TLSImplicit TLSMode = "implicit" // TLS from the first byte
)

// IMAPLogin is where and as whom an IMAP client logs in.
type IMAPLogin struct {
	Addr     string // host:port
	User     string
	Password string
	TLS      TLSMode     // "" means TLSNone
	Config   *tls.Config // client TLS config (RootCAs); ServerName defaults to the host
}

// Message is one message as an IMAP server returns it.
type Message struct {
	UID          imap.UID
	Flags        []imap.Flag
	InternalDate time.Time
	Raw          []byte // BODY[]
}

// ErrNoMatch is returned by WaitForMessage when no message matched in time.
var ErrNoMatch = errors.New("mailtest: no matching message")

// DialIMAP connects and logs in. The connection is closed when ctx is done,
// so every wait on it is bounded by ctx; the caller closes the client.
func DialIMAP(ctx context.Context, l IMAPLogin) (*imapclient.Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", l.Addr)
	if err != nil {
		return nil, fmt.Errorf("imap dial %s: %w", l.Addr, err)
	}
	context.AfterFunc(ctx, func() { conn.Close() })
	cfg := l.Config.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(l.Addr)
	}
	var c *imapclient.Client
	switch l.TLS {
	case TLSNone, "":
		c = imapclient.New(conn, nil)
	case TLSStartTLS:
		c, err = imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: cfg})
	case TLSImplicit:
		tc := tls.Client(conn, cfg)
		if err = tc.HandshakeContext(ctx); err == nil {
			c = imapclient.New(tc, nil)
		}
	default:
		err = fmt.Errorf("unknown TLS mode %q", l.TLS)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("imap %s %s: %w", l.TLS, l.Addr, err)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap greeting from %s: %w", l.Addr, err)
	}
	if err := c.Login(l.User, l.Password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap login %s at %s: %w", l.User, l.Addr, err)
	}
	return c, nil
}

// FetchMessages logs in and returns every message of mailbox (read-only:
// no \Seen flag is set).
func FetchMessages(ctx context.Context, l IMAPLogin, mailbox string) ([]Message, error) {
	c, err := DialIMAP(ctx, l)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msgs, err := fetchAll(c, mailbox)
	if err != nil {
		return nil, err
	}
	c.Logout().Wait() //nolint:errcheck // the result is what counts
	return msgs, nil
}

func fetchAll(c *imapclient.Client, mailbox string) ([]Message, error) {
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("examine %s: %w", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	section := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(all, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", mailbox, err)
	}
	msgs := make([]Message, 0, len(bufs))
	for _, b := range bufs {
		msgs = append(msgs, Message{UID: b.UID, Flags: b.Flags, InternalDate: b.InternalDate, Raw: b.FindBodySection(section)})
	}
	return msgs, nil
}

// WaitForMessage polls mailbox every 50 ms until a message satisfies match
// and returns it. Delivery through a real MTA is asynchronous, so tests
// wait for the message instead of sleeping. Without a deadline on ctx it
// gives up after 10 s.
func WaitForMessage(ctx context.Context, l IMAPLogin, mailbox string, match func(Message) bool) (Message, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	c, err := DialIMAP(ctx, l)
	if err != nil {
		return Message{}, err
	}
	defer c.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		msgs, err := fetchAll(c, mailbox)
		if err != nil && ctx.Err() == nil {
			return Message{}, err
		}
		for _, m := range msgs {
			if match(m) {
				return m, nil
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("%s of %s (%d messages, none matched): %w", mailbox, l.User, len(msgs), ErrNoMatch)
		}
	}
}

// Submission is one message to send with a real SMTP client.
type Submission struct {
	Addr     string // host:port
	TLS      TLSMode
	CAFile   string // verify the server against this PEM; empty: no check
	User     string // empty: no AUTH
	Password string
	Mech     string // PLAIN (default) or LOGIN
	From     string
	To       []string
	Message  []byte
}

// RunSwaks sends s with swaks and returns its transcript (AUTH lines
// redacted). The error wraps *exec.ExitError for a non-zero exit (swaks:
// 2 connect, 24 no recipient accepted, 28 AUTH, 29 TLS, …).
func RunSwaks(ctx context.Context, t testing.TB, s Submission) (string, error) {
	t.Helper()
	bin := LookTool(t, "swaks", "swaks")
	data := filepath.Join(t.TempDir(), "message.eml")
	if err := os.WriteFile(data, s.Message, 0o600); err != nil {
		return "", err
	}
	args := []string{"--server", s.Addr, "--from", s.From, "--to", strings.Join(s.To, ","),
		"--data", "@" + data, "--timeout", "10"}
	switch s.TLS {
	case TLSStartTLS:
		args = append(args, "--tls")
	case TLSImplicit:
		args = append(args, "--tlsc")
	}
	if s.CAFile != "" {
		args = append(args, "--tls-verify", "--tls-ca-path", s.CAFile)
	}
	if s.User != "" {
		args = append(args, "--auth", cmp.Or(s.Mech, "PLAIN"), "--auth-user", s.User, "--auth-password", s.Password)
	}
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	transcript := redactAuth(string(out))
	if err != nil {
		return transcript, fmt.Errorf("swaks to %s: %w", s.Addr, err)
	}
	return transcript, nil
}

// redactAuth blanks the client's lines of an SMTP AUTH exchange, which
// carry the password in base64.
func redactAuth(transcript string) string {
	lines := strings.Split(transcript, "\n")
	inAuth := false
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(trimmed, "~> AUTH"):
			lines[i], inAuth = " ~> AUTH [redacted]", true
		case inAuth && strings.HasPrefix(trimmed, "~>"):
			lines[i] = " ~> [redacted]"
		case strings.HasPrefix(trimmed, "<~") && !strings.HasPrefix(trimmed, "<~  334"):
			inAuth = false
		}
	}
	return strings.Join(lines, "\n")
}

// RunMsmtp sends s with msmtp (config file as in recipes/postfix.md) and
// returns msmtp's log line(s). A non-zero exit wraps *exec.ExitError.
func RunMsmtp(ctx context.Context, t testing.TB, s Submission) (string, error) {
	t.Helper()
	bin := LookTool(t, "msmtp", "msmtp")
	dir := t.TempDir()
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return "", err
	}
	var rc strings.Builder
	fmt.Fprintf(&rc, "defaults\nlogfile %s\n", filepath.Join(dir, "msmtp.log"))
	switch s.TLS {
	case TLSStartTLS:
		rc.WriteString("tls on\ntls_starttls on\n")
	case TLSImplicit:
		rc.WriteString("tls on\ntls_starttls off\n")
	default:
		rc.WriteString("tls off\n")
	}
	if s.CAFile != "" {
		fmt.Fprintf(&rc, "tls_trust_file %s\n", s.CAFile)
	} else if s.TLS == TLSStartTLS || s.TLS == TLSImplicit {
		rc.WriteString("tls_certcheck off\n")
	}
	fmt.Fprintf(&rc, "account test\nhost %s\nport %s\nfrom %s\n", host, port, s.From)
	if s.User != "" {
		fmt.Fprintf(&rc, "auth %s\nuser %s\npassword %s\n", strings.ToLower(cmp.Or(s.Mech, "PLAIN")), s.User, s.Password)
	} else {
		rc.WriteString("auth off\n")
	}
	rc.WriteString("account default : test\n")
	conf := filepath.Join(dir, "msmtprc")
	// msmtp refuses a config file with a password that others can read.
	if err := os.WriteFile(conf, []byte(rc.String()), 0o600); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"-C", conf, "-a", "test", "--"}, s.To...)...)
	cmd.Stdin = bytes.NewReader(s.Message)
	out, runErr := cmd.CombinedOutput()
	logged, _ := os.ReadFile(filepath.Join(dir, "msmtp.log"))
	result := strings.TrimSpace(string(out) + string(logged))
	if runErr != nil {
		return result, fmt.Errorf("msmtp to %s: %w", s.Addr, runErr)
	}
	return result, nil
}

// Synced is the result of an mbsync run: the local Maildir and, per
// folder ("INBOX", "Sent", …), the contents of its message files sorted by
// file name.
type Synced struct {
	Dir     string
	Folders map[string][][]byte
}

// RunMbsync pulls every folder of l into the Maildir under dir with mbsync
// (isync 1.4 syntax, recipes/mbsync.md); dir keeps mbsync's sync state, so
// a second run into the same dir fetches only what is new. caFile is the
// server certificate to trust (mbsync 1.4 matches Host against DNS names
// only: the certificate needs DNS:127.0.0.1, or use Addr "localhost:…").
func RunMbsync(ctx context.Context, t testing.TB, l IMAPLogin, caFile, dir string) (*Synced, error) {
	t.Helper()
	bin := LookTool(t, "mbsync", "isync")
	host, port, err := net.SplitHostPort(l.Addr)
	if err != nil {
		return nil, err
	}
	maildir := filepath.Join(dir, "Maildir")
	if err := os.MkdirAll(maildir, 0o700); err != nil {
		return nil, err
	}
	ssl := map[TLSMode]string{"": "None", TLSNone: "None", TLSStartTLS: "STARTTLS", TLSImplicit: "IMAPS"}[l.TLS]
	var rc strings.Builder
	fmt.Fprintf(&rc, "IMAPAccount acct\nHost %s\nPort %s\nUser %s\nPass %s\nSSLType %s\nAuthMechs PLAIN\n",
		host, port, mbsyncQuote(l.User), mbsyncQuote(l.Password), ssl)
	if caFile != "" && ssl != "None" {
		fmt.Fprintf(&rc, "CertificateFile %s\n", caFile)
	}
	fmt.Fprintf(&rc, "\nIMAPStore remote\nAccount acct\n\nMaildirStore local\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n",
		maildir, maildir)
	rc.WriteString("\nChannel sync\nFar :remote:\nNear :local:\nPatterns *\nCreate Near\nSync Pull\nSyncState *\n")
	conf := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(conf, []byte(rc.String()), 0o600); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, bin, "-q", "-c", conf, "-a").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("mbsync from %s: %w\n%s", l.Addr, err, out)
	}
	return readSynced(maildir)
}

func mbsyncQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// readSynced reads every Maildir folder (a directory with cur/) under root.
func readSynced(root string) (*Synced, error) {
	s := &Synced{Dir: root, Folders: map[string][][]byte{}}
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return err
		}
		if _, err := os.Stat(filepath.Join(path, "cur")); err != nil {
			return nil
		}
		name, _ := filepath.Rel(root, path)
		msgs, err := readMaildir(path)
		if err != nil {
			return err
		}
		s.Folders[filepath.ToSlash(name)] = msgs
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read synced maildir: %w", err)
	}
	return s, nil
}
