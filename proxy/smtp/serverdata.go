package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"time"
)

// maxDataLine bounds a line of message data, CRLF included: twice RFC
// 5321's 1000 octets (section 4.5.3.1.6), as go-smtp allowed before.
const maxDataLine = 2000

// Errors of the DATA reader, which data.go turns into replies.
var (
	errDataTooLarge    = errors.New("message larger than the size limit")
	errDataLineTooLong = errors.New("message line longer than the limit")
	// errDataAborted ends the reader of an unfinished BDAT transfer
	// (RSET, a new EHLO, the connection closing).
	errDataAborted = errors.New("message transfer aborted")
)

// dotReader reads DATA (RFC 5321 section 4.5.2): it removes the stuffed
// dot at the start of a line and ends at CRLF "." CRLF, nowhere else — a
// bare LF or CR never starts a line, so "\n.\n", "\r\n.\n" and "\n.\r\n"
// are message text (the SMTP smuggling vectors; data.go then refuses the
// bare line ending). It scans the buffered input a line at a time with
// bytes.IndexByte and copies whole runs of lines at once.
type dotReader struct {
	br        *bufio.Reader
	max       int64 // unstuffed bytes allowed; 0: no limit
	maxLine   int   // octets per line with its ending; 0: no limit
	total     int64 // unstuffed bytes returned
	lineLen   int   // octets of the current line so far
	lineStart bool  // the next byte starts a line (after CRLF, or first)
	prevCR    bool  // the last byte consumed was CR
	err       error // sticky: io.EOF at the end marker, or a failure
}

func newDotReader(br *bufio.Reader, max int64, maxLine int) *dotReader {
	return &dotReader{br: br, max: max, maxLine: maxLine, lineStart: true}
}

func (r *dotReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n := 0
	for n < len(p) {
		// Return what is in hand rather than wait for more.
		if n > 0 && r.br.Buffered() == 0 {
			break
		}
		if r.lineStart {
			wait, err := r.beginLine(n > 0)
			if err != nil {
				r.err = err
				if err == io.EOF && n > 0 {
					return n, nil
				}
				return n, err
			}
			if wait {
				break
			}
			continue
		}
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				r.err = unexpected(err)
				return n, r.err
			}
		}
		buf, _ := r.br.Peek(r.br.Buffered())
		limit := min(len(buf), len(p)-n)
		if r.max > 0 {
			limit = int(min(int64(limit), r.max+1-r.total))
		}
		seg := buf[:limit]
		i, tooLong := r.scan(seg)
		copy(p[n:], seg[:i])
		r.br.Discard(i)
		n += i
		r.total += int64(i)
		if r.max > 0 && r.total > r.max {
			r.err = errDataTooLarge
			return n, r.err
		}
		if tooLong {
			r.err = errDataLineTooLong
			return n, r.err
		}
	}
	return n, nil
}

// scan finds how much of seg can be returned in one piece: up to the end
// of seg, or to just after a CRLF that is followed by a dot (which
// beginLine must look at). It tracks lines and their length.
func (r *dotReader) scan(seg []byte) (i int, tooLong bool) {
	for i < len(seg) {
		j := bytes.IndexByte(seg[i:], '\n')
		if j < 0 {
			r.lineLen += len(seg) - i
			r.prevCR = seg[len(seg)-1] == '\r'
			return len(seg), r.maxLine > 0 && r.lineLen > r.maxLine
		}
		cr := r.prevCR
		if i+j > 0 {
			cr = seg[i+j-1] == '\r'
		}
		r.lineLen += j + 1
		i += j + 1
		r.prevCR = false
		long := r.maxLine > 0 && r.lineLen > r.maxLine
		r.lineLen = 0
		if cr && (i == len(seg) || seg[i] == '.') {
			r.lineStart = true
			return i, long
		}
		if long {
			return i, true
		}
	}
	return i, false
}

