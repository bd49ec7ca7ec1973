package imap

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"smimeproxy/identity"
)

func isClosed(c *imapclient.Client) bool {
	select {
	case <-c.Closed():
		return true
	default:
		return false
	}
}

func isLocked(err error) bool { return errors.Is(err, identity.ErrLocked) }

// lockedError sends the untagged [ALERT] with the unlock URL and returns
// the NO [UNAVAILABLE] that ends the command. imapserver offers no writer
// for an untagged OK; between responses its buffer is flushed (every
// response ends with a flushed CRLF) and only this goroutine writes, so
// the line goes to the connection directly.
func (s *session) lockedError() error {
	url := ""
	if s.p.opts.UnlockURL != nil {
		url = s.p.opts.UnlockURL(s.user)
	}
	url = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == ']' {
			return -1
		}
		return r
	}, url)
	text := "Your Digital ID is locked. Unlock it at " + url + " and try again."
	if url == "" {
		text = "Your Digital ID is locked. Unlock it and try again."
	}
	if _, err := fmt.Fprintf(s.conn.NetConn(), "* OK [ALERT] %s\r\n", text); err != nil {
		return err
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: text}
}
