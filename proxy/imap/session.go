package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
)

// session is one client connection and its upstream connection.
// imapserver calls its methods from the connection's goroutine, one
// command at a time; only the unilateral-data handlers of the upstream
// client run elsewhere, and they touch nothing but the update queue.
type session struct {
	p      *Proxy
	conn   *imapserver.Conn
	id     string
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	up     *imapclient.Client // nil until LOGIN succeeds
	upConn net.Conn           // its TCP connection, for abortUpstream
	watch  *watchdog          // bounds the upstream's silence; nil until dialled
	user   string

	// selected mailbox (upstream name and UIDVALIDITY)
	mailbox     string
	uidValidity uint32
	examined    bool // EXAMINE: no flag changes

	// talked is set by every command that reached the upstream since the
	// last Poll: Poll then has no need to ask the upstream for news.
	talked bool
	// special maps special-use attributes (\Sent, \Drafts) to upstream
	// mailbox names, learned from LIST responses.
	special map[imap.MailboxAttr]string

	mu     sync.Mutex
	queue  []update
	notify chan struct{}
}

// update is one unilateral response from the upstream, queued until the
// client may receive it (after its command, or during IDLE).
type update struct {
	expunge      uint32
	exists       *uint32
	mailboxFlags []imap.Flag
	fetchSeq     uint32
	fetchUID     imap.UID
	fetchFlags   []imap.Flag
}

var (
	_ imapserver.Session               = (*session)(nil)
	_ imapserver.SessionIMAP4rev2      = (*session)(nil)
	_ imapserver.SessionUnauthenticate = (*session)(nil)
	_ imapserver.SessionAppendLimit    = (*session)(nil)
)

// Fixed replies: nothing of an internal error reaches the client; the
// session id lets an administrator find the cause in the log.
func (s *session) unavailable() *imap.Error {
	return &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeUnavailable,
		Text: "The mail server cannot be reached right now; try again later (session " + s.id + ")",
	}
}

// fail turns an error of an upstream command into the client's reply. A
// NO or BAD of the upstream is its answer to the client's own command and
// passes on (type, response code and text); anything else — a broken
// connection, a parse error — is logged and answered with a fixed text.
func (s *session) fail(op string, err error) error {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return imapErr
	}
	if s.watch.expired() {
		s.log.Warn("upstream silent too long; connection closed", "op", op, "timeout", s.p.opts.CommandTimeout)
	}
	s.log.Warn("upstream command failed", "op", op, "err", err)
	if s.up != nil && (isConnError(err) || errors.Is(err, errUpstreamBroken)) {
		s.up.Close()
	}
	return s.unavailable()
}

func isConnError(err error) bool {
	var netErr net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &netErr)
}

// client returns the upstream connection of a logged-in session.
func (s *session) client() (*imapclient.Client, error) {
	if s.up == nil {
		return nil, s.unavailable()
	}
	select {
	case <-s.up.Closed():
		// Nothing more can work on this connection: a BYE makes the
		// client reconnect (and log in again upstream).
		s.log.Warn("upstream connection closed")
		s.conn.Bye("Connection to the mail server lost; reconnect (session " + s.id + ")")
		return nil, s.unavailable()
	default:
	}
	s.talked = true
	s.watch.arm()
	return s.up, nil
}

func (s *session) Close() error {
	s.cancel()
	if up := s.up; up != nil {
		// A polite LOGOUT, but never wait long for it.
		done := make(chan struct{})
		go func() { up.Logout().Wait(); close(done) }() //nolint:errcheck
		select {
		case <-done:
		case <-up.Closed():
		case <-time.After(2 * time.Second):
		}
		up.Close()
	}
	return nil
}

