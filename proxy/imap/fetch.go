package imap

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
)

// FETCH runs in two steps. First the cheap items the client asked for,
// plus UID and RFC822.SIZE, for the whole set in one upstream command;
// for messages the Viewer has not cached, BODYSTRUCTURE and — when an
// answer depends on it — the header block in a second one. Then,
// message by message: a message the Viewer needs (S/MIME at the top
// level) is fetched whole (or found in the Viewer's cache), viewed, and
// every item is answered from the view's bytes; any other message has its
// header filtered and its body sections streamed from the upstream
// (BODY[] is the filtered header followed by the upstream's BODY[TEXT]).
//
// A message whose key is locked is left out of the response; the other
// messages are answered, then the command ends with NO [UNAVAILABLE]
// after an untagged OK [ALERT] naming the unlock URL. The client keeps
// nothing for the locked message and fetches it again later.

// headerSection is the upstream section of the header block.
var headerSection = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}

// errMessageLocked marks a message left out because the key is locked.
var errMessageLocked = errors.New("digital id locked")

func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	if !needsBody(options) {
		return s.fetchSimple(c, w, numSet, options)
	}
	// Step 1a: the cheap items of every message. A message the Viewer
	// has cached needs nothing more: everything comes from its view.
	first := &imap.FetchOptions{
		UID:          true,
		Flags:        options.Flags,
		InternalDate: options.InternalDate,
		Envelope:     options.Envelope,
		RFC822Size:   true,
		ModSeq:       options.ModSeq,
	}
	msgs, err := c.Fetch(numSet, first).Collect()
	if err != nil {
		return s.fail("FETCH", err)
	}
	cached := make(map[imap.UID]*View)
	var misses imap.UIDSet
	for _, m := range msgs {
		if v := s.p.viewer.Lookup(s.key(m.UID)); v != nil {
			cached[m.UID] = v
		} else {
			misses.AddNum(m.UID)
		}
	}
	// Step 1b: structure (and header) of the others.
	if len(misses) > 0 {
		second := &imap.FetchOptions{UID: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}
		if needsHeader(options) {
			second.BodySection = []*imap.FetchItemBodySection{headerSection}
		}
		bufs, err := s.collect(c.Fetch(misses, second))
		if err != nil {
			return s.fail("FETCH", err)
		}
		byUID := make(map[imap.UID]*imapclient.FetchMessageBuffer, len(bufs))
		for _, b := range bufs {
			byUID[b.UID] = b
		}
		for _, m := range msgs {
			if b := byUID[m.UID]; b != nil {
				m.BodyStructure, m.BodySection = b.BodyStructure, b.BodySection
			}
		}
	}
	return s.answer(c, w, msgs, cached, options)
}

// answer writes the client's FETCH responses for the messages of the
// first step: messages the Viewer has cached first, then the plain ones
// (upstream sections fetched for many messages in one command), then the
// ones to be fetched whole and viewed (one command for all of them).
func (s *session) answer(c *imapclient.Client, w *imapserver.FetchWriter, msgs []*imapclient.FetchMessageBuffer, views map[imap.UID]*View, options *imap.FetchOptions) error {
	var plain, whole, cachedMsgs []*imapclient.FetchMessageBuffer
	var cached []*View
	for _, m := range msgs {
		bs := m.BodyStructure
		switch {
		case views[m.UID] != nil:
			cached = append(cached, views[m.UID])
			cachedMsgs = append(cachedMsgs, m)
		case !validStructure(bs, 0):
			// A structure the proxy cannot trust or write back: learn it
			// from the message itself.
			m.BodyStructure = nil
			whole = append(whole, m)
		case s.p.viewer.Needed(bs) && m.RFC822Size > s.p.opts.MaxMessageBytes:
			s.log.Warn("S/MIME message larger than the limit passes unprocessed", "uid", m.UID, "size", m.RFC822Size)
			plain = append(plain, m)
		case s.p.viewer.Needed(bs):
			whole = append(whole, m)
		default:
			plain = append(plain, m)
		}
	}
	seen, err := s.markSeen(c, append(append([]*imapclient.FetchMessageBuffer(nil), plain...), cachedMsgs...), options)
	if err != nil {
		return s.fetchFailed(c, err)
	}
	for i, m := range cachedMsgs {
		rw := w.CreateMessage(m.SeqNum)
		writeCheap(rw, m, options, seen[m.UID])
		writeFromRaw(rw, cached[i].Raw, options)
		if err := rw.Close(); err != nil {
			return err
		}
	}
	if err := s.answerPlain(c, w, plain, options, seen); err != nil {
		return s.fetchFailed(c, err)
	}
	locked, failed, err := s.answerWhole(c, w, whole, options)
	if err != nil {
		return s.fetchFailed(c, err)
	}
	if locked {
		return s.lockedError()
	}
	if failed {
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeServerBug,
			Text: "Some messages could not be read (session " + s.id + ")",
		}
	}
	return nil
}

func (s *session) key(uid imap.UID) MessageKey {
	return MessageKey{User: s.user, Mailbox: s.mailbox, UIDValidity: s.uidValidity, UID: uid}
}

// fetchFailed ends a FETCH that cannot go on.
func (s *session) fetchFailed(c *imapclient.Client, err error) error {
	var imapErr *imap.Error
	switch {
	case errors.Is(err, errStreamBroken):
		// A literal went out short: the client's stream cannot be
		// repaired, only ended.
		s.log.Warn("fetch stream broken", "err", err)
		s.conn.NetConn().Close()
		return s.fail("FETCH", err)
	case errors.As(err, &imapErr):
		return err
	case isConnError(err) || errors.Is(err, errUpstreamBroken) || isClosed(c):
		return s.fail("FETCH", fmt.Errorf("%w: %w", errUpstreamBroken, err))
	default:
		// A client write error: the connection is gone.
		return err
	}
}

