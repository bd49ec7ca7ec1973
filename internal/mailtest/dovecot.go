package mailtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// DovecotOptions configures StartDovecot.
type DovecotOptions struct {
	// Users maps address to password (passwd-file, {PLAIN}); each gets a
	// Maildir under MaildirRoot. Neither may contain ':' or a line break.
	Users map[string]string
	// Hostname names the server in LMTP Received: fields. Default
	// imap.example.test.
	Hostname string
}

// Dovecot is a private Dovecot 2.3 instance (recipes/dovecot.md) on free
// loopback ports, run from a 0755 temporary root, stopped when the test
// ends.
type Dovecot struct {
	Dir         string     // temporary root, shared with StartPostfix
	IMAPAddr    string     // IMAP: STARTTLS offered, plain LOGIN allowed on loopback
	IMAPSAddr   string     // IMAP with implicit TLS
	LMTPAddr    string     // LMTP (RFC 2033); delivery is synchronous
	AuthAddr    string     // auth service for Postfix (smtpd_sasl_type = dovecot)
	MaildirRoot string     // <MaildirRoot>/<user>/Maildir is a user's mail
	TLS         *ServerTLS // certificate of all TLS listeners (DNS:127.0.0.1 for mbsync)
	LogFile     string
	Users       map[string]string
}

// StartDovecot starts Dovecot and returns once its IMAP greeting arrives
// (auth ready). It skips the test when dovecot is not installed or not
// running as root (see LookTool).
func StartDovecot(t testing.TB, opts DovecotOptions) *Dovecot {
	t.Helper()
	bin := LookTool(t, "dovecot", "dovecot-imapd + dovecot-lmtpd")
	RequireRoot(t, "Dovecot drops privileges to dovecot, dovenull and mail")
	if opts.Hostname == "" {
		opts.Hostname = "imap.example.test"
	}
	dir := ShortTempDir(t, "smt-")
	st, err := NewServerTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	ports := FreePorts(t, 4)
	d := &Dovecot{
		Dir:         dir,
		IMAPAddr:    loopback(ports[0]),
		IMAPSAddr:   loopback(ports[1]),
		LMTPAddr:    loopback(ports[2]),
		AuthAddr:    loopback(ports[3]),
		MaildirRoot: filepath.Join(dir, "dovecot", "mail"),
		TLS:         st,
		LogFile:     filepath.Join(dir, "dovecot", "dovecot.log"),
		Users:       opts.Users,
	}
	conf, err := d.writeConfig(opts, ports)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "-c", conf)
	// SIGTERM to the whole group stops Dovecot in ~0.1 s instead of the
	// 1.1–1.4 s its master takes to stop its children one by one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	exited := startDaemon(t, "dovecot", cmd, filepath.Join(dir, "dovecot", "stdout.log"), d.LogFile)
	if err := waitGreeting(t.Context(), d.IMAPAddr, "* OK", exited); err != nil {
		t.Fatalf("dovecot not ready: %v", err)
	}
	return d
}

func (d *Dovecot) writeConfig(opts DovecotOptions, ports []int) (string, error) {
	dd := filepath.Join(d.Dir, "dovecot")
	if err := os.MkdirAll(d.MaildirRoot, 0o755); err != nil {
		return "", err
	}
	// Dovecot's mail processes run as mail:mail (uid/gid 8 on Debian).
	if err := chownName(d.MaildirRoot, "mail", "mail"); err != nil {
		return "", err
	}
	var users bytes.Buffer
	names := make([]string, 0, len(opts.Users))
	for u := range opts.Users {
		names = append(names, u)
	}
	sort.Strings(names)
	for _, u := range names {
		pw := opts.Users[u]
		if strings.ContainsAny(u+pw, ":\r\n") {
			return "", fmt.Errorf("dovecot user %q: ':' and line breaks cannot go into a passwd-file", u)
		}
		fmt.Fprintf(&users, "%s:{PLAIN}%s\n", u, pw)
	}
	// The auth process reads it as user dovecot.
	if err := os.WriteFile(filepath.Join(dd, "users"), users.Bytes(), 0o644); err != nil {
		return "", err
	}
	conf := fmt.Sprintf(dovecotConf, filepath.Base(d.Dir), dd, opts.Hostname, d.TLS.CertFile, d.TLS.KeyFile,
		ports[0], ports[1], ports[2], ports[3])
	path := filepath.Join(dd, "dovecot.conf")
	return path, os.WriteFile(path, []byte(conf), 0o644)
}

