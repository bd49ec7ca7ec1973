package imap

import (
	"bytes"
	"errors"
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

// plainPlan is how one plain message's FETCH response is made.
type plainPlan struct {
	m       *imapclient.FetchMessageBuffer
	items   []plainItem
	req     *upstreamReq
	removed int64 // header bytes the Viewer filtered out
}

// planPlain maps the client's items for a message that streams through:
// header items come from the filtered header, BODY[] is that header
// followed by the upstream's BODY[TEXT], everything else is the
// upstream's section as it is.
func (s *session) planPlain(m *imapclient.FetchMessageBuffer, options *imap.FetchOptions) *plainPlan {
	header := m.FindBodySection(headerSection)
	filtered := header
	if header != nil {
		filtered = s.p.viewer.FilterHeader(header)
	}
	textSize := max(m.RFC822Size-int64(len(header)), 0)
	p := &plainPlan{m: m, req: &upstreamReq{users: map[int]int{}}, removed: int64(len(header) - len(filtered))}
	req := p.req
	for _, sec := range options.BodySection {
		switch {
		case len(sec.Part) == 0 && sec.Specifier == imap.PartSpecifierNone:
			prefix, text, needText := splitPartial(filtered, textSize, sec.Partial)
			it := plainItem{body: sec, prefix: prefix, up: -1}
			if needText {
				it.up = req.addBody(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true, Partial: text})
			}
			p.items = append(p.items, it)
		case len(sec.Part) == 0 && sec.Specifier == imap.PartSpecifierHeader:
			b := imapserver.ExtractBodySection(bytes.NewReader(filtered), sec)
			p.items = append(p.items, plainItem{body: sec, prefix: b, up: -1})
		default:
			up := *sec
			up.Peek = true
			p.items = append(p.items, plainItem{body: sec, up: req.addBody(&up)})
		}
	}
	for _, sec := range options.BinarySection {
		if len(sec.Part) == 0 {
			prefix, text, needText := splitPartial(filtered, textSize, sec.Partial)
			it := plainItem{binary: sec, prefix: prefix, up: -1}
			if needText {
				it.up = req.addBody(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true, Partial: text})
			}
			p.items = append(p.items, it)
			continue
		}
		up := *sec
		up.Peek = true
		p.items = append(p.items, plainItem{binary: sec, up: req.addBinary(&up)})
	}
	for _, sec := range options.BinarySectionSize {
		if len(sec.Part) > 0 {
			req.sizes = append(req.sizes, sec)
		}
	}
	return p
}

// empty reports whether the plan needs nothing from the upstream.
func (r *upstreamReq) empty() bool {
	return len(r.body) == 0 && len(r.binary) == 0 && len(r.sizes) == 0
}

// signature is equal for requests that one upstream FETCH can serve.
func (r *upstreamReq) signature() string {
	var b bytes.Buffer
	for _, s := range r.body {
		fmt.Fprint(&b, "B", s.Part, s.Specifier, s.HeaderFields, s.HeaderFieldsNot, s.Partial, ";")
	}
	for _, s := range r.binary {
		fmt.Fprint(&b, "N", s.Part, s.Partial, ";")
	}
	for _, s := range r.sizes {
		fmt.Fprint(&b, "S", s.Part, ";")
	}
	return b.String()
}

// start opens the message's response and writes what needs no upstream
// data; the caller adds the upstream sections and closes it.
func (p *plainPlan) start(w *imapserver.FetchWriter, options *imap.FetchOptions, flags []imap.Flag) (*imapserver.FetchResponseWriter, error) {
	m := p.m
	rw := w.CreateMessage(m.SeqNum)
	writeCheap(rw, m, options, flags)
	if options.RFC822Size {
		rw.WriteRFC822Size(m.RFC822Size - p.removed)
	}
	if options.Envelope {
		rw.WriteEnvelope(m.Envelope)
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(withExtended(m.BodyStructure))
	}
	for _, sec := range options.BinarySectionSize {
		if len(sec.Part) == 0 {
			rw.WriteBinarySectionSize(sec, uint32(m.RFC822Size-p.removed))
		}
	}
	for _, it := range p.items {
		if it.up < 0 {
			if err := writeItem(rw, it, it.prefix, nil, 0); err != nil {
				rw.Close()
				return nil, err
			}
		}
	}
	return rw, nil
}

// answerPlain answers the plain messages. Messages whose upstream
// sections are the same (the usual case: a client asks the same items of
// every message) share one upstream FETCH, streamed message by message.
func (s *session) answerPlain(c *imapclient.Client, w *imapserver.FetchWriter, msgs []*imapclient.FetchMessageBuffer, options *imap.FetchOptions, seen map[imap.UID][]imap.Flag) error {
	groups := map[string][]*plainPlan{}
	var order []string
	for _, m := range msgs {
		p := s.planPlain(m, options)
		if p.req.empty() {
			rw, err := p.start(w, options, seen[m.UID])
			if err != nil {
				return err
			}
			if err := rw.Close(); err != nil {
				return err
			}
			continue
		}
		sig := p.req.signature()
		if groups[sig] == nil {
			order = append(order, sig)
		}
		groups[sig] = append(groups[sig], p)
	}
	for _, sig := range order {
		if err := s.streamGroup(c, w, groups[sig], options, seen); err != nil {
			return err
		}
	}
	return nil
}

