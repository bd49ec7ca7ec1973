package imap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// errStreamBroken means a literal was announced to the client and could
// not be completed: the client connection must close.
var errStreamBroken = errors.New("response stream broken")

// errUpstreamBroken means the upstream connection cannot be used any more.
var errUpstreamBroken = errors.New("upstream connection unusable")

// wholeSection is the upstream section of the whole message.
var wholeSection = &imap.FetchItemBodySection{Peek: true}

// answerWhole answers messages from bytes held whole, fetched for all of
// them in one upstream command: the Viewer's view of an S/MIME message, or
// — when the upstream's structure was unusable (BodyStructure nil) — the
// message itself, viewed if its own structure says it is S/MIME,
// header-filtered otherwise. It reports whether a message was left out for
// a locked key or for another failure.
//
// Views (decryption, verification) run beside the reading of the next
// messages, up to one per core (at most maxViewsAtOnce), and are answered
// in the order the upstream sent them. Only messages up to
// parallelViewMax share that pipeline; a larger one is viewed alone, so
// at most one large message is in memory at a time.
func (s *session) answerWhole(c *imapclient.Client, w *imapserver.FetchWriter, msgs []*imapclient.FetchMessageBuffer, options *imap.FetchOptions) (locked, failed bool, err error) {
	if len(msgs) == 0 {
		return false, false, nil
	}
	var uids imap.UIDSet
	byUID := make(map[imap.UID]*imapclient.FetchMessageBuffer, len(msgs))
	bySeq := make(map[uint32]*imapclient.FetchMessageBuffer, len(msgs))
	for _, m := range msgs {
		uids.AddNum(m.UID)
		byUID[m.UID] = m
		bySeq[m.SeqNum] = m
	}
	answered := make(map[imap.UID]bool, len(msgs))
	views := min(runtime.GOMAXPROCS(0), maxViewsAtOnce)
	// \Seen is set upstream in one STORE once the upstream FETCH has
	// ended: a STORE sent while it still streams would wait behind it,
	// and the FETCH behind the STORE's reply, for good. The answers carry
	// the flags the messages have once it is set.
	marking := s.setsSeen(options)
	var toMark imap.UIDSet
	var queue []*viewJob
	defer func() {
		for _, j := range queue { // on an early return: no view outlives the command
			<-j.done
		}
	}()
	// answerOldest waits for the oldest view and answers it.
	answerOldest := func() error {
		j := queue[0]
		<-j.done
		queue = queue[1:]
		switch {
		case errors.Is(j.err, errMessageLocked):
			locked = true
			return nil
		case j.err != nil:
			s.log.Warn("view message", "uid", j.m.UID, "err", j.err)
			failed = true
			return nil
		}
		flags := j.m.Flags
		if marking && !slices.Contains(flags, imap.FlagSeen) {
			flags = withSeen(flags)
			toMark.AddNum(j.m.UID)
		}
		rw := w.CreateMessage(j.m.SeqNum)
		writeCheap(rw, j.m, options, flags)
		writeFromRaw(rw, j.view, options)
		return rw.Close()
	}
	cmd := c.Fetch(uids, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{wholeSection}})
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		m, raw, err := s.readWhole(msg, byUID, bySeq)
		if err != nil {
			return false, false, err // the command is abandoned: see guardedLit
		}
		if m == nil || answered[m.UID] {
			continue
		}
		answered[m.UID] = true
		large := len(raw) > parallelViewMax
		for len(queue) > 0 && (large || len(queue) >= views) {
			if err := answerOldest(); err != nil {
				cmd.Close()
				return false, false, err
			}
		}
		j := &viewJob{m: m, done: make(chan struct{})}
		key := s.key(m.UID)
		go func() {
			defer close(j.done)
			j.view, j.err = s.viewWhole(m, raw, key)
		}()
		queue = append(queue, j)
		for len(queue) > 0 && (large || queue[0].finished()) {
			if err := answerOldest(); err != nil {
				cmd.Close()
				return false, false, err
			}
		}
	}
	for len(queue) > 0 {
		if err := answerOldest(); err != nil {
			cmd.Close()
			return false, false, err
		}
	}
	if err := cmd.Close(); err != nil {
		return false, false, err
	}
	if len(toMark) > 0 {
		store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}
		if err := c.Store(toMark, store, nil).Close(); err != nil {
			return false, false, err
		}
	}
	return locked, failed, nil
}

// maxViewsAtOnce bounds the views one FETCH runs at the same time, and
// parallelViewMax the size of a message viewed beside others.
const (
	maxViewsAtOnce  = 4
	parallelViewMax = 1 << 20
)

// viewJob is one message being viewed.
type viewJob struct {
	m    *imapclient.FetchMessageBuffer
	view []byte
	err  error
	done chan struct{} // closed when view and err are set
}