// Login forwards the credentials to the upstream, which stays the
// authority; AUTHENTICATE PLAIN arrives here too (imapserver decodes it).
func (s *session) Login(username, password string) error {
	if s.up != nil {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Already logged in"}
	}
	c, conn, err := s.p.dialUpstream(s.ctx, s.unilateralHandler())
	if err != nil {
		s.log.Warn("upstream unavailable at login", "err", err)
		return s.unavailable()
	}
	s.watch = &watchdog{conn: conn, timeout: s.p.opts.CommandTimeout}
	go s.watch.run(c.Closed())
	s.watch.arm()
	err = c.Login(username, password).Wait()
	s.watch.disarm()
	if err != nil {
		c.Close()
		if s.watch.expired() {
			s.log.Warn("upstream silent at login; connection closed", "timeout", s.p.opts.CommandTimeout)
			return s.unavailable()
		}
		var imapErr *imap.Error
		if errors.As(err, &imapErr) {
			s.log.Info("login refused by upstream", "user", username, "code", imapErr.Code)
			if imapErr.Code == imap.ResponseCodeUnavailable {
				return s.unavailable()
			}
			return imapserver.ErrAuthFailed
		}
		s.log.Warn("upstream login failed", "err", err)
		return s.unavailable()
	}
	s.up, s.upConn, s.user = c, conn, username
	s.log = s.log.With("user", username)
	s.log.Info("logged in")
	return nil
}

// abortUpstream ends the upstream connection in the middle of a
// command: the socket closes first (nothing more reaches the upstream, so
// a half-sent APPEND is never completed), then lit — the literal being
// read, if any — is read to its first error so imapclient's reader, which
// waits until a literal is consumed, can stop.
func (s *session) abortUpstream(lit *guardedLit) {
	if s.upConn != nil {
		s.upConn.Close()
	}
	if lit != nil && lit.err == nil {
		io.Copy(io.Discard, lit)
	}
	if s.up != nil {
		s.up.Close()
	}
}

func (s *session) Unauthenticate() error {
	if s.up != nil {
		s.up.Logout().Wait() //nolint:errcheck // the connection goes either way
		s.up.Close()
	}
	s.up, s.user, s.mailbox, s.uidValidity = nil, "", "", 0
	s.mu.Lock()
	s.queue = nil
	s.mu.Unlock()
	return nil
}

func (s *session) AppendLimit() uint32 {
	if s.p.opts.MaxMessageBytes > int64(^uint32(0)) {
		return ^uint32(0)
	}
	return uint32(s.p.opts.MaxMessageBytes)
}

func (s *session) Namespace() (*imap.NamespaceData, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	if !c.Caps().Has(imap.CapNamespace) && !c.Caps().Has(imap.CapIMAP4rev2) {
		// RFC 2342 §5: a server without namespaces has one personal
		// namespace, the empty prefix.
		delim := s.delimiter(c)
		return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Delim: delim}}}, nil
	}
	data, err := c.Namespace().Wait()
	if err != nil {
		return nil, s.fail("NAMESPACE", err)
	}
	return data, nil
}

func (s *session) delimiter(c *imapclient.Client) rune {
	l, err := c.List("", "", nil).Collect()
	if err != nil || len(l) == 0 {
		return '/'
	}
	return l[0].Delim
}

func (s *session) Create(mailbox string, options *imap.CreateOptions) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	if err := c.Create(mailbox, options).Wait(); err != nil {
		return s.fail("CREATE", err)
	}
	return nil
}

func (s *session) Delete(mailbox string) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	if err := c.Delete(mailbox).Wait(); err != nil {
		return s.fail("DELETE", err)
	}
	return nil
}

func (s *session) Rename(mailbox, newName string, options *imap.RenameOptions) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	if err := c.Rename(mailbox, newName, options).Wait(); err != nil {
		return s.fail("RENAME", err)
	}
	return nil
}

func (s *session) Subscribe(mailbox string) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	if err := c.Subscribe(mailbox).Wait(); err != nil {
		return s.fail("SUBSCRIBE", err)
	}
	return nil
}

