package smtp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"mime"
	"net/mail"
	"strings"

	gosmtp "github.com/emersion/go-smtp"
	"golang.org/x/sync/semaphore"

	"smimeproxy/crypto/smime"
)

// Data implements serverSession: read the message, check it, decide what
// each recipient gets (policy), build the copies and hand them to the
// upstream. Every failure is a reply; the server then resets the transaction
// (and Reset resets the upstream's), so the session stays usable.
func (s *session) Data(r io.Reader) error {
	if rr := s.usable(); rr != nil {
		return rr
	}
	if !s.inTx || len(s.rcpts) == 0 {
		return reply(503, "5.5.1", "RCPT first")
	}
	var held int64
	defer func() { s.p.inFlight.Release(held) }()
	// The message lives in buf until delivery ends: the entity is
	// assembled inside it (the header block rearranged in place, the body
	// not copied), so it is held once. putBuf then clears it for the pool,
	// or leaves one too big for the pool to the collector.
	buf := s.p.getBuf()
	defer s.p.putBuf(buf)
	raw, rerr := s.readMessage(buf, &budgetReader{r: r, sem: s.p.inFlight, held: &held})
	if rerr != nil {
		return rerr
	}
	eightBitOK := s.mailOpts.Body == gosmtp.Body8BitMIME || s.mailOpts.Body == gosmtp.BodyBinaryMIME || s.mailOpts.UTF8
	if rerr := checkBytes(raw, eightBitOK); rerr != nil {
		s.log.Info("message refused", "reason", rerr.Message)
		return rerr
	}
	m, rerr := s.parseMessage(raw)
	if rerr != nil {
		return rerr
	}
	pl, rerr := s.plan(m)
	if rerr != nil {
		return rerr
	}
	return s.deliver(m, pl)
}

// readMessage reads the whole message into buf, at most the advertised
// SIZE. The S/MIME engine works on whole messages, so the message is held in
// memory, bounded by MaxMessageBytes.
func (s *session) readMessage(buf *bytes.Buffer, r io.Reader) ([]byte, *gosmtp.SMTPError) {
	max := s.p.server.opts.MaxMessageBytes
	if s.mailOpts.Size > 0 && s.mailOpts.Size <= max {
		buf.Grow(int(s.mailOpts.Size))
	}
	n, err := buf.ReadFrom(io.LimitReader(r, max+1))
	switch {
	case err == nil && n > max:
		return nil, errTooLarge
	case err == nil:
		return buf.Bytes(), nil
	case errors.Is(err, errDataTooLarge):
		return nil, errTooLarge
	case errors.Is(err, errDataLineTooLong):
		return nil, errLongLine
	case errors.Is(err, errBusy):
		s.log.Warn("message refused: in-flight memory budget exhausted")
		return nil, reply(452, "4.3.1", "The proxy is busy with other messages; nothing was sent, try again shortly (session %s)", s.id)
	}
	s.log.Info("reading message failed", "err", err)
	return nil, reply(451, "4.3.0", "Reading the message failed; nothing was sent (session %s)", s.id)
}

// checkBytes refuses what SMTP does not carry or what could be read two
// ways: NUL, CR or LF not part of a CRLF pair (the SMTP smuggling vectors
// "\n.\n", "\r\n.\n" and "\n.\r\n" all contain one), and 8-bit data the
// client did not declare.
//
// Eight bytes are tested at once: a word with no NUL, CR, LF (or, unless
// allowed, 8-bit byte) is skipped whole, so only the word holding a line's
// CRLF is looked at byte by byte.
func checkBytes(b []byte, eightBitOK bool) *gosmtp.SMTPError {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	high := uint64(highs)
	if eightBitOK {
		high = 0
	}
	for i := 0; i < len(b); {
		if i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			cr, lf := x^(ones*'\r'), x^(ones*'\n')
			// (v-ones)&^v&highs is non-zero exactly when some byte of v is 0.
			if ((x-ones)&^x|(cr-ones)&^cr|(lf-ones)&^lf)&highs|x&high == 0 {
				i += 8
				continue
			}
		}
		end := min(i+8, len(b))
		for ; i < end; i++ {
			if r := checkByte(b, i, eightBitOK); r != nil {
				return r
			}
		}
	}
	return nil
}

