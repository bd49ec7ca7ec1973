package mailtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PostfixOptions configures StartPostfix.
type PostfixOptions struct {
	// Dovecot receives the mail (LMTP) and checks SASL logins. Required.
	Dovecot *Dovecot
	// Hostname is myhostname. Default mx.example.test.
	Hostname string
	// Check runs `postfix check` (1–3 s: a shell script spawning dozens
	// of processes) instead of creating the queue directories directly.
	Check bool
}

// Postfix is a private Postfix 3.7 instance (recipes/postfix.md) sharing
// Dovecot's temporary root and certificate: submission with STARTTLS and
// SASL through Dovecot, delivery to Dovecot over LMTP for the domains of
// Dovecot's users, and nothing ever leaving 127.0.0.1.
type Postfix struct {
	Dir            string // config, queue and logs: <Dovecot.Dir>/postfix
	SubmissionAddr string // STARTTLS required, AUTH required
	SMTPAddr       string // plain SMTP, no AUTH, open to 127.0.0.0/8 only
	LogFile        string
	Domains        []string // virtual_mailbox_domains
}

// StartPostfix creates the queue (what `postfix check` would) and runs the
// master in the foreground; it returns once the submission port greets.
// Delivery is asynchronous: after "250 queued", poll with WaitForMessage.
func StartPostfix(t testing.TB, opts PostfixOptions) *Postfix {
	t.Helper()
	postfixBin := LookTool(t, "postfix", "postfix")
	master := "/usr/lib/postfix/sbin/master"
	if _, err := os.Stat(master); err != nil {
		MissingTool(t, master+" (Debian package postfix)")
	}
	RequireRoot(t, "Postfix drops privileges to postfix")
	d := opts.Dovecot
	if d == nil {
		t.Fatal("StartPostfix: PostfixOptions.Dovecot is required")
	}
	if opts.Hostname == "" {
		opts.Hostname = "mx.example.test"
	}
	ports := FreePorts(t, 2)
	p := &Postfix{
		Dir:            filepath.Join(d.Dir, "postfix"),
		SubmissionAddr: loopback(ports[0]),
		SMTPAddr:       loopback(ports[1]),
		Domains:        userDomains(d.Users),
	}
	p.LogFile = filepath.Join(p.Dir, "postfix.log")
	if err := p.writeConfig(opts, d); err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(p.Dir, "etc")
	if opts.Check {
		// Postfix reports nothing on stderr when it is not a terminal;
		// the reason of a failed check is in the log file.
		if out, err := exec.Command(postfixBin, "-c", etc, "check").CombinedOutput(); err != nil {
			printLogs(t, []string{p.LogFile})
			t.Fatalf("postfix check: %v\n%s", err, out)
		}
	} else if err := makeQueue(filepath.Join(p.Dir, "spool")); err != nil {
		t.Fatal(err)
	}
	exited := startDaemon(t, "postfix", exec.Command(master, "-c", etc, "-s"), filepath.Join(p.Dir, "stdout.log"), p.LogFile)
	if err := waitGreeting(t.Context(), p.SubmissionAddr, "220 ", exited); err != nil {
		t.Fatalf("postfix not ready: %v", err)
	}
	return p
}