// collect is FetchCommand.Collect for responses with header literals,
// safe when a literal is cut short (see guardedLit). Headers are at most
// MaxMessageBytes each.
func (s *session) collect(cmd *imapclient.FetchCommand) ([]*imapclient.FetchMessageBuffer, error) {
	var out []*imapclient.FetchMessageBuffer
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		buf := &imapclient.FetchMessageBuffer{SeqNum: msg.SeqNum}
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				buf.UID = item.UID
			case imapclient.FetchItemDataBodyStructure:
				buf.BodyStructure = item.BodyStructure
			case imapclient.FetchItemDataRFC822Size:
				buf.RFC822Size = item.Size
			case imapclient.FetchItemDataBodySection:
				var b []byte
				if item.Literal != nil {
					g := &guardedLit{r: item.Literal}
					if item.Literal.Size() > s.p.opts.MaxMessageBytes {
						s.abortUpstream(g)
						return nil, fmt.Errorf("header of %d bytes: %w", item.Literal.Size(), errUpstreamBroken)
					}
					b = make([]byte, item.Literal.Size())
					if _, err := io.ReadFull(g, b); err != nil && len(b) > 0 {
						s.abortUpstream(g)
						return nil, fmt.Errorf("read header: %w: %w", errUpstreamBroken, err)
					}
				}
				buf.BodySection = append(buf.BodySection, imapclient.FetchBodySectionBuffer{Section: item.Section, Bytes: b})
			}
		}
		out = append(out, buf)
	}
	if err := cmd.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// fetchSimple passes a FETCH that asks for nothing of the message's
// content (UID, FLAGS, INTERNALDATE, MODSEQ) straight through.
func (s *session) fetchSimple(c *imapclient.Client, w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	cmd := c.Fetch(numSet, options)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		buf, err := msg.Collect()
		if err != nil {
			cmd.Close()
			return s.fail("FETCH", err)
		}
		rw := w.CreateMessage(buf.SeqNum)
		writeCheap(rw, buf, options, buf.Flags)
		if err := rw.Close(); err != nil {
			cmd.Close()
			return err
		}
	}
	if err := cmd.Close(); err != nil {
		return s.fail("FETCH", err)
	}
	return nil
}

// writeCheap writes UID, FLAGS, INTERNALDATE as the upstream gave them.
func writeCheap(rw *imapserver.FetchResponseWriter, m *imapclient.FetchMessageBuffer, options *imap.FetchOptions, flags []imap.Flag) {
	if options.UID {
		rw.WriteUID(m.UID)
	}
	if options.Flags || flags != nil && !sameFlags(flags, m.Flags) {
		if flags == nil {
			flags = []imap.Flag{}
		}
		rw.WriteFlags(flags)
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.InternalDate)
	}
}

func sameFlags(a, b []imap.Flag) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(string(a[i]), string(b[i])) {
			return false
		}
	}
	return true
}

func needsBody(o *imap.FetchOptions) bool {
	return len(o.BodySection) > 0 || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 ||
		o.RFC822Size || o.Envelope || o.BodyStructure != nil
}

// needsHeader reports whether an answer depends on the filtered header
// of a plain message.
func needsHeader(o *imap.FetchOptions) bool {
	if o.RFC822Size {
		return true
	}
	for _, sec := range o.BodySection {
		if len(sec.Part) == 0 && sec.Specifier != imap.PartSpecifierText {
			return true
		}
	}
	for _, sec := range o.BinarySection {
		if len(sec.Part) == 0 {
			return true
		}
	}
	for _, sec := range o.BinarySectionSize {
		if len(sec.Part) == 0 {
			return true
		}
	}
	return false
}

// setsSeen reports whether answering sets \Seen (a non-PEEK section).
func setsSeen(o *imap.FetchOptions) bool {
	for _, sec := range o.BodySection {
		if !sec.Peek {
			return true
		}
	}
	for _, sec := range o.BinarySection {
		if !sec.Peek {
			return true
		}
	}
	return false
}

// markSeen sets \Seen upstream, in one STORE, on the messages that lack
// it when the client's FETCH is not PEEK, and returns every message's
// flags as the client should see them.
func (s *session) markSeen(c *imapclient.Client, msgs []*imapclient.FetchMessageBuffer, options *imap.FetchOptions) (map[imap.UID][]imap.Flag, error) {
	out := make(map[imap.UID][]imap.Flag, len(msgs))
	for _, m := range msgs {
		out[m.UID] = m.Flags
	}
	if !s.setsSeen(options) {
		return out, nil
	}
	var unseen imap.UIDSet
	for _, m := range msgs {
		if !slices.Contains(m.Flags, imap.FlagSeen) {
			unseen.AddNum(m.UID)
		}
	}
	if len(unseen) == 0 {
		return out, nil
	}
	bufs, err := c.Store(unseen, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		out[m.UID] = withSeen(m.Flags)
	}
	for _, b := range bufs {
		if b.UID != 0 && b.Flags != nil {
			out[b.UID] = b.Flags
		}
	}
	return out, nil
}

func (s *session) readOnly() bool { return s.examined }

// setsSeen reports whether the client's FETCH sets \Seen: not PEEK, on a
// mailbox opened read-write.
func (s *session) setsSeen(o *imap.FetchOptions) bool { return setsSeen(o) && !s.readOnly() }

// withSeen returns flags with \Seen added when it lacks it (a copy; flags
// itself is left alone).
func withSeen(flags []imap.Flag) []imap.Flag {
	if slices.Contains(flags, imap.FlagSeen) {
		return flags
	}
	return append(slices.Clone(flags), imap.FlagSeen)
}
