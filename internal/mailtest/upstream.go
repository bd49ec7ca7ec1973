package mailtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-smtp"
)

// ErrUnknownUser is returned for an address that has no mailbox on the
// upstream.
var ErrUnknownUser = errors.New("mailtest: unknown user")

// defaultMailboxes are created for every user of an Upstream.
func defaultMailboxes() []string { return []string{"INBOX", "Sent", "Drafts", "Trash"} }

// UpstreamOptions configures StartUpstream. Empty addresses leave that
// listener out; the usual choice is "127.0.0.1:0" (any free port).
type UpstreamOptions struct {
	// Users maps mailbox address to mail password; addresses are compared
	// case-insensitively. Each user gets INBOX, Sent, Drafts and Trash
	// (without SPECIAL-USE attributes: imapmemserver v2.0.0-beta.8 drops
	// them).
	Users map[string]string
	// TLS is the server side of STARTTLS and of the implicit-TLS
	// listeners. Nil: no STARTTLS, and AUTH/LOGIN are allowed in clear.
	TLS *tls.Config
	// InsecureAuth allows AUTH/LOGIN before STARTTLS even when TLS is set
	// (real submission servers refuse it; loopback tests may want it).
	InsecureAuth bool

	SMTPAddr  string // submission with STARTTLS (when TLS is set)
	SMTPSAddr string // submission with implicit TLS (needs TLS)
	IMAPAddr  string // IMAP with STARTTLS (when TLS is set)
	IMAPSAddr string // IMAP with implicit TLS (needs TLS)

	// Hostname appears in the SMTP greeting. Default "upstream.test".
	Hostname string
	// MaxMessageBytes is the SMTP SIZE limit. Default 64 MiB.
	MaxMessageBytes int64
	// RejectUnknownRecipients answers RCPT TO for addresses without a
	// mailbox here with 550 5.1.1. By default such recipients are
	// accepted and only recorded, like a relay that sends them on.
	RejectUnknownRecipients bool
	// DiscardMail reads accepted messages and records their envelopes
	// and sizes, but neither stores them nor keeps their bytes: for
	// benchmarks, where memory use must be the proxy's alone.
	DiscardMail bool
	// IMAPCaps overrides the advertised IMAP capabilities. Default:
	// IMAP4rev1 with NAMESPACE, UIDPLUS, ESEARCH, LIST-EXTENDED,
	// LIST-STATUS, MOVE, STATUS=SIZE, LITERAL+, BINARY (what
	// imapmemserver implements), which is closer to Dovecot 2.3 than
	// IMAP4rev2. IDLE, UNSELECT, ENABLE come with IMAP4rev1.
	IMAPCaps imap.CapSet
	// Logger receives the servers' internal errors. Default slog.Default().
	Logger *slog.Logger
}

// Upstream is an in-process submission server and IMAP server sharing one
// mail store: mail accepted over SMTP lands in the INBOX of each local
// recipient. It stands in for the mail server behind the proxy in unit
// tests and in `smimeproxy demo`. All methods are safe for concurrent use.
type Upstream struct {
	opts  UpstreamOptions
	log   *slog.Logger
	store *imapmemserver.Server

	mu        sync.Mutex
	passwords map[string]string // lower-case address → password
	users     map[string]*imapmemserver.User
	fault     Fault
	txns      []Envelope

	smtp    *smtpListeners
	imap    *imapListeners
	closeMu sync.Once
	done    chan struct{}
}

// StartUpstream starts the listeners named in opts and returns once they
// accept connections. The servers stop on Close or when ctx is done.
func StartUpstream(ctx context.Context, opts UpstreamOptions) (*Upstream, error) {
	if opts.Hostname == "" {
		opts.Hostname = "upstream.test"
	}
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = 64 << 20
	}
	if opts.IMAPCaps == nil {
		opts.IMAPCaps = defaultIMAPCaps()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.TLS == nil && (opts.SMTPSAddr != "" || opts.IMAPSAddr != "") {
		return nil, errors.New("mailtest: implicit-TLS listeners need UpstreamOptions.TLS")
	}
	up := &Upstream{
		opts:      opts,
		log:       opts.Logger,
		store:     imapmemserver.New(),
		passwords: make(map[string]string),
		users:     make(map[string]*imapmemserver.User),
		done:      make(chan struct{}),
	}
	for addr, pw := range opts.Users {
		if err := up.AddUser(addr, pw); err != nil {
			return nil, err
		}
	}
	var err error
	if up.smtp, err = up.startSMTP(); err != nil {
		up.Close()
		return nil, err
	}
	if up.imap, err = up.startIMAP(); err != nil {
		up.Close()
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			up.Close()
		case <-up.done:
		}
	}()
	return up, nil
}

// SMTPAddr is the host:port of the STARTTLS/plain submission listener.
func (up *Upstream) SMTPAddr() string { return up.smtp.plainAddr }

// SMTPSAddr is the host:port of the implicit-TLS submission listener.
func (up *Upstream) SMTPSAddr() string { return up.smtp.tlsAddr }

// IMAPAddr is the host:port of the STARTTLS/plain IMAP listener.
func (up *Upstream) IMAPAddr() string { return up.imap.plainAddr }

// IMAPSAddr is the host:port of the implicit-TLS IMAP listener.
func (up *Upstream) IMAPSAddr() string { return up.imap.tlsAddr }

