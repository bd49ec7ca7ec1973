package imap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

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

// fetchWhole answers a message from bytes held whole: the Viewer's view
// of an S/MIME message (bs != nil), or — when the upstream's structure
// was unusable (bs == nil) — the message itself, viewed if its own
// structure says it is S/MIME, header-filtered otherwise.
func (s *session) fetchWhole(c *imapclient.Client, w *imapserver.FetchWriter, m *imapclient.FetchMessageBuffer, options *imap.FetchOptions, key MessageKey, bs imap.BodyStructure) error {
	var raw []byte
	if bs != nil {
		if v := s.p.viewer.Lookup(key); v != nil {
			raw = v.Raw
		}
	}
	if raw == nil {
		up, err := s.fetchRaw(c, m.UID)
		if err != nil {
			return err
		}
		needed := bs != nil
		if bs == nil {
			needed = s.p.viewer.Needed(imapserver.ExtractBodyStructure(bytes.NewReader(up)))
		}
		if needed {
			v, err := s.p.viewer.View(s.ctx, key, up)
			if isLocked(err) {
				return errMessageLocked
			}
			if err != nil {
				return fmt.Errorf("view message %d: %w", m.UID, err)
			}
			raw = v.Raw
		} else {
			n := splitHeader(up)
			raw = append(s.p.viewer.FilterHeader(up[:n:n]), up[n:]...)
		}
	}
	flags, err := s.markSeen(c, m, options)
	if err != nil {
		return err
	}
	if flags == nil {
		flags = m.Flags
	}
	rw := w.CreateMessage(m.SeqNum)
	writeCheap(rw, m, options, flags)
	writeFromRaw(rw, raw, options)
	return rw.Close()
}

// fetchRaw downloads BODY.PEEK[] of uid, at most MaxMessageBytes.
func (s *session) fetchRaw(c *imapclient.Client, uid imap.UID) ([]byte, error) {
	cmd := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{wholeSection}})
	var raw []byte
	found := false
	if msg := cmd.Next(); msg != nil {
		for item := msg.Next(); item != nil; item = msg.Next() {
			sec, ok := item.(imapclient.FetchItemDataBodySection)
			if !ok || !sec.MatchCommand(wholeSection) || found {
				continue
			}
			found = true
			if sec.Literal == nil {
				continue
			}
			g := &guardedLit{r: sec.Literal}
			if sec.Literal.Size() > s.p.opts.MaxMessageBytes {
				// The upstream said RFC822.SIZE was within the limit; the
				// literal is not. Reading it away could take forever.
				s.abortUpstream(g)
				return nil, fmt.Errorf("message %d: %d bytes exceed the limit of %d: %w", uid, sec.Literal.Size(), s.p.opts.MaxMessageBytes, errUpstreamBroken)
			}
			b, err := io.ReadAll(g)
			if err == nil && int64(len(b)) != sec.Literal.Size() {
				err = io.ErrUnexpectedEOF // imapwire reports a cut literal as its end
			}
			if err != nil {
				s.abortUpstream(g)
				return nil, fmt.Errorf("read message %d: %w: %w", uid, errUpstreamBroken, err)
			}
			raw = b
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("message %d: upstream sent no body", uid)
	}
	return raw, nil
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
