package app

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"smimeproxy/config"
)

// MuttFile is the name of a user's mutt configuration in the demo
// directory: muttrc-alice, muttrc-bob, …
func MuttFile(email string) string {
	local, _, _ := strings.Cut(email, "@")
	return "muttrc-" + local
}

// WriteMuttrcs writes a mutt configuration per demo user into the demo
// directory: IMAP and SMTP through the proxies with STARTTLS, the CA root
// trusted, sent mail kept in Sent (stored encrypted by the IMAP proxy), and
// the proxy's status header shown.
func (d *Demo) WriteMuttrcs() error {
	imapHost, imapPort, _ := net.SplitHostPort(d.Info.IMAP)
	for _, u := range d.Info.Users {
		var b strings.Builder
		fmt.Fprintf(&b, "# mutt -F %s  (smimeproxy demo, %s)\n", filepath.Join(d.Dir, MuttFile(u.Email)), u.Email)
		fmt.Fprintf(&b, "set from = %q\nset realname = %q\n", u.Email, strings.SplitN(u.Email, "@", 2)[0])
		fmt.Fprintf(&b, "set imap_user = %q\nset imap_pass = %q\n", u.Email, u.LoginPassword)
		fmt.Fprintf(&b, "set folder = \"imap://%s/\"\nset spoolfile = \"+INBOX\"\nset record = \"+Sent\"\nset postponed = \"+Drafts\"\n",
			net.JoinHostPort(imapHost, imapPort))
		fmt.Fprintf(&b, "set smtp_url = \"smtp://%s@%s/\"\nset smtp_pass = %q\n", strings.ReplaceAll(u.Email, "@", "%40"), d.Info.SMTP, u.LoginPassword)
		fmt.Fprintf(&b, "set ssl_starttls = yes\nset ssl_force_tls = yes\nset ssl_ca_certificates_file = %q\n", d.Info.CAPEM)
		b.WriteString("set header_cache = \"\"\nset message_cachedir = \"\"\nunset imap_passive\nset mail_check = 5\n")
		b.WriteString("unignore Smimeproxy-Status\n")
		if err := os.WriteFile(filepath.Join(d.Dir, MuttFile(u.Email)), []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// TLSModeName is how a mail client's settings call a listener's TLS mode.
func TLSModeName(m config.TLSMode) string {
	switch m {
	case config.TLSStartTLS:
		return "STARTTLS"
	case config.TLSImplicit:
		return "SSL/TLS"
	case config.TLSNone:
		return "no TLS"
	}
	return string(m)
}

// WriteBanner prints what a person needs to try the demo.
func (d *Demo) WriteBanner(w io.Writer, bin string) {
	i := d.Info
	cfg := filepath.Join(d.Dir, DemoConfigFile)
	fmt.Fprintf(w, "smimeproxy demo is running. Files: %s\n\n", d.Dir)
	fmt.Fprintf(w, "Mail client settings (server 127.0.0.1, login = full address + mail password):\n")
	fmt.Fprintf(w, "  IMAP  %s  %s\n  SMTP  %s  %s, AUTH PLAIN or LOGIN\n",
		i.IMAP, TLSModeName(d.App.Config.IMAP.ListenTLS), i.SMTP, TLSModeName(d.App.Config.SMTP.ListenTLS))
	fmt.Fprintf(w, "  Trust this CA root (TLS certificates and Digital IDs): %s\n\n", i.CAPEM)
	fmt.Fprintf(w, "Users:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  address\tmail password\tDigital ID password\tDigital ID\n")
	for _, u := range i.Users {
		state := "enrolled, unlocked for " + d.App.Config.Keys.RememberMax.String()
		if u.State == "none" {
			state = "none yet: enrol with a token (below)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", u.Email, u.LoginPassword, u.IDPassword, state)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nAdmin endpoint: %s   (admin token: %s)\n", i.Admin, i.AdminToken)
	fmt.Fprintf(w, "  unlock page %s/unlock   enrolment page %s/enroll   CA root %s/ca.pem\n\n", i.Admin, i.Admin, i.Admin)
	fmt.Fprintf(w, "Upstream mail server behind the proxies (holds only ciphertext): IMAP %s, SMTP %s (STARTTLS)\n\n", i.UpstreamIMAP, i.UpstreamSMTP)

	alice, bob, dave := i.Users[0], i.Users[1], i.Users[2]
	fmt.Fprintf(w, "Try it:\n")
	fmt.Fprintf(w, "  # 1. alice sends to bob; the proxy signs and encrypts\n")
	fmt.Fprintf(w, "  swaks --server %s --tls --tls-verify --tls-ca-path %s \\\n", i.SMTP, i.CAPEM)
	fmt.Fprintf(w, "    --auth PLAIN --auth-user %s --auth-password %s \\\n", alice.Email, alice.LoginPassword)
	fmt.Fprintf(w, "    --from %s --to %s --header 'Subject: hello from the demo' --body 'Signed and encrypted by smimeproxy.'\n", alice.Email, bob.Email)
	fmt.Fprintf(w, "  # 2. bob reads it in clear through the IMAP proxy (see the Smimeproxy-Status header)\n")
	fmt.Fprintf(w, "  mutt -F %s\n", filepath.Join(d.Dir, MuttFile(bob.Email)))
	fmt.Fprintf(w, "  # 3. dave enrols: a security token, then the enrolment page (login %s / %s)\n", dave.Email, dave.LoginPassword)
	fmt.Fprintf(w, "  %s admin -config %s token create -email %s\n", bin, cfg, dave.Email)
	fmt.Fprintf(w, "  open %s/enroll\n\n", i.Admin)
	fmt.Fprintf(w, "Ctrl-C stops the demo")
	fmt.Fprintf(w, ".\n")
}
