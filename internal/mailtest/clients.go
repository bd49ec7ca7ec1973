package mailtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
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
