package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// refUnstuff is the plain reading of RFC 5321 section 4.5.2, a byte at a
// time: a line starts only after CRLF (or at the start), ".\r\n" there
// ends the data, a leading dot there is dropped. It returns the message
// and the bytes consumed with the end marker (-1: no end marker).
func refUnstuff(in []byte) ([]byte, int) {
	out := []byte{}
	start := true
	for i := 0; i < len(in); {
		if start {
			if bytes.HasPrefix(in[i:], []byte(".\r\n")) {
				return out, i + 3
			}
			start = false
			if in[i] == '.' {
				i++
				continue
			}
		}
		out = append(out, in[i])
		start = in[i] == '\n' && i > 0 && in[i-1] == '\r'
		i++
	}
	return out, -1
}

// readDot runs a dotReader without limits over src through a bufio.Reader
// of bufSize, with reads of readSize, and returns the message, the error
// that ended it and everything left after it.
func readDot(src io.Reader, bufSize, readSize int) (msg, rest []byte, err error) {
	br := bufio.NewReaderSize(src, bufSize)
	r := newDotReader(br, 0, 0)
	p := make([]byte, readSize)
	for {
		var n int
		n, err = r.Read(p)
		msg = append(msg, p[:n]...)
		if err != nil {
			break
		}
	}
	rest, _ = io.ReadAll(br)
	return msg, rest, err
}

// sameMessage compares the reader's output with the reference's. Without
// an end marker the connection was cut and the message is dropped
// whatever it holds, so the reader may stop short of a line start it
// could not decide.
func sameMessage(got, want []byte, used int) bool {
	if used < 0 {
		return bytes.HasPrefix(want, got) && len(want)-len(got) <= 2
	}
	return bytes.Equal(got, want)
}

var dotCases = []string{
	"",
	".\r\n",
	"hello\r\n.\r\n",
	"hello\r\n.\r\nNEXT\r\n",
	"..\r\n.\r\n",
	"..leading dot\r\n...two\r\n.\r\nMAIL\r\n",
	"a\n.\nb\r\n.\r\n",   // bare LF: no end
	"a\r\n.\nb\r\n.\r\n", // CRLF . LF: no end
	"a\n.\r\nb\r\n.\r\n", // LF . CRLF: no end
	"a\r.\r\nb\r\n.\r\n", // CR . CRLF: no end
	"a\r\n.\rX\r\n.\r\n", // stuffed dot before a lone CR
	"a\r\n.x\r\n.\r\n",   // stuffed dot
	"\r\n\r\n.\r\n",      // empty lines
	"\r\r\n.\r\n",        // CR CR LF
	"line\r\n.\r",        // cut off in the end marker
	"line\r\n.",          // cut off after the dot
	"line without end",   // cut off
	"x\r\n.\r\n.\r\n",    // data after the end
	strings.Repeat("0123456789abcdef\r\n", 40) + ".\r\n", // longer than the buffers
	strings.Repeat("x", 100) + "\r\n." + strings.Repeat("y", 50) + "\r\n.\r\n",
}

// TestDotReaderSplits: for each input split at every offset, and read
// through small buffers with reads of several sizes, the dot reader gives
// what the reference unstuffer gives and stops exactly after the end
// marker.
func TestDotReaderSplits(t *testing.T) {
	for _, in := range dotCases {
		want, used := refUnstuff([]byte(in))
		for k := 0; k <= len(in); k++ {
			for _, sizes := range [][2]int{{16, 1}, {16, 5}, {17, 4096}, {4096, 3}, {4096, 4096}} {
				src := io.MultiReader(strings.NewReader(in[:k]), strings.NewReader(in[k:]))
				got, rest, err := readDot(src, sizes[0], sizes[1])
				if !sameMessage(got, want, used) {
					t.Fatalf("%q split at %d, buffer %d, reads of %d: got %q, want %q", in, k, sizes[0], sizes[1], got, want)
				}
				switch {
				case used < 0 && err != io.ErrUnexpectedEOF:
					t.Fatalf("%q split at %d: no end marker, got %v", in, k, err)
				case used >= 0 && err != io.EOF:
					t.Fatalf("%q split at %d: got %v, want io.EOF", in, k, err)
				case used >= 0 && string(rest) != in[used:]:
					t.Fatalf("%q split at %d: left %q, want %q", in, k, rest, in[used:])
				}
			}
		}
	}
}