// AddUser creates a mailbox with the standard folders, or changes the
// password of an existing one (its mail stays).
func (up *Upstream) AddUser(addr, password string) error {
	key := strings.ToLower(addr)
	if key == "" || !strings.Contains(key, "@") {
		return fmt.Errorf("mailtest: add user %q: not a mail address", addr)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	up.passwords[key] = password
	if up.users[key] != nil {
		return nil
	}
	// The memserver's own password check is bypassed (imapSession.Login
	// checks up.passwords), so passwords can change without losing mail.
	u := imapmemserver.NewUser(key, "")
	for _, name := range defaultMailboxes() {
		if err := u.Create(name, nil); err != nil {
			return fmt.Errorf("mailtest: add user %s: create %s: %w", key, name, err)
		}
		if err := u.Subscribe(name); err != nil {
			return fmt.Errorf("mailtest: add user %s: subscribe %s: %w", key, name, err)
		}
	}
	up.users[key] = u
	up.store.AddUser(u)
	return nil
}

// checkLogin reports whether addr/password is a valid login, and returns
// the user's store when it is.
func (up *Upstream) checkLogin(addr, password string) *imapmemserver.User {
	key := strings.ToLower(addr)
	up.mu.Lock()
	defer up.mu.Unlock()
	want, ok := up.passwords[key]
	if !ok || !constantTimeEqual(want, password) {
		return nil
	}
	return up.users[key]
}

func (up *Upstream) user(addr string) *imapmemserver.User {
	up.mu.Lock()
	defer up.mu.Unlock()
	return up.users[strings.ToLower(addr)]
}

// Deliver puts raw into the INBOX of the local user rcpt, as final
// delivery would, bypassing SMTP (and its faults and records).
func (up *Upstream) Deliver(rcpt string, raw []byte) error {
	_, err := up.Append(rcpt, "INBOX", raw, nil)
	return err
}

// Append stores raw in mailbox of user, like an IMAP APPEND, and returns
// the UIDVALIDITY and UID it got. The mailbox must exist.
func (up *Upstream) Append(user, mailbox string, raw []byte, opts *imap.AppendOptions) (*imap.AppendData, error) {
	u := up.user(user)
	if u == nil {
		return nil, fmt.Errorf("append to %s of %s: %w", mailbox, user, ErrUnknownUser)
	}
	if opts == nil {
		opts = &imap.AppendOptions{}
	}
	data, err := u.Append(mailbox, literal{bytes.NewReader(raw)}, opts)
	if err != nil {
		return nil, fmt.Errorf("append to %s of %s: %w", mailbox, user, err)
	}
	return data, nil
}

// literal adapts a bytes.Reader to imap.LiteralReader.
type literal struct{ *bytes.Reader }

// Messages returns the messages in mailbox of user as the IMAP server
// holds them (read over an IMAP session of its own, so it sees what any
// client would, including APPENDs, flag changes and expunges).
func (up *Upstream) Messages(ctx context.Context, user, mailbox string) ([]Message, error) {
	up.mu.Lock()
	pw, ok := up.passwords[strings.ToLower(user)]
	up.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("messages of %s: %w", user, ErrUnknownUser)
	}
	msgs, err := FetchMessages(ctx, IMAPLogin{Addr: up.imap.inspectAddr, User: user, Password: pw}, mailbox)
	if err != nil {
		return nil, fmt.Errorf("messages of %s in %s: %w", user, mailbox, err)
	}
	return msgs, nil
}

// Close stops all listeners and closes open connections. It is safe to
// call more than once.
func (up *Upstream) Close() error {
	var errs []error
	up.closeMu.Do(func() {
		close(up.done)
		if up.smtp != nil {
			errs = append(errs, up.smtp.close())
		}
		if up.imap != nil {
			errs = append(errs, up.imap.close())
		}
	})
	return errors.Join(errs...)
}

// listen opens a TCP listener on addr; an empty addr means "not wanted".
func listen(addr string, cfg *tls.Config) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mailtest: listen %s: %w", addr, err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return ln, nil
}

// smtpReply converts a Reply to go-smtp's error type.
func smtpReply(r *Reply) *smtp.SMTPError {
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: r.Text}
}

// ServerTLS is a self-signed loopback server certificate for the
// harness's daemons and in-process servers.
type ServerTLS struct {
	CertFile string         // PEM certificate (also the trust anchor)
	KeyFile  string         // PEM private key
	Server   *tls.Config    // for servers
	Roots    *x509.CertPool // trusts exactly this certificate
	Cert     *x509.Certificate
}

// Client returns a client TLS config that trusts only this certificate.
func (s *ServerTLS) Client() *tls.Config {
	return &tls.Config{RootCAs: s.Roots, MinVersion: tls.VersionTLS12}
}

// NewServerTLS writes a self-signed certificate for localhost, 127.0.0.1
// and ::1 into dir (tls.crt, tls.key). The SAN carries 127.0.0.1 also as a
// DNS name because mbsync 1.4 ignores IP SANs.
func NewServerTLS(dir string) (*ServerTLS, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("server key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // self-signed trust anchor
		DNSNames:              []string{"localhost", "127.0.0.1"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal server key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	s := &ServerTLS{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"), Cert: cert}
	// The certificate is read by unprivileged tools (mbsync, msmtp); the
	// key only by the daemons' root parts.
	if err := os.WriteFile(s.CertFile, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", s.CertFile, err)
	}
	if err := os.WriteFile(s.KeyFile, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", s.KeyFile, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("server key pair: %w", err)
	}
	s.Server = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	s.Roots = x509.NewCertPool()
	s.Roots.AddCert(cert)
	return s, nil
}
