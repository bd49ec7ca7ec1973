package smime

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Streaming output of application/pkcs7-mime enveloped-data: the entity is
// written to an io.Writer as it is encrypted, so neither the ciphertext nor
// its base64 form is ever held whole. With every length known up front the
// DER has definite lengths (the padded CBC length is the content length
// rounded up to the next block), so what is written is the same DER that
// EncryptEntity returns, as base64 in 76-character lines.

// Content is an entity of known length that writes itself: a
// SignedEntity, an EntityBytes, or another Envelope (encrypt-then-sign
// aside, layers nest this way). WriteTo must write exactly Len bytes and
// may be called more than once.
type Content interface {
	Len() int64
	WriteTo(w io.Writer) (int64, error)
}

// EntityBytes is a MIME entity held in memory (header fields, empty line,
// body; CRLF line ends) as Content.
type EntityBytes []byte

// Len returns len(b).
func (b EntityBytes) Len() int64 { return int64(len(b)) }

// WriteTo writes b to w.
func (b EntityBytes) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

var (
	// ErrEnvelopeWritten: Envelope.WriteTo was called a second time.
	ErrEnvelopeWritten = errors.New("smime: envelope already written (its content key is gone)")
	// ErrContentLength: a Content wrote a different number of bytes than
	// its Len announced, so the DER lengths written before it are wrong.
	ErrContentLength = errors.New("smime: content length differs from its Len")
)

// maxEnvelopeContent bounds what NewEnvelope takes: DER lengths here are
// written in at most four octets.
const maxEnvelopeContent = 1<<32 - 1<<20

// cbcChunk is the plaintext encrypted per step of a CBC envelope: 3.6 KB,
// a multiple of the AES block and of a 57-byte base64 line, so the
// ciphertext is encoded while it is still in the L1 cache. Measured:
// 3.6 KB chunks beat 14.6 KB ones at 100 KB (fresh buffers after a
// collection cost more than the extra Write calls) and match them at
// 10 MB; 1.8 KB chunks are no better.
const cbcChunk = 57 * 64

// Envelope is the application/pkcs7-mime entity of an EnvelopedData
// (AES-CBC) or AuthEnvelopedData (AES-GCM) around a Content, ready to be
// written. NewEnvelope does everything that can fail for reasons other
// than writing (recipient checks, key transport, random numbers);
// WriteTo then encrypts and writes, and fails only when the destination
// or the content's own WriteTo fails.
type Envelope struct {
	content Content
	size    int64 // content.Len()
	header  string
	prefix  []byte // DER up to the first ciphertext octet
	ctLen   int64
	tail    int64            // DER after the ciphertext: the mac of AuthEnvelopedData
	mode    cipher.BlockMode // CBC
	aead    cipher.AEAD      // GCM
	nonce   []byte
	used    bool
}

// NewEnvelope prepares c for encryption to every recipient: a fresh
// content key, one RecipientInfo per recipient (key transport for RSA,
// ECDH key agreement for EC), the IV or nonce, and the DER header. The
// content is not read until WriteTo, and must not change before then.
func NewEnvelope(c Content, to []Recipient, opts EncryptOptions) (*Envelope, error) {
	size := c.Len()
	if size < 0 || size > maxEnvelopeContent {
		return nil, fmt.Errorf("%w: %d bytes of content", ErrContentLength, size)
	}
	k, err := newContentKey(to, opts)
	if err != nil {
		return nil, err
	}
	defer clear(k.cek)
	block, err := aes.NewCipher(k.cek)
	if err != nil {
		return nil, err
	}
	e := &Envelope{content: c, size: size, header: pkcs7MIMEHeader(k.aead)}
	if k.aead {
		e.nonce = k.iv
		if e.aead, err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
		e.ctLen, e.tail = size, int64(macTLVLen(true, gcmTagSize))
		// AuthEnvelopedData is version 0 whatever its RecipientInfos are (RFC 5083 §2.1).
		e.prefix = envelopePrefix(true, 0, k.ris, gcmAlgorithmID(k.cipher, e.nonce), int(size), gcmTagSize, 0)
		return e, nil
	}
	iv := k.iv
	ci, _ := k.cipher.info()
	e.mode = cipher.NewCBCEncrypter(block, iv)
	e.ctLen = size + aes.BlockSize - size%aes.BlockSize
	e.prefix = envelopePrefix(false, k.version, k.ris, cbcAlgorithmID(ci, iv), int(e.ctLen), 0, 0)
	return e, nil
}

// Len returns the number of bytes WriteTo writes.
func (e *Envelope) Len() int64 {
	return int64(len(e.header)) + base64Len(int64(len(e.prefix))+e.ctLen+e.tail)
}

// Header returns the header fields of the entity WriteTo writes, up to
// and including the empty line: application/pkcs7-mime with
// smime-type=enveloped-data (or authEnveloped-data), base64, smime.p7m.
func (e *Envelope) Header() string { return e.header }