// streamGroup fetches the same upstream sections of several messages in
// one command and copies each into the client's response as it arrives.
// A section two client items share is read into memory once (bounded by
// MaxMessageBytes).
func (s *session) streamGroup(c *imapclient.Client, w *imapserver.FetchWriter, plans []*plainPlan, options *imap.FetchOptions, seen map[imap.UID][]imap.Flag) error {
	req := plans[0].req
	var uids imap.UIDSet
	byUID := make(map[imap.UID]*plainPlan, len(plans))
	bySeq := make(map[uint32]*plainPlan, len(plans))
	for _, p := range plans {
		uids.AddNum(p.m.UID)
		byUID[p.m.UID] = p
		bySeq[p.m.SeqNum] = p
	}
	cmd := c.Fetch(uids, &imap.FetchOptions{
		UID: true, BodySection: req.body, BinarySection: req.binary, BinarySectionSize: req.sizes,
	})
	answered := make(map[imap.UID]bool, len(plans))
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		p, err := s.streamMessage(w, msg, byUID, bySeq, answered, options, seen)
		if err != nil {
			return err // the command is abandoned: see guardedLit
		}
		if p != nil {
			answered[p.m.UID] = true
		}
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	for _, p := range plans {
		if !answered[p.m.UID] {
			s.log.Info("message vanished upstream during FETCH", "uid", p.m.UID)
		}
	}
	return nil
}

// streamMessage writes one message's response from its upstream data. The
// UID item, which servers send before any literal, names the message;
// the sequence number stands in when it is missing.
func (s *session) streamMessage(w *imapserver.FetchWriter, msg *imapclient.FetchMessageData, byUID map[imap.UID]*plainPlan, bySeq map[uint32]*plainPlan, answered map[imap.UID]bool, options *imap.FetchOptions, seen map[imap.UID][]imap.Flag) (*plainPlan, error) {
	var p *plainPlan
	var rw *imapserver.FetchResponseWriter
	done := map[int]bool{}
	open := func() error {
		if rw != nil {
			return nil
		}
		if p == nil {
			p = bySeq[msg.SeqNum]
		}
		if p == nil || answered[p.m.UID] {
			return errSkip
		}
		var err error
		rw, err = p.start(w, options, seen[p.m.UID])
		return err
	}
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		var idx = -1
		var lit imap.LiteralReader
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			if p == nil {
				p = byUID[item.UID]
			}
			continue
		case imapclient.FetchItemDataBodySection:
			if err := open(); err != nil {
				return s.skipOrFail(err)
			}
			for i, b := range p.req.body {
				if !done[i] && item.MatchCommand(b) {
					idx = i
					break
				}
			}
			lit = item.Literal
		case imapclient.FetchItemDataBinarySection:
			if err := open(); err != nil {
				return s.skipOrFail(err)
			}
			for i, b := range p.req.binary {
				if !done[1<<20+i] && item.MatchCommand(b) {
					idx = 1<<20 + i
					break
				}
			}
			lit = item.Literal
		case imapclient.FetchItemDataBinarySectionSize:
			if err := open(); err != nil {
				return s.skipOrFail(err)
			}
			for _, sz := range p.req.sizes {
				if item.MatchCommand(sz) {
					rw.WriteBinarySectionSize(sz, item.Size)
					break
				}
			}
			continue
		default:
			continue
		}
		if idx < 0 {
			continue // imapclient discards an unread literal itself
		}
		done[idx] = true
		var g *guardedLit
		if lit != nil {
			g = &guardedLit{r: lit}
		}
		if err := s.writeUpstreamItem(rw, idx, g, p.req, p.items); err != nil {
			// Part of a literal may have gone out: neither side's stream
			// can be trusted any more.
			s.abortUpstream(g)
			return nil, fmt.Errorf("%w: %w", errStreamBroken, err)
		}
		if g != nil && g.err == nil {
			io.Copy(io.Discard, g) // what the client's item did not need
		}
	}
	if err := open(); err != nil {
		return s.skipOrFail(err)
	}
	// Sections the upstream left out are answered empty (NIL would break
	// clients that expect a literal).
	for _, it := range p.items {
		if it.up >= 0 && !done[it.up] {
			if err := writeItem(rw, it, it.prefix, nil, 0); err != nil {
				return nil, err
			}
		}
	}
	return p, rw.Close()
}

// errSkip marks an upstream response for no message of the plan.
var errSkip = errors.New("not a planned message")

func (s *session) skipOrFail(err error) (*plainPlan, error) {
	if errors.Is(err, errSkip) {
		return nil, nil
	}
	return nil, err
}
