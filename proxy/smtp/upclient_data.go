package smtp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	gosmtp "github.com/emersion/go-smtp"
)

// Message transfer. With CHUNKING (RFC 3030) the message goes in BDAT
// chunks written straight to the connection: no dot-stuffing, no scanning.
// Without it, DATA with dot-stuffing done on whole buffers (a line starting
// with "." gets another; RFC 5321 section 4.5.2). Either way the upstream
// receives the same bytes, ending with CRLF (one is added when the content
// lacks it).

// maxKeptChunk is the largest BDAT buffer kept for the session's next
// message; a larger one (a big message) goes back to the collector.
const maxKeptChunk = 256 << 10

// Send transfers one message of the open transaction. write produces it
// into the writer it is given and must return that writer's errors.
//
// Errors: a refusal (of DATA, of a BDAT chunk or of the whole message) is
// a *gosmtp.SMTPError; the transaction then failed and the connection is
// fine (the caller sends RSET). Anything else means the upstream has not
// accepted the message and the connection is closed: a DATA or BDAT
// transfer cannot be taken back half way.
func (c *upClient) Send(ctx context.Context, write func(io.Writer) error) error {
	if c.err != nil {
		return c.err
	}
	if c.Chunking() {
		return c.sendBDAT(ctx, write)
	}
	return c.sendDATA(ctx, write)
}

// Chunking reports whether Send uses BDAT.
func (c *upClient) Chunking() bool {
	_, ok := c.ext["CHUNKING"]
	return ok
}

func (c *upClient) sendDATA(ctx context.Context, write func(io.Writer) error) error {
	if _, err := c.exchange(ctx, "DATA", 3); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	end := c.begin(ctx, c.dataTimeout)
	dw := dotWriter{w: c.w, bol: true}
	err := write(&dw)
	if err == nil {
		err = dw.finish()
	}
	var rep upReply
	if err == nil {
		rep, err = readReply(c.r)
	}
	if err = end(err); err != nil {
		return c.abort(fmt.Errorf("DATA: %w", err))
	}
	if _, err := c.check(rep, 2); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return nil
}

func (c *upClient) sendBDAT(ctx context.Context, write func(io.Writer) error) error {
	end := c.begin(ctx, c.dataTimeout)
	cw := chunkWriter{c: c, buf: c.chunk[:0], size: c.chunkSize}
	err := write(&cw)
	if err == nil {
		err = cw.finish()
	}
	err = end(err)
	clear(cw.buf[:cap(cw.buf)]) // no message text lingers
	if cap(cw.buf) <= maxKeptChunk {
		c.chunk = cw.buf[:0]
	} else {
		c.chunk = nil
	}
	var refused *gosmtp.SMTPError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refused) && c.err == nil:
		return fmt.Errorf("BDAT: %w", err)
	}
	return c.abort(fmt.Errorf("BDAT: %w", err))
}

// abort fails the connection in the middle of a message and closes it, so
// the upstream drops what it got.
func (c *upClient) abort(err error) error {
	c.fail(err)
	c.conn.Close()
	return err
}

// chunkWriter collects the message into chunks of size bytes and sends
// each as BDAT once more data follows it; finish sends the rest as
// BDAT n LAST. After a refusal or failure every Write returns that error.
type chunkWriter struct {
	c    *upClient
	buf  []byte
	size int
	n    int64   // content bytes so far
	tail [2]byte // the content's last two bytes
	err  error
}

func (cw *chunkWriter) Write(p []byte) (int, error) {
	if cw.err != nil {
		return 0, cw.err
	}
	n := len(p)
	noteTail(&cw.tail, p)
	cw.n += int64(n)
	for len(p) > 0 {
		if len(cw.buf) == cw.size {
			if cw.err = cw.c.chunk1(cw.buf, false); cw.err != nil {
				return 0, cw.err
			}
			cw.buf = cw.buf[:0]
		}
		if len(cw.buf) == 0 && len(p) > cw.size {
			// A full chunk with more behind it goes out without a copy.
			if cw.err = cw.c.chunk1(p[:cw.size], false); cw.err != nil {
				return 0, cw.err
			}
			p = p[cw.size:]
			continue
		}
		k := min(cw.size-len(cw.buf), len(p))
		cw.buf = append(cw.buf, p[:k]...)
		p = p[k:]
	}
	return n, nil
}

// finish sends the last chunk, with a CRLF added when the content does not
// end with one, and reads the reply to the whole message.
func (cw *chunkWriter) finish() error {
	if cw.err != nil {
		return cw.err
	}
	if cw.n > 0 && cw.tail != [2]byte{'\r', '\n'} {
		cw.buf = append(cw.buf, '\r', '\n')
	}
	cw.err = cw.c.chunk1(cw.buf, true)
	return cw.err
}

// chunk1 sends one BDAT chunk and reads its reply. The deadline is the
// message's, set by the caller.
func (c *upClient) chunk1(data []byte, last bool) error {
	if c.err != nil {
		return c.err
	}
	var hdr [32]byte
	h := strconv.AppendInt(append(hdr[:0], "BDAT "...), int64(len(data)), 10)
	if last {
		h = append(h, " LAST"...)
	}
	h = append(h, '\r', '\n')
	c.w.Write(h)
	c.w.Write(data)
	if err := c.w.Flush(); err != nil {
		return c.fail(fmt.Errorf("write chunk: %w", err))
	}
	rep, err := readReply(c.r)
	if err != nil {
		return c.fail(err)
	}
	_, err = c.check(rep, 2)
	return err
}

// dotWriter writes DATA content with dot-stuffing, scanning whole buffers
// for "\n." rather than going byte by byte.
type dotWriter struct {
	w    *bufio.Writer
	bol  bool // the next byte starts a line
	n    int64
	tail [2]byte
}

var lfDot = []byte("\n.")

func (d *dotWriter) Write(p []byte) (int, error) {
	n := len(p)
	if n == 0 {
		return 0, nil
	}
	noteTail(&d.tail, p)
	d.n += int64(n)
	if d.bol && p[0] == '.' {
		if err := d.w.WriteByte('.'); err != nil {
			return 0, err
		}
	}
	d.bol = p[n-1] == '\n'
	for {
		i := bytes.Index(p, lfDot)
		if i < 0 {
			break
		}
		// Up to the LF, then the stuffed dot; the line's own dot starts
		// the next piece.
		if _, err := d.w.Write(p[:i+1]); err != nil {
			return 0, err
		}
		if err := d.w.WriteByte('.'); err != nil {
			return 0, err
		}
		p = p[i+1:]
	}
	if _, err := d.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// finish ends the content with CRLF (added when missing) and writes the
// terminating ".", then flushes.
func (d *dotWriter) finish() error {
	end := ".\r\n"
	if d.n > 0 && d.tail != [2]byte{'\r', '\n'} {
		end = "\r\n.\r\n"
	}
	d.w.WriteString(end)
	return d.w.Flush()
}

// noteTail keeps the last two bytes written.
func noteTail(t *[2]byte, p []byte) {
	switch len(p) {
	case 0:
	case 1:
		t[0], t[1] = t[1], p[0]
	default:
		t[0], t[1] = p[len(p)-2], p[len(p)-1]
	}
}