// checkByte applies checkBytes' rules to b[i].
func checkByte(b []byte, i int, eightBitOK bool) *gosmtp.SMTPError {
	switch c := b[i]; {
	case c == 0:
		return errNUL
	case c == '\n':
		if i == 0 || b[i-1] != '\r' {
			return errBareLF
		}
	case c == '\r':
		if i+1 >= len(b) || b[i+1] != '\n' {
			return errBareLF
		}
	case c >= 0x80 && !eightBitOK:
		return err8Bit
	}
	return nil
}

// message is a parsed message: its header without Bcc, its MIME entity and
// what the header says about sender and visible recipients.
type message struct {
	outer   smime.Header // without Bcc fields
	entity  []byte
	from    []string        // From addresses, lower case
	visible map[string]bool // To and Cc addresses, lower case
}

// addrParser reads addresses whatever the charset of encoded display
// names: only the addresses matter here.
var addrParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

// parseMessage splits raw (taking it over: the entity is assembled inside
// it) and reads the sender and the visible recipients.
func (s *session) parseMessage(raw []byte) (*message, *gosmtp.SMTPError) {
	outer, entity, err := smime.SplitMessageInPlace(raw)
	if err != nil {
		s.log.Info("message refused: header", "err", err)
		return nil, errMalformed(s.id)
	}
	m := &message{entity: entity, visible: map[string]bool{}}
	froms := 0
	for _, f := range outer {
		switch strings.ToLower(f.Name) {
		case "bcc":
			continue
		case "from":
			froms++
			list, err := addrParser.ParseList(f.Value())
			if err != nil {
				s.log.Info("message refused: From", "err", err)
				return nil, errNoFrom
			}
			for _, a := range list {
				m.from = append(m.from, strings.ToLower(a.Address))
			}
		case "to", "cc":
			if strings.TrimSpace(f.Value()) == "" {
				break
			}
			list, err := addrParser.ParseList(f.Value())
			if err != nil {
				s.log.Info("message refused: recipients header", "field", f.Name, "err", err)
				return nil, reply(554, "5.6.0", "The %s header field is malformed; nothing was sent (session %s)", f.Name, s.id)
			}
			for _, a := range list {
				m.visible[strings.ToLower(a.Address)] = true
			}
		}
		m.outer = append(m.outer, f)
	}
	if froms != 1 || len(m.from) == 0 {
		return nil, errNoFrom
	}
	return m, nil
}

// fromMatches reports whether the message is From exactly the
// authenticated mailbox, which signing requires.
func (m *message) fromMatches(mailbox string) bool {
	return mailbox != "" && len(m.from) == 1 && m.from[0] == mailbox
}

// pooledBufMax is the largest read buffer kept for the next message.
// Ordinary messages then arrive without a new buffer grown (and copied) by
// doubling each time; larger buffers go back to the GC, so a burst of big
// messages does not stay resident.
const pooledBufMax = 1 << 20

func (p *Proxy) getBuf() *bytes.Buffer {
	if b, ok := p.bufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func (p *Proxy) putBuf(b *bytes.Buffer) {
	if b.Cap() > pooledBufMax {
		return
	}
	b.Reset()
	clear(b.Bytes()[:b.Cap()]) // no message text lingers in the pool
	p.bufs.Put(b)
}

// errBusy: the proxy-wide budget of held message bytes is used up.
var errBusy = errors.New("in-flight message budget exhausted")

// budgetReader takes what it reads from the proxy-wide budget of held
// message bytes, without waiting: waiting sessions holding part of the
// budget each could block one another for good.
type budgetReader struct {
	r    io.Reader
	sem  *semaphore.Weighted
	held *int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		if !b.sem.TryAcquire(int64(n)) {
			return n, errBusy
		}
		*b.held += int64(n)
	}
	return n, err
}
