package smtp

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// dataBenchMessage is a 100 KB message as clients send it: a header, then
// 76-character base64 lines, with a few dot-stuffed lines.
func dataBenchMessage() (wire []byte, body int) {
	var b bytes.Buffer
	b.WriteString("From: a@example.test\r\nTo: b@example.test\r\nSubject: bench\r\n\r\n")
	raw := make([]byte, 57)
	for i := 0; b.Len() < 100<<10; i++ {
		for j := range raw {
			raw[j] = byte(i*7 + j)
		}
		if i%200 == 0 {
			b.WriteString("..stuffed line\r\n")
		}
		b.WriteString(base64.StdEncoding.EncodeToString(raw))
		b.WriteString("\r\n")
	}
	body = b.Len()
	b.WriteString(".\r\n")
	return b.Bytes(), body
}

// BenchmarkDataReader: the DATA reader alone, from a buffered reader into
// a growing buffer as data.go reads it (MB/s of wire bytes).
func BenchmarkDataReader(b *testing.B) {
	wire, _ := dataBenchMessage()
	src := bytes.NewReader(wire)
	br := bufio.NewReaderSize(src, readBufSize)
	var out bytes.Buffer
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(wire)
		br.Reset(src)
		out.Reset()
		r := newDotReader(br, 50<<20, maxDataLine)
		if _, err := out.ReadFrom(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerDATA: MAIL, RCPT and a 100 KB DATA through the whole
// server over net.Pipe, the session discarding the message.
func BenchmarkServerDATA(b *testing.B) {
	wire, _ := dataBenchMessage()
	ts := &testServer{rec: &recorder{}}
	ts.srv = newServer(serverOptions{
		Hostname: "proxy.test", InsecureAuth: true, MaxMessageBytes: 50 << 20,
		CommandTimeout: time.Minute, DataTimeout: time.Minute,
		NewSession: func(connInfo) serverSession { return discardSession{fakeSession{ts.rec}} },
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	defer ts.srv.Close()
	c := ts.pipe(b)
	login(b, c)
	cmds := "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		io.WriteString(c, cmds)
		readUntil(b, c, buf, "354 ")
		c.Write(wire)
		readUntil(b, c, buf, "250 2.0.0 OK")
	}
}

func readUntil(b testing.TB, c io.Reader, buf []byte, want string) {
	var got strings.Builder
	for !strings.Contains(got.String(), want) {
		n, err := c.Read(buf)
		if err != nil {
			b.Fatalf("read: %v (so far %q)", err, got.String())
		}
		got.Write(buf[:n])
	}
}

// discardSession reads and drops the message.
type discardSession struct{ fakeSession }

func (discardSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
