package imap

import (
	"bytes"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// FuzzSplitPartial: whatever range a client asks of a plain message's
// BODY[] (filtered header + upstream text), the header slice plus the
// upstream range the proxy asks for is exactly that range of the bytes.
func FuzzSplitPartial(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\n"), []byte("body\r\n"), int64(0), int64(10))
	f.Add([]byte("A: b\r\n\r\n"), []byte(""), int64(7), int64(1))
	f.Add([]byte(""), []byte("x"), int64(5), int64(0))
	f.Fuzz(func(t *testing.T, header, text []byte, off, size int64) {
		if off < 0 || size < 0 || off > 1<<40 || size > 1<<40 {
			t.Skip()
		}
		whole := append(append([]byte(nil), header...), text...)
		want := partial(whole, &imap.SectionPartial{Offset: off, Size: size})
		prefix, tp, need := splitPartial(header, int64(len(text)), &imap.SectionPartial{Offset: off, Size: size})
		got := append([]byte(nil), prefix...)
		if need {
			got = append(got, partial(text, tp)...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("BODY[]<%d.%d> of %q+%q: got %q, want %q", off, size, header, text, got, want)
		}
	})
}

// FuzzSplitHeader: the header block ends at the first empty line (CRLF
// or LF), and what follows is the text.
func FuzzSplitHeader(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nbody"))
	f.Add([]byte("no body at all\r\n"))
	f.Add([]byte("\nbody"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		n := splitHeader(raw)
		if n < 0 || n > len(raw) {
			t.Fatalf("header length %d of %d bytes", n, len(raw))
		}
		h := raw[:n]
		if n < len(raw) && !bytes.HasSuffix(h, []byte("\n\n")) && !bytes.HasSuffix(h, []byte("\n\r\n")) && n != 1 && !(n == 2 && h[0] == '\r') {
			t.Fatalf("header %q does not end with an empty line", h)
		}
		// No earlier empty line inside the header.
		if i := bytes.Index(h, []byte("\n\n")); i >= 0 && i+2 < n {
			t.Fatalf("empty line at %d inside header of length %d", i, n)
		}
		if i := bytes.Index(h, []byte("\n\r\n")); i >= 0 && i+3 < n {
			t.Fatalf("empty CRLF line at %d inside header of length %d", i, n)
		}
	})
}