// TestDotReaderLimits: a message over the size limit or with a line over
// the line limit gets its error, and drain still consumes it to the end
// marker so the next command is read in sync.
func TestDotReaderLimits(t *testing.T) {
	line := func(n int) string { return strings.Repeat("a", n-2) + "\r\n" }
	cases := []struct {
		name    string
		body    string
		max     int64
		maxLine int
		want    error
	}{
		{"at the size limit", line(50) + line(50), 100, 0, nil},
		{"one byte over", line(50) + line(51), 100, 0, errDataTooLarge},
		{"far over", strings.Repeat(line(50), 1000), 100, 0, errDataTooLarge},
		{"stuffed dots not counted", "." + line(50) + "." + line(50), 100, 0, nil},
		{"line at the limit", line(2000), 0, 2000, nil},
		{"line over the limit", line(2001), 0, 2000, errDataLineTooLong},
		{"long line without CRLF", strings.Repeat("b", 5000) + "\r\n", 0, 2000, errDataLineTooLong},
		{"long line after short ones", line(10) + line(10) + line(3000), 0, 2000, errDataLineTooLong},
		{"bare LF resets the line", strings.Repeat(strings.Repeat("c", 1500)+"\n", 4) + "\r\n", 0, 2000, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.body+".\r\nNOOP\r\n"), 64)
			r := newDotReader(br, tc.max, tc.maxLine)
			got, err := io.ReadAll(r)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				want, _ := refUnstuff([]byte(tc.body + ".\r\n"))
				if !bytes.Equal(got, want) {
					t.Fatalf("got %d bytes, want %d", len(got), len(want))
				}
			}
			if tc.max > 0 && int64(len(got)) > tc.max+1 {
				t.Errorf("returned %d bytes with a limit of %d", len(got), tc.max)
			}
			if err := r.drain(); err != nil {
				t.Fatalf("drain: %v", err)
			}
			if rest, _ := io.ReadAll(br); string(rest) != "NOOP\r\n" {
				t.Errorf("after drain: %q, want the next command", rest)
			}
		})
	}
}

// FuzzDataReader: whatever the input, buffer size and read size, the dot
// reader agrees with the reference unstuffer and leaves exactly what
// follows the end marker.
func FuzzDataReader(f *testing.F) {
	for _, c := range dotCases {
		f.Add([]byte(c), uint8(0), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, buf, read uint8) {
		want, used := refUnstuff(in)
		got, rest, err := readDot(bytes.NewReader(in), 16+int(buf), 1+int(read))
		if !sameMessage(got, want, used) {
			t.Fatalf("got %q, want %q", got, want)
		}
		if used < 0 {
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("no end marker: %v", err)
			}
			return
		}
		if err != io.EOF || !bytes.Equal(rest, in[used:]) {
			t.Fatalf("end: %v, left %q, want %q", err, rest, in[used:])
		}
	})
}

// TestServerBDAT: chunks are joined byte for byte (no dot-unstuffing),
// LAST ends the message, a message over the limit is refused with the
// rest of its chunks skipped, and a chunk without a transaction is skipped
// so the next command is read in sync.
func TestServerBDAT(t *testing.T) {
	ts := newTestServer(t, serverOptions{InsecureAuth: true, MaxMessageBytes: 100})
	c := ts.pipe(t)
	login(t, c)
	tx := "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
	cases := []struct {
		name   string
		chunks string // after MAIL and RCPT, in one write
		codes  string
		data   string // what Data read; "" when refused
	}{
		{"single LAST chunk", "BDAT 13 LAST\r\n.line\r\n.\r\nend", "250 250 250", ".line\r\n.\r\nend"},
		{"several chunks", "BDAT 3\r\nabcBDAT 0\r\nBDAT 4\r\ndefgBDAT 2 LAST\r\nhi", "250 250 250 250 250 250", "abcdefghi"},
		{"over the limit", "BDAT 60\r\n" + strings.Repeat("x", 60) + "BDAT 60 LAST\r\n" + strings.Repeat("y", 60) + "NOOP\r\n", "250 250 250 552 250", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ts.rec.all())
			write(t, c, tx+tc.chunks)
			var got string
			for len(codes(got)) < len(strings.Fields(tc.codes)) {
				got += readOnce(t, c)
			}
			if strings.Join(codes(got), " ") != tc.codes {
				t.Fatalf("replies %q, want %s", got, tc.codes)
			}
			var datas []string
			for _, ev := range ts.rec.all()[before:] {
				if strings.HasPrefix(ev, "DATA ") {
					datas = append(datas, strings.TrimPrefix(ev, "DATA "))
				}
			}
			if tc.data != "" && (len(datas) != 1 || datas[0] != tc.data) {
				t.Errorf("session read %q, want %q", datas, tc.data)
			}
			if tc.data == "" && (len(datas) != 1 || datas[0] != "error "+errDataAborted.Error()) {
				t.Errorf("refused message: session read %q, want the transfer aborted", datas)
			}
		})
	}
	// In sync after all that.
	write(t, c, "BDAT 5 LAST\r\nxxxxxNOOP\r\n")
	if got := readOnce(t, c); strings.Join(codes(got), " ") != "503 250" {
		t.Errorf("BDAT without a transaction, then NOOP: %q", got)
	}
}

// TestDataLimitsKeepSession: a message over the size or line limit is
// refused, read to its end marker, and the session goes on.
func TestDataLimitsKeepSession(t *testing.T) {
	ts := newTestServer(t, serverOptions{InsecureAuth: true, MaxMessageBytes: 10 << 10})
	c := ts.pipe(t)
	login(t, c)
	for _, body := range []string{
		strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 200),
		"short\r\n" + strings.Repeat("L", 3000) + "\r\n\r\n.x\r\n",
	} {
		write(t, c, "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
		readOnce(t, c)
		write(t, c, body+".\r\nNOOP\r\n")
		var got string
		for len(codes(got)) < 2 {
			got += readOnce(t, c)
		}
		if strings.Join(codes(got), " ") != "554 250" {
			t.Errorf("refused message then NOOP: %q", got)
		}
	}
	ev := ts.rec.all()
	if !contains(ev, "DATA error "+errDataTooLarge.Error()) || !contains(ev, "DATA error "+errDataLineTooLong.Error()) {
		t.Errorf("session saw %q", ev)
	}
}