// finished reports whether the view is done, without waiting.
func (j *viewJob) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// readWhole reads one message's BODY[] from the upstream response, at
// most MaxMessageBytes.
func (s *session) readWhole(msg *imapclient.FetchMessageData, byUID map[imap.UID]*imapclient.FetchMessageBuffer, bySeq map[uint32]*imapclient.FetchMessageBuffer) (*imapclient.FetchMessageBuffer, []byte, error) {
	var m *imapclient.FetchMessageBuffer
	var raw []byte
	for item := msg.Next(); item != nil; item = msg.Next() {
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			if m == nil {
				m = byUID[item.UID]
			}
		case imapclient.FetchItemDataBodySection:
			if !item.MatchCommand(wholeSection) || raw != nil || item.Literal == nil {
				continue
			}
			if m == nil {
				m = bySeq[msg.SeqNum]
			}
			g := &guardedLit{r: item.Literal}
			if item.Literal.Size() > s.p.opts.MaxMessageBytes {
				// The upstream said RFC822.SIZE was within the limit; the
				// literal is not. Reading it away could take forever.
				s.abortUpstream(g)
				return nil, nil, fmt.Errorf("message: %d bytes exceed the limit of %d: %w", item.Literal.Size(), s.p.opts.MaxMessageBytes, errUpstreamBroken)
			}
			// One allocation of the announced size: a 25 MB message costs
			// 25 MB here, not the doubling of a growing buffer.
			b := make([]byte, item.Literal.Size())
			_, err := io.ReadFull(g, b)
			if err == io.EOF && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				s.abortUpstream(g)
				return nil, nil, fmt.Errorf("read message: %w: %w", errUpstreamBroken, err)
			}
			raw = b
		}
	}
	if m == nil || raw == nil {
		return nil, nil, nil
	}
	return m, raw, nil
}

// viewWhole returns the bytes the client receives for a message held
// whole.
func (s *session) viewWhole(m *imapclient.FetchMessageBuffer, raw []byte, key MessageKey) ([]byte, error) {
	needed := m.BodyStructure != nil
	if !needed {
		needed = s.p.viewer.Needed(imapserver.ExtractBodyStructure(bytes.NewReader(raw)))
	}
	if !needed {
		n := splitHeader(raw)
		return append(s.p.viewer.FilterHeader(raw[:n:n]), raw[n:]...), nil
	}
	v, err := s.p.viewer.View(s.ctx, key, raw)
	if isLocked(err) {
		return nil, errMessageLocked
	}
	if err != nil {
		return nil, fmt.Errorf("view message %d: %w", m.UID, err)
	}
	return v.Raw, nil
}

// guardedLit reads an upstream literal and remembers its first error.
// imapclient (v2.0.0-beta.8) lets its reader go on once a literal read
// fails, so reading that literal again — which FetchCommand.Close and
// FetchMessageData.Next do to discard it — races with the reader. After
// an error the proxy therefore abandons the command (abortUpstream)
// instead of closing it.
type guardedLit struct {
	r   imap.LiteralReader
	err error
}

func (g *guardedLit) Read(b []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(b)
	if err != nil {
		g.err = err
	}
	return n, err
}

// writeFromRaw answers every content item from raw, the bytes the client
// receives as BODY[]: sizes, structure and envelope are computed from
// them, so they always agree with each other.
func writeFromRaw(rw *imapserver.FetchResponseWriter, raw []byte, options *imap.FetchOptions) {
	if options.RFC822Size {
		rw.WriteRFC822Size(int64(len(raw)))
	}
	if options.Envelope {
		h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
		rw.WriteEnvelope(imapserver.ExtractEnvelope(h))
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(withExtended(imapserver.ExtractBodyStructure(bytes.NewReader(raw))))
	}
	n := splitHeader(raw)
	for _, sec := range options.BodySection {
		var b []byte
		switch {
		case len(sec.Part) == 0 && sec.Specifier == imap.PartSpecifierNone:
			b = partial(raw, sec.Partial)
		case len(sec.Part) == 0 && sec.Specifier == imap.PartSpecifierHeader && sec.HeaderFields == nil && sec.HeaderFieldsNot == nil:
			b = partial(raw[:n], sec.Partial)
		case len(sec.Part) == 0 && sec.Specifier == imap.PartSpecifierText:
			b = partial(raw[n:], sec.Partial)
		default:
			b = imapserver.ExtractBodySection(bytes.NewReader(raw), sec)
		}
		writeBytes(rw.WriteBodySection(sec, int64(len(b))), b)
	}
	for _, sec := range options.BinarySection {
		var b []byte
		if len(sec.Part) == 0 {
			b = partial(raw, sec.Partial)
		} else {
			b = imapserver.ExtractBinarySection(bytes.NewReader(raw), sec)
		}
		writeBytes(rw.WriteBinarySection(sec, int64(len(b))), b)
	}
	for _, sec := range options.BinarySectionSize {
		if len(sec.Part) == 0 {
			rw.WriteBinarySectionSize(sec, uint32(len(raw)))
		} else {
			rw.WriteBinarySectionSize(sec, imapserver.ExtractBinarySectionSize(bytes.NewReader(raw), sec))
		}
	}
}

// writeBytes writes a literal; its errors surface on the response's Close.
func writeBytes(wc io.WriteCloser, b []byte) {
	wc.Write(b)
	wc.Close()
}

func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	if p.Offset >= int64(len(b)) {
		return nil
	}
	return b[p.Offset:min(p.Offset+p.Size, int64(len(b)))]
}
