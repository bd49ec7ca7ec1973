package imap

import (
	"bytes"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
)

// plainItem is one body item of the client's FETCH answered for a plain
// message: prefix (from the filtered header) followed by an upstream
// section, if any.
type plainItem struct {
	body   *imap.FetchItemBodySection   // client's item, or
	binary *imap.FetchItemBinarySection // client's item
	prefix []byte
	up     int // index into the upstream request, -1: prefix only
}

// upstreamReq collects the sections asked of the upstream, once each.
type upstreamReq struct {
	body   []*imap.FetchItemBodySection
	binary []*imap.FetchItemBinarySection
	sizes  []*imap.FetchItemBinarySectionSize
	users  map[int]int // index (body, then binary) → number of items using it
}

func (r *upstreamReq) addBody(sec *imap.FetchItemBodySection) int {
	for i, b := range r.body {
		if sameBodySection(b, sec) {
			r.users[i]++
			return i
		}
	}
	r.body = append(r.body, sec)
	r.users[len(r.body)-1]++
	return len(r.body) - 1
}

func (r *upstreamReq) addBinary(sec *imap.FetchItemBinarySection) int {
	r.binary = append(r.binary, sec)
	i := 1<<20 + len(r.binary) - 1
	r.users[i]++
	return i
}

func sameBodySection(a, b *imap.FetchItemBodySection) bool {
	return fmt.Sprint(a.Part, a.Specifier, a.HeaderFields, a.HeaderFieldsNot, a.Partial) ==
		fmt.Sprint(b.Part, b.Specifier, b.HeaderFields, b.HeaderFieldsNot, b.Partial)
}