// beginLine looks at the start of a line: CRLF "." CRLF ends the data
// (io.EOF), a leading dot is removed. wait asks the caller to return the
// bytes in hand first, when deciding would need input not yet buffered.
func (r *dotReader) beginLine(haveData bool) (wait bool, err error) {
	b, err := r.br.Peek(1)
	if len(b) == 0 {
		return false, unexpected(err)
	}
	if b[0] != '.' {
		r.lineStart = false
		return false, nil
	}
	if haveData && r.br.Buffered() < 3 {
		return true, nil
	}
	b, err = r.br.Peek(3)
	switch {
	case len(b) == 3 && b[1] == '\r' && b[2] == '\n':
		r.br.Discard(3)
		return false, io.EOF
	case len(b) >= 2 && b[1] != '\r', len(b) == 3 && b[2] != '\n':
		r.br.Discard(1) // the stuffed dot
		r.lineStart, r.prevCR, r.lineLen = false, false, 1
		return false, nil
	}
	return false, unexpected(err)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// drain reads and drops the rest of the data, whatever the limits, so the
// next command is read in sync. It fails only when the connection does.
func (r *dotReader) drain() error {
	if r.err == io.EOF {
		return nil
	}
	if r.err == errDataTooLarge || r.err == errDataLineTooLong {
		r.err = nil
	}
	r.max, r.maxLine = 0, 0
	_, err := io.Copy(io.Discard, r)
	return err
}

// handleData runs DATA: 354, the session reads the message, the rest up
// to the end marker is read, then the session's reply is sent.
func (c *conn) handleData(arg string) bool {
	switch {
	case arg != "":
		return c.protocolError(501, "5.5.4", "DATA takes no argument")
	case c.bdat != nil:
		return c.protocolError(503, "5.5.1", "DATA not allowed during BDAT")
	case !c.mailOK || c.rcpts == 0:
		return c.protocolError(503, "5.5.1", "RCPT first")
	}
	c.reply(354, "", "Start mail input; end with <CRLF>.<CRLF>")
	c.nc.SetReadDeadline(time.Now().Add(c.srv.opts.DataTimeout))
	r := newDotReader(c.br, c.srv.opts.MaxMessageBytes, maxDataLine)
	err := c.sess.Data(r)
	if derr := r.drain(); derr != nil {
		c.log.Info("reading the message failed", "err", derr)
		c.readFailed(derr)
		return false
	}
	c.dataReply(err)
	c.resetTx()
	return true
}

func (c *conn) dataReply(err error) {
	if err != nil {
		c.replyErr(err)
		return
	}
	c.reply(250, "2.0.0", "OK: queued")
}

// bdatTransfer is a message arriving in BDAT chunks (RFC 3030). The
// session's Data runs in a goroutine reading from a pipe, and each chunk is
// written into the pipe as it is read: the message is held once, by the
// session, as with DATA.
type bdatTransfer struct {
	pw    *io.PipeWriter
	done  chan error // Data's result
	size  int64      // chunk bytes so far
	ended bool       // Data returned (its result was taken from done)
}

// errSessionPanic is Data's result when it panicked in a BDAT transfer.
var errSessionPanic = errors.New("session panicked")

func (c *conn) startBdat() {
	pr, pw := io.Pipe()
	t := &bdatTransfer{pw: pw, done: make(chan error, 1)}
	sess := c.sess
	go func() {
		var err error
		defer func() {
			if v := recover(); v != nil {
				c.log.Error("panic in SMTP session (BDAT)", "panic", v)
				err = errSessionPanic
			}
			pr.CloseWithError(cmpErr(err, errDataAborted))
			t.done <- err
		}()
		err = sess.Data(pr)
	}()
	c.bdat = t
}

func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// abortBdat ends an unfinished BDAT transfer and waits for the session's
// Data to return, so nothing else touches the session meanwhile.
func (c *conn) abortBdat() {
	t := c.bdat
	if t == nil {
		return
	}
	c.bdat = nil
	t.pw.CloseWithError(errDataAborted)
	if !t.ended {
		<-t.done
	}
}

func (c *conn) handleBdat(arg string) bool {
	size, last, err := parseBdat(arg)
	if err != nil {
		// Without a size the chunk cannot be skipped: the connection
		// is out of sync for good.
		c.reply(501, "5.5.4", "Syntax: BDAT size [LAST]; closing the connection")
		c.flush()
		return false
	}
	c.nc.SetReadDeadline(time.Now().Add(c.srv.opts.DataTimeout))
	if !c.mailOK || c.rcpts == 0 {
		if c.skip(size) != nil {
			return false
		}
		return c.protocolError(503, "5.5.1", "RCPT first")
	}
	max := c.srv.opts.MaxMessageBytes
	if got := c.bdatSize(); max > 0 && got+size > max {
		if c.skip(size) != nil {
			return false
		}
		c.resetTx()
		c.replyErr(errTooLarge)
		return true
	}
	if c.bdat == nil {
		c.startBdat()
	}
	t := c.bdat
	werr, rerr := c.copyChunk(t.pw, size)
	if rerr != nil {
		c.log.Info("reading a BDAT chunk failed", "err", rerr)
		c.readFailed(rerr)
		return false
	}
	t.size += size
	if werr == nil && !last {
		c.reply(250, "2.0.0", strconv.FormatInt(size, 10)+" octets received")
		return true
	}
	// The last chunk, or Data returned before the end of the chunks.
	t.pw.Close()
	res := <-t.done
	t.ended = true
	if res == errSessionPanic {
		c.reply(421, "4.3.0", "Internal error; closing the connection (session "+c.info.id+")")
		c.flush()
		return false
	}
	c.dataReply(res)
	c.resetTx()
	return true
}

func (c *conn) bdatSize() int64 {
	if c.bdat == nil {
		return 0
	}
	return c.bdat.size
}

// copyChunk passes size bytes of the connection to w straight from the
// read buffer. When w fails (Data stopped reading) the rest of the chunk
// is skipped; rerr is a failure of the connection.
func (c *conn) copyChunk(w io.Writer, size int64) (werr, rerr error) {
	for size > 0 {
		if c.br.Buffered() == 0 {
			if _, err := c.br.Peek(1); err != nil {
				return werr, unexpected(err)
			}
		}
		b, _ := c.br.Peek(int(min(int64(c.br.Buffered()), size)))
		if werr == nil {
			_, werr = w.Write(b)
		}
		c.br.Discard(len(b))
		size -= int64(len(b))
	}
	return werr, nil
}

// skip reads and drops size bytes of chunk data.
func (c *conn) skip(size int64) error {
	_, err := c.copyChunk(io.Discard, size)
	return err
}