// dovecotConf is recipes/dovecot.md §2: standalone, nothing read from
// /etc/dovecot; the anvil block switches the per-IP auth penalty off so
// wrong-password tests stay fast.
const dovecotConf = `instance_name = smt-%[1]s
base_dir = %[2]s/run
state_dir = %[2]s/state
log_path = %[2]s/dovecot.log
hostname = %[3]s
protocols = imap lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <%[4]s
ssl_key = <%[5]s
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 8
first_valid_gid = 8
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[2]s/users
}
userdb {
  driver = static
  args = uid=mail gid=mail home=%[2]s/mail/%%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[6]d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[7]d
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %[8]d
  }
  unix_listener lmtp {
    mode = 0666
  }
}
service auth {
  inet_listener auth-inet {
    address = 127.0.0.1
    port = %[9]d
  }
  unix_listener auth-client {
    mode = 0666
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`

// Login returns the IMAP login of user over the given TLS mode (the
// IMAPS port for TLSImplicit), trusting the instance's certificate.
func (d *Dovecot) Login(user string, mode TLSMode) IMAPLogin {
	addr := d.IMAPAddr
	if mode == TLSImplicit {
		addr = d.IMAPSAddr
	}
	return IMAPLogin{Addr: addr, User: user, Password: d.Users[user], TLS: mode, Config: d.TLS.Client()}
}

// Maildir is the Maildir of user as Dovecot stores it.
func (d *Dovecot) Maildir(user string) string {
	return filepath.Join(d.MaildirRoot, user, "Maildir")
}

// StoredMessages reads the files Dovecot keeps for mailbox of user
// (INBOX or a folder name), straight from disk: what the server really
// holds, independent of any IMAP session. Dovecot keeps LF line ends on
// disk (IMAP serves CRLF).
func (d *Dovecot) StoredMessages(user, mailbox string) ([][]byte, error) {
	dir := d.Maildir(user)
	if mailbox != "INBOX" {
		dir = filepath.Join(dir, "."+strings.ReplaceAll(mailbox, "/", "."))
	}
	return readMaildir(dir)
}

// readMaildir returns the contents of the files in dir/new and dir/cur,
// sorted by file name.
func readMaildir(dir string) ([][]byte, error) {
	var files []string
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				files = append(files, filepath.Join(dir, sub, e.Name()))
			}
		}
	}
	sort.Slice(files, func(i, j int) bool { return filepath.Base(files[i]) < filepath.Base(files[j]) })
	out := make([][]byte, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// DeliverLMTP hands raw to Dovecot's LMTP service for rcpts. When it
// returns nil the message is stored and visible over IMAP.
func (d *Dovecot) DeliverLMTP(ctx context.Context, from string, rcpts []string, raw []byte) error {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", d.LMTPAddr)
	if err != nil {
		return fmt.Errorf("lmtp dial: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("lmtp LHLO: %w", err)
	}
	if err := c.SendMail(from, rcpts, bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("lmtp delivery: %w", err)
	}
	return c.Quit()
}

// startDaemon starts a foreground daemon with stdout+stderr to stdoutLog.
// When the test ends it sends SIGTERM (to the process group when
// cmd.SysProcAttr asks for Setpgid) and waits (SIGKILL after 10 s); on
// failure it prints every log file. Pdeathsig keeps the daemon from
// outliving a crashed test binary. The returned channel is closed when the
// daemon exits.
func startDaemon(t testing.TB, name string, cmd *exec.Cmd, stdoutLog string, logs ...string) <-chan struct{} {
	t.Helper()
	out, err := os.Create(stdoutLog)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	group := cmd.SysProcAttr.Setpgid
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(done) }() //nolint:errcheck // SIGTERM makes it non-nil
	all := append([]string{stdoutLog}, logs...)
	t.Cleanup(func() {
		if group {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		} else {
			cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			if group {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
			cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop within 10 s of SIGTERM", name)
		}
		if t.Failed() {
			printLogs(t, all)
		}
	})
	return done
}

func printLogs(t testing.TB, files []string) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Logf("--- %s: %v", f, err)
			continue
		}
		t.Logf("--- %s:\n%s", f, b)
	}
}

// waitGreeting polls addr every 25 ms until a connection is greeted with
// a line starting with prefix ("* OK", "220 "), for at most 10 s, or until
// the daemon exits.
func waitGreeting(ctx context.Context, addr, prefix string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var last error
	for {
		if last = greeting(ctx, addr, prefix); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no %q greeting from %s: %w", prefix, addr, last)
		case <-exited:
			return fmt.Errorf("exited before greeting on %s (see its log)", addr)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func greeting(ctx context.Context, addr, prefix string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, prefix) {
		return fmt.Errorf("greeting %q", strings.TrimSpace(line))
	}
	// A polite goodbye keeps the daemons' logs free of "disconnected"
	// noise; the reply does not matter.
	if strings.HasPrefix(prefix, "*") {
		fmt.Fprint(conn, "a LOGOUT\r\n")
	} else {
		fmt.Fprint(conn, "QUIT\r\n")
	}
	return nil
}