// fetchPlain answers a message that streams through: header items from
// the filtered header, the rest from upstream sections.
func (s *session) fetchPlain(c *imapclient.Client, w *imapserver.FetchWriter, m *imapclient.FetchMessageBuffer, options *imap.FetchOptions) error {
	header := m.FindBodySection(headerSection)
	filtered := header
	if header != nil {
		filtered = s.p.viewer.FilterHeader(header)
	}
	removed := int64(len(header) - len(filtered))
	textSize := m.RFC822Size - int64(len(header))
	if textSize < 0 {
		textSize = 0
	}

	req := &upstreamReq{users: map[int]int{}}
	var items []plainItem
	for _, sec := range options.BodySection {
		switch {
		case len(sec.Part) == 0 && sec.Specifier == imap.PartSpecifierNone:
			prefix, text, needText := splitPartial(filtered, textSize, sec.Partial)
			it := plainItem{body: sec, prefix: prefix, up: -1}
			if needText {
				it.up = req.addBody(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true, Partial: text})
			}
			items = append(items, it)
		case len(sec.Part) == 0 && sec.Specifier == imap.PartSpecifierHeader:
			b := imapserver.ExtractBodySection(bytes.NewReader(filtered), sec)
			items = append(items, plainItem{body: sec, prefix: b, up: -1})
		default:
			up := *sec
			up.Peek = true
			items = append(items, plainItem{body: sec, up: req.addBody(&up)})
		}
	}
	for _, sec := range options.BinarySection {
		if len(sec.Part) == 0 {
			prefix, text, needText := splitPartial(filtered, textSize, sec.Partial)
			it := plainItem{binary: sec, prefix: prefix, up: -1}
			if needText {
				it.up = req.addBody(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true, Partial: text})
			}
			items = append(items, it)
			continue
		}
		up := *sec
		up.Peek = true
		items = append(items, plainItem{binary: sec, up: req.addBinary(&up)})
	}
	for _, sec := range options.BinarySectionSize {
		if len(sec.Part) > 0 {
			req.sizes = append(req.sizes, sec)
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
	if options.RFC822Size {
		rw.WriteRFC822Size(m.RFC822Size - removed)
	}
	if options.Envelope {
		rw.WriteEnvelope(m.Envelope)
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(withExtended(m.BodyStructure))
	}
	for _, sec := range options.BinarySectionSize {
		if len(sec.Part) == 0 {
			rw.WriteBinarySectionSize(sec, uint32(m.RFC822Size-removed))
		}
	}
	// Items answered without the upstream go first.
	for _, it := range items {
		if it.up < 0 {
			if err := writeItem(rw, it, it.prefix, nil, 0); err != nil {
				rw.Close()
				return err
			}
		}
	}
	if len(req.body) == 0 && len(req.binary) == 0 && len(req.sizes) == 0 {
		return rw.Close()
	}
	if err := s.streamSections(c, rw, m.UID, req, items); err != nil {
		rw.Close()
		return err
	}
	return rw.Close()
}

// splitPartial maps a range of BODY[] (filtered header + upstream text of
// textSize bytes) to a slice of the header and a range of BODY[TEXT]
// (nil: all of it; needText false: none of it).
func splitPartial(header []byte, textSize int64, p *imap.SectionPartial) ([]byte, *imap.SectionPartial, bool) {
	hl := int64(len(header))
	if p == nil {
		return header, nil, true
	}
	start, end := p.Offset, p.Offset+p.Size
	var prefix []byte
	if start < hl {
		prefix = header[start:min(end, hl)]
	}
	ts, te := max(start-hl, 0), min(end-hl, textSize)
	if te <= ts {
		return prefix, nil, false
	}
	if ts == 0 && te == textSize {
		return prefix, nil, true
	}
	return prefix, &imap.SectionPartial{Offset: ts, Size: te - ts}, true
}

// streamSections fetches the upstream sections of one message and copies
// each into the client's response as it arrives. A section two client
// items share is read into memory once (bounded by MaxMessageBytes).
func (s *session) streamSections(c *imapclient.Client, rw *imapserver.FetchResponseWriter, uid imap.UID, req *upstreamReq, items []plainItem) error {
	cmd := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{
		UID: true, BodySection: req.body, BinarySection: req.binary, BinarySectionSize: req.sizes,
	})
	msg := cmd.Next()
	if msg == nil {
		if err := cmd.Close(); err != nil {
			return err
		}
		return fmt.Errorf("message %d vanished upstream", uid)
	}
	done := map[int]bool{}
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		var idx int
		var lit imap.LiteralReader
		switch item := item.(type) {
		case imapclient.FetchItemDataBodySection:
			idx = -1
			for i, b := range req.body {
				if !done[i] && item.MatchCommand(b) {
					idx = i
					break
				}
			}
			lit = item.Literal
		case imapclient.FetchItemDataBinarySection:
			idx = -1
			for i, b := range req.binary {
				if !done[1<<20+i] && item.MatchCommand(b) {
					idx = 1<<20 + i
					break
				}
			}
			lit = item.Literal
		case imapclient.FetchItemDataBinarySectionSize:
			for _, sz := range req.sizes {
				if item.MatchCommand(sz) {
					rw.WriteBinarySectionSize(sz, item.Size)
					break
				}
			}
			continue
		default:
			continue
		}
		if idx < 0 || lit == nil {
			if idx >= 0 {
				done[idx] = true
				if err := s.writeUpstreamItem(rw, idx, nil, req, items); err != nil {
					s.abortUpstream(nil)
					return fmt.Errorf("%w: %w", errStreamBroken, err)
				}
			}
			continue // imapclient discards an unread literal itself
		}
		done[idx] = true
		g := &guardedLit{r: lit}
		if err := s.writeUpstreamItem(rw, idx, g, req, items); err != nil {
			// Part of a literal may have gone out: neither side's stream
			// can be trusted any more.
			s.abortUpstream(g)
			return fmt.Errorf("%w: %w", errStreamBroken, err)
		}
		if g.err == nil {
			io.Copy(io.Discard, g) // what the client's item did not need
		}
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	// Sections the upstream left out are answered empty (NIL would break
	// clients that expect a literal).
	for _, it := range items {
		if it.up >= 0 && !done[it.up] {
			if err := writeItem(rw, it, it.prefix, nil, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *session) writeUpstreamItem(rw *imapserver.FetchResponseWriter, idx int, lit *guardedLit, req *upstreamReq, items []plainItem) error {
	var size int64
	var r io.Reader = bytes.NewReader(nil)
	if lit != nil {
		size, r = lit.r.Size(), lit
	}
	if req.users[idx] > 1 {
		if size > s.p.opts.MaxMessageBytes {
			return fmt.Errorf("shared section of %d bytes exceeds the limit", size)
		}
		b, err := io.ReadAll(io.LimitReader(r, size))
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.up == idx {
				if err := writeItem(rw, it, it.prefix, bytes.NewReader(b), int64(len(b))); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, it := range items {
		if it.up == idx {
			return writeItem(rw, it, it.prefix, r, size)
		}
	}
	_, err := io.Copy(io.Discard, r)
	return err
}

// writeItem writes one body item: prefix, then size bytes of r. A short
// upstream literal fails the connection rather than corrupting the stream.
func writeItem(rw *imapserver.FetchResponseWriter, it plainItem, prefix []byte, r io.Reader, size int64) error {
	total := int64(len(prefix)) + size
	var wc io.WriteCloser
	if it.body != nil {
		wc = rw.WriteBodySection(it.body, total)
	} else {
		wc = rw.WriteBinarySection(it.binary, total)
	}
	if _, err := wc.Write(prefix); err != nil {
		return err
	}
	if r != nil && size > 0 {
		n, err := io.Copy(wc, io.LimitReader(r, size))
		if err == nil && n < size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("copy upstream section: %w", err)
		}
	}
	return wc.Close()
}
