package imap

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
)

var errTooBig = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeTooBig,
	Text: "Message too big",
}

// Append streams the client's literal to the upstream; messages for Sent
// or Drafts go through Options.AppendTransform first (held in memory, at
// most MaxMessageBytes).
func (s *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	if r.Size() > s.p.opts.MaxMessageBytes {
		return nil, errTooBig
	}
	var body io.Reader = r
	size := r.Size()
	if s.p.opts.AppendTransform != nil && s.isSentOrDrafts(mailbox) {
		raw, err := io.ReadAll(io.LimitReader(r, s.p.opts.MaxMessageBytes+1))
		if err != nil {
			s.log.Warn("read APPEND literal", "err", err)
			return nil, s.unavailable()
		}
		if int64(len(raw)) != r.Size() {
			return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Truncated literal"}
		}
		out, err := s.p.opts.AppendTransform(s.ctx, s.user, mailbox, raw)
		if err != nil {
			return nil, s.appendTransformFailed(err)
		}
		body, size = bytes.NewReader(out), int64(len(out))
	}
	cmd := c.Append(mailbox, size, options)
	n, err := io.Copy(cmd, body)
	if err == nil && n != size {
		err = fmt.Errorf("append: %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		// The upstream literal cannot be finished: the connection is
		// unusable, and the message must not be stored half.
		s.abortUpstream(nil)
		s.log.Warn("APPEND aborted", "err", err)
		return nil, s.unavailable()
	}
	if err := cmd.Close(); err != nil {
		return nil, s.fail("APPEND", err)
	}
	data, err := cmd.Wait()
	if err != nil {
		return nil, s.fail("APPEND", err)
	}
	if data.UIDValidity == 0 {
		return nil, nil // no UIDPLUS upstream: no APPENDUID
	}
	return data, nil
}

// appendTransformFailed answers an APPEND whose message could not be
// prepared; a locked Digital ID names the unlock URL.
func (s *session) appendTransformFailed(err error) error {
	if isLocked(err) {
		return s.lockedError()
	}
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return imapErr
	}
	s.log.Warn("APPEND transform failed", "err", err)
	return &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeCannot,
		Text: "The message could not be stored encrypted (session " + s.id + ")",
	}
}