func (p *Postfix) writeConfig(opts PostfixOptions, d *Dovecot) error {
	etc := filepath.Join(p.Dir, "etc")
	data := filepath.Join(p.Dir, "data")
	for _, dir := range []string{etc, data, filepath.Join(p.Dir, "spool")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := chownName(data, "postfix", ""); err != nil {
		return err
	}
	if len(p.Domains) == 0 {
		return fmt.Errorf("postfix: Dovecot has no users, so no domain to deliver to")
	}
	mainCf := fmt.Sprintf(postfixMainCf, p.Dir, p.LogFile, opts.Hostname, p.Domains[0],
		strings.Join(p.Domains, ", "), d.LMTPAddr, d.TLS.CertFile, d.TLS.KeyFile, d.AuthAddr)
	masterCf := fmt.Sprintf(postfixMasterCf, p.SubmissionAddr, p.SMTPAddr)
	// Postfix re-reads a config file in 300 ms steps for as long as its
	// mtime is the current second (it may still be being written); an
	// mtime in the past saves 1–2 s of start-up.
	past := time.Now().Add(-time.Minute)
	for name, text := range map[string]string{"main.cf": mainCf, "master.cf": masterCf} {
		path := filepath.Join(etc, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
		if err := os.Chtimes(path, past, past); err != nil {
			return err
		}
	}
	return nil
}

// makeQueue creates the queue subdirectories with the owners and modes of
// Debian's /etc/postfix/postfix-files, as `postfix check` would.
func makeQueue(spool string) error {
	for _, q := range []struct {
		name, owner, group string
		mode               os.FileMode
	}{
		{"active", "postfix", "", 0o700}, {"bounce", "postfix", "", 0o700},
		{"corrupt", "postfix", "", 0o700}, {"defer", "postfix", "", 0o700},
		{"deferred", "postfix", "", 0o700}, {"flush", "postfix", "", 0o700},
		{"hold", "postfix", "", 0o700}, {"incoming", "postfix", "", 0o700},
		{"private", "postfix", "", 0o700}, {"saved", "postfix", "", 0o700},
		{"trace", "postfix", "", 0o700}, {"pid", "root", "", 0o755},
		{"maildrop", "postfix", "postdrop", 0o730}, {"public", "postfix", "postdrop", 0o710},
	} {
		dir := filepath.Join(spool, q.name)
		if err := os.Mkdir(dir, q.mode); err != nil {
			return fmt.Errorf("postfix queue: %w", err)
		}
		if err := os.Chmod(dir, q.mode); err != nil { // umask-proof
			return fmt.Errorf("postfix queue: %w", err)
		}
		if err := chownName(dir, q.owner, q.group); err != nil {
			return fmt.Errorf("postfix queue: %w", err)
		}
	}
	return nil
}

// userDomains lists the domains of the addresses in users, sorted.
func userDomains(users map[string]string) []string {
	set := map[string]bool{}
	for u := range users {
		if i := strings.LastIndexByte(u, '@'); i >= 0 {
			set[strings.ToLower(u[i+1:])] = true
		}
	}
	out := make([]string, 0, len(set))
	for dom := range set {
		out = append(out, dom)
	}
	sort.Strings(out)
	return out
}

// postfixMainCf is recipes/postfix.md §2 with the instance's paths and
// ports: mail for the virtual domains goes to Dovecot over LMTP, every
// other destination is an error, DNS is off.
const postfixMainCf = `compatibility_level = 3.6
config_directory = %[1]s/etc
queue_directory = %[1]s/spool
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = %[1]s, /dev/stdout
maillog_file = %[2]s
myhostname = %[3]s
mydomain = %[4]s
myorigin = $mydomain
mydestination =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
virtual_mailbox_domains = %[5]s
virtual_transport = lmtp:inet:%[6]s
default_transport = error:no outbound mail in tests
relay_transport = error:no outbound mail in tests
smtpd_tls_cert_file = %[7]s
smtpd_tls_key_file = %[8]s
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:%[9]s
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
biff = no
`

// postfixMasterCf is recipes/postfix.md §3: no service chrooted (a
// chrooted smtpd cannot reach paths outside the queue directory).
const postfixMasterCf = `%[1]s  inet  n  -  n  -  -  smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
%[2]s  inet  n  -  n  -  -  smtpd
pickup     unix  n       -      n      60     1       pickup
cleanup    unix  n       -      n      -      0       cleanup
qmgr       unix  n       -      n      300    1       qmgr
tlsmgr     unix  -       -      n      1000?  1       tlsmgr
rewrite    unix  -       -      n      -      -       trivial-rewrite
bounce     unix  -       -      n      -      0       bounce
defer      unix  -       -      n      -      0       bounce
trace      unix  -       -      n      -      0       bounce
verify     unix  -       -      n      -      1       verify
flush      unix  n       -      n      1000?  0       flush
proxymap   unix  -       -      n      -      -       proxymap
proxywrite unix  -       -      n      -      1       proxymap
smtp       unix  -       -      n      -      -       smtp
relay      unix  -       -      n      -      -       smtp
showq      unix  n       -      n      -      -       showq
error      unix  -       -      n      -      -       error
retry      unix  -       -      n      -      -       error
discard    unix  -       -      n      -      -       discard
lmtp       unix  -       -      n      -      -       lmtp
anvil      unix  -       -      n      -      1       anvil
scache     unix  -       -      n      -      1       scache
postlog    unix-dgram n  -      n      -      1       postlogd
`

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago (listened on and closed), for daemons that need fixed ports in
// their config.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func loopback(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// chownName gives path to the named user and group.
func chownName(path, owner, group string) error {
	u, err := user.Lookup(owner)
	if err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid := -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}