// WriteTo writes the entity: Header, then the envelope's DER as base64 in
// 76-character CRLF lines, encrypting the content on the way. For AES-CBC
// the content passes through a 3.6 KB buffer; AES-GCM (one-shot in Go's
// AEAD) holds one copy of the content. It can be called once: the content
// key is dropped when it returns, and a second call gives
// ErrEnvelopeWritten. Errors of w are returned wrapped (errors.Is finds
// them); a Content that writes other than Len bytes gives ErrContentLength.
func (e *Envelope) WriteTo(w io.Writer) (int64, error) {
	if e.used {
		return 0, ErrEnvelopeWritten
	}
	e.used = true
	defer func() { e.mode, e.aead, e.content = nil, nil, nil }()
	cw := &countWriter{w: w}
	if _, err := io.WriteString(cw, e.header); err != nil {
		return cw.n, fmt.Errorf("write envelope: %w", err)
	}
	// One allocation holds the base64 lines and, for CBC, the chunk of
	// ciphertext encoded into them.
	bufs := make([]byte, b64Block*b64LineOut+cbcChunk)
	b := &base64Writer{w: cw, out: bufs[: 0 : b64Block*b64LineOut]}
	b.Write(e.prefix)
	var err error
	if e.aead != nil {
		err = e.writeGCM(b)
	} else {
		err = e.writeCBC(b, bufs[b64Block*b64LineOut:])
	}
	if err == nil {
		err = b.Close()
	}
	if err != nil {
		return cw.n, fmt.Errorf("write envelope: %w", err)
	}
	return cw.n, nil
}

func (e *Envelope) writeCBC(b *base64Writer, buf []byte) error {
	s := &cbcWriter{mode: e.mode, out: b, left: e.size, buf: buf}
	n, err := e.content.WriteTo(s)
	if b.err != nil {
		return b.err // the destination failed: that is the news, not what the content made of it
	}
	if err != nil {
		return err
	}
	if n != e.size || s.left != 0 {
		return fmt.Errorf("%w: %d bytes written, %d announced", ErrContentLength, n, e.size)
	}
	return s.finish()
}

func (e *Envelope) writeGCM(b *base64Writer) error {
	buf := &boundedBuffer{b: make([]byte, 0, e.size+gcmTagSize)}
	n, err := e.content.WriteTo(buf)
	if err != nil {
		return err
	}
	if n != e.size || len(buf.b) != int(e.size) {
		return fmt.Errorf("%w: %d bytes written, %d announced", ErrContentLength, n, e.size)
	}
	sealed := e.aead.Seal(buf.b[:0], e.nonce, buf.b, nil)
	b.Write(sealed[:e.size])
	b.Write(appendLength([]byte{0x04}, gcmTagSize))
	b.Write(sealed[e.size:])
	return b.err
}

// cbcWriter encrypts what is written to it with CBC and passes the
// ciphertext on, holding back a partial block. The plaintext is read
// where it lies (CBC from source to buffer), never copied first.
type cbcWriter struct {
	mode cipher.BlockMode
	out  io.Writer
	left int64 // bytes the content may still write
	part [aes.BlockSize]byte
	np   int
	buf  []byte
}

func (s *cbcWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > s.left {
		return 0, fmt.Errorf("%w: more bytes than announced", ErrContentLength)
	}
	s.left -= int64(len(p))
	n := len(p)
	if s.np > 0 {
		k := copy(s.part[s.np:], p)
		s.np += k
		p = p[k:]
		if s.np < aes.BlockSize {
			return n, nil
		}
		s.np = 0
		s.mode.CryptBlocks(s.buf[:aes.BlockSize], s.part[:])
		if _, err := s.out.Write(s.buf[:aes.BlockSize]); err != nil {
			return 0, err
		}
	}
	for len(p) >= aes.BlockSize {
		k := min(len(p)&^(aes.BlockSize-1), len(s.buf))
		s.mode.CryptBlocks(s.buf[:k], p[:k])
		if _, err := s.out.Write(s.buf[:k]); err != nil {
			return 0, err
		}
		p = p[k:]
	}
	s.np = copy(s.part[:], p)
	return n, nil
}

// finish pads the last block (RFC 5652 §6.3) and writes it.
func (s *cbcWriter) finish() error {
	pad := byte(aes.BlockSize - s.np)
	for i := s.np; i < aes.BlockSize; i++ {
		s.part[i] = pad
	}
	s.mode.CryptBlocks(s.buf[:aes.BlockSize], s.part[:])
	clear(s.part[:])
	_, err := s.out.Write(s.buf[:aes.BlockSize])
	return err
}

// boundedBuffer collects at most cap(b) - gcmTagSize bytes.
type boundedBuffer struct{ b []byte }

func (f *boundedBuffer) Write(p []byte) (int, error) {
	if len(p) > cap(f.b)-gcmTagSize-len(f.b) {
		return 0, fmt.Errorf("%w: more bytes than announced", ErrContentLength)
	}
	f.b = append(f.b, p...)
	return len(p), nil
}

// countWriter counts what reaches w.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ComposeContent writes a whole message: the outer header fields (a
// MIME-Version among them is skipped), "MIME-Version: 1.0", then the
// entity c — a SignedEntity, an Envelope or EntityBytes. It is Compose
// for entities that write themselves.
func ComposeContent(w io.Writer, outer Header, c Content) error {
	var b strings.Builder
	for _, f := range outer {
		if !strings.EqualFold(f.Name, "MIME-Version") {
			b.Write(f.Raw)
		}
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("compose message: %w", err)
	}
	if _, err := c.WriteTo(w); err != nil {
		return fmt.Errorf("compose message: %w", err)
	}
	return nil
}