func (s *session) Unsubscribe(mailbox string) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	if err := c.Unsubscribe(mailbox).Wait(); err != nil {
		return s.fail("UNSUBSCRIBE", err)
	}
	return nil
}

// List passes LIST and LSUB (imapserver turns LSUB into LIST with
// SelectSubscribed) pattern by pattern, and remembers which mailboxes are
// \Sent and \Drafts for APPEND.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	if options != nil && *options == (imap.ListOptions{}) {
		options = nil
	}
	for _, pattern := range patterns {
		cmd := c.List(ref, pattern, options)
		for {
			data := cmd.Next()
			if data == nil {
				break
			}
			s.learnSpecialUse(data)
			if err := w.WriteList(data); err != nil {
				cmd.Close()
				return err
			}
		}
		if err := cmd.Close(); err != nil {
			return s.fail("LIST", err)
		}
	}
	return nil
}

func (s *session) learnSpecialUse(data *imap.ListData) {
	for _, attr := range data.Attrs {
		if attr == imap.MailboxAttrSent || attr == imap.MailboxAttrDrafts {
			if s.special == nil {
				s.special = make(map[imap.MailboxAttr]string)
			}
			s.special[attr] = data.Mailbox
		}
	}
}

func (s *session) Status(mailbox string, options *imap.StatusOptions) (*imap.StatusData, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	// imapclient panics on RECENT (gone in IMAP4rev2), which IMAP4rev1
	// clients still ask for: the upstream is not asked, and the client
	// gets 0, which RFC 3501 allows (no session sees a message first).
	up := *options
	up.NumRecent = false
	data, err := c.Status(mailbox, &up).Wait()
	if err != nil {
		return nil, s.fail("STATUS", err)
	}
	if options.NumRecent && data != nil {
		var zero uint32
		data.NumRecent = &zero
	}
	if !statusComplete(data, options) {
		// imapserver dereferences every requested item; an upstream that
		// leaves one out gets the client a NO instead of a dropped session.
		s.log.Warn("upstream STATUS response lacks requested items", "mailbox", mailbox)
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "The mail server sent no status for this mailbox"}
	}
	return data, nil
}

// statusComplete reports whether data holds every item options asks for
// that imapserver writes through a pointer.
func statusComplete(data *imap.StatusData, o *imap.StatusOptions) bool {
	if data == nil {
		return false
	}
	return !(o.NumMessages && data.NumMessages == nil || o.NumUnseen && data.NumUnseen == nil ||
		o.NumDeleted && data.NumDeleted == nil || o.Size && data.Size == nil ||
		o.DeletedStorage && data.DeletedStorage == nil || o.NumRecent && data.NumRecent == nil)
}

// isSentOrDrafts reports whether APPENDs to mailbox go through
// AppendTransform: the upstream's \Sent and \Drafts mailboxes, or — when
// it announced neither — mailboxes named Sent or Drafts (any case, also
// as the last level of a hierarchy such as INBOX.Sent).
func (s *session) isSentOrDrafts(mailbox string) bool {
	if s.special == nil {
		if c, err := s.client(); err == nil {
			// LIST "" "*" RETURN (SPECIAL-USE) would need LIST-EXTENDED;
			// plain LIST carries the attributes on servers with SPECIAL-USE.
			if l, err := c.List("", "*", nil).Collect(); err == nil {
				for _, d := range l {
					s.learnSpecialUse(d)
				}
			}
		}
		if s.special == nil {
			s.special = map[imap.MailboxAttr]string{}
		}
	}
	if len(s.special) > 0 {
		for _, name := range s.special {
			if strings.EqualFold(name, mailbox) {
				return true
			}
		}
		return false
	}
	last := mailbox
	if i := strings.LastIndexAny(mailbox, "./"); i >= 0 {
		last = mailbox[i+1:]
	}
	switch strings.ToLower(last) {
	case "sent", "drafts", "sent items", "sent messages":
		return true
	}
	return false
}

func (s *session) String() string { return fmt.Sprintf("session %s", s.id) }
