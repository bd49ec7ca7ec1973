package imap

import (
	"bytes"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

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
