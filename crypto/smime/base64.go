package smime

import (
	"encoding/base64"
	"encoding/binary"
	"io"
)

// Base64 output in 76-character lines ended by CRLF (RFC 2045 §6.8), the
// form of every S/MIME body this package writes. Encoding costs about a
// quarter of AES-CBC per byte, so whole 57-byte lines are encoded straight
// into place with a 12-bit → two-character table (about twice the speed of
// encoding/base64 plus spreading the lines out); a last short line goes
// through encoding/base64 for its padding.

const (
	b64LineIn  = 57 // input bytes per 76-character line
	b64LineOut = 78 // 76 characters and CRLF
	// b64Block is how many lines base64Writer encodes per Write to the
	// destination: about 5 KB, small enough to stay in the L1 cache.
	b64Block = 64
)

// b64Pairs maps 12 bits to their two base64 characters, little-endian
// (read only). 8 KB: it stays in the L1 cache beside the data.
var b64Pairs = func() (t [1 << 12]uint16) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range t {
		t[i] = uint16(alphabet[i>>6]) | uint16(alphabet[i&63])<<8
	}
	return t
}()

// put8 writes the eight characters of the 48 bits in v.
func put8(out []byte, v uint64) {
	p := &b64Pairs
	binary.LittleEndian.PutUint64(out, uint64(p[v>>36&0xfff])|uint64(p[v>>24&0xfff])<<16|
		uint64(p[v>>12&0xfff])<<32|uint64(p[v&0xfff])<<48)
}

// encodeLine writes the 57 bytes at the start of src as one 76-character
// line plus CRLF into the first 78 bytes of dst. Unrolled with constant
// offsets, so the compiler checks bounds once.
func encodeLine(dst, src []byte) {
	in, o := src[:b64LineIn:b64LineIn], dst[:b64LineOut:b64LineOut]
	put8(o[0:8], binary.BigEndian.Uint64(in[0:8])>>16)
	put8(o[8:16], binary.BigEndian.Uint64(in[6:14])>>16)
	put8(o[16:24], binary.BigEndian.Uint64(in[12:20])>>16)
	put8(o[24:32], binary.BigEndian.Uint64(in[18:26])>>16)
	put8(o[32:40], binary.BigEndian.Uint64(in[24:32])>>16)
	put8(o[40:48], binary.BigEndian.Uint64(in[30:38])>>16)
	put8(o[48:56], binary.BigEndian.Uint64(in[36:44])>>16)
	put8(o[56:64], binary.BigEndian.Uint64(in[42:50])>>16)
	put8(o[64:72], binary.BigEndian.Uint64(in[48:56])>>16)
	v := uint32(in[54])<<16 | uint32(in[55])<<8 | uint32(in[56])
	p := &b64Pairs
	binary.LittleEndian.PutUint32(o[72:76], uint32(p[v>>12&0xfff])|uint32(p[v&0xfff])<<16)
	o[76], o[77] = '\r', '\n'
}

// encodeLines writes the first lines 57-byte lines of src as lines of
// dst: with AVX2 where the CPU has it (simd_amd64.go), the rest here.
func encodeLines(dst, src []byte, lines int) {
	for i := encodeLinesArch(dst, src, lines); i < lines; i++ {
		encodeLine(dst[i*b64LineOut:], src[i*b64LineIn:])
	}
}

// appendBase64Lines appends src as base64 in 76-character lines, each
// ending in CRLF; a short last line is padded.
func appendBase64Lines(dst, src []byte) []byte {
	lines := len(src) / b64LineIn
	n := len(dst)
	if need := n + lines*b64LineOut + b64LineOut; cap(dst) < need {
		grown := make([]byte, n, need)
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:n+lines*b64LineOut]
	encodeLines(dst[n:], src, lines)
	if rest := src[lines*b64LineIn:]; len(rest) > 0 {
		dst = base64.StdEncoding.AppendEncode(dst, rest)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// base64Len is the length of n bytes written as base64 lines.
func base64Len(n int64) int64 {
	if n == 0 {
		return 0
	}
	lines := (n + b64LineIn - 1) / b64LineIn
	return (n+2)/3*4 + 2*lines
}

// base64Writer encodes what is written to it as base64 lines to w, a
// block of lines per Write to w, holding back a partial line until more
// comes or Close. Its buffers are small and fixed: nothing of the size of
// the data is held. After an error of w every call returns that error.
type base64Writer struct {
	w     io.Writer
	carry [b64LineIn]byte // a partial line
	nc    int
	out   []byte // encoded lines not yet written; cap b64Block lines
	n     int64  // bytes written to w
	err   error
}

func newBase64Writer(w io.Writer) *base64Writer {
	return &base64Writer{w: w, out: make([]byte, 0, b64Block*b64LineOut)}
}

func (b *base64Writer) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n := len(p)
	if b.nc > 0 {
		k := copy(b.carry[b.nc:], p)
		b.nc += k
		p = p[k:]
		if b.nc < b64LineIn {
			return n, nil
		}
		b.nc = 0
		b.encode(b.carry[:])
	}
	whole := len(p) - len(p)%b64LineIn
	for done := 0; done < whole && b.err == nil; {
		k := min(whole-done, (cap(b.out)-len(b.out))/b64LineOut*b64LineIn)
		b.encode(p[done : done+k])
		done += k
	}
	b.nc = copy(b.carry[:], p[whole:])
	if b.err != nil {
		return 0, b.err
	}
	return n, nil
}

// encode appends whole lines of src (a multiple of 57 bytes that fits
// into out) and writes out when it is full.
func (b *base64Writer) encode(src []byte) {
	n := len(b.out)
	lines := len(src) / b64LineIn
	b.out = b.out[:n+lines*b64LineOut]
	encodeLines(b.out[n:], src, lines)
	if cap(b.out)-len(b.out) < b64LineOut {
		b.flush()
	}
}

func (b *base64Writer) flush() {
	if b.err == nil && len(b.out) > 0 {
		var m int
		m, b.err = b.w.Write(b.out)
		b.n += int64(m)
	}
	b.out = b.out[:0]
}

// Close writes the partial line, padded, and everything still buffered.
// It does not close w.
func (b *base64Writer) Close() error {
	if b.nc > 0 && b.err == nil {
		b.out = append(base64.StdEncoding.AppendEncode(b.out, b.carry[:b.nc]), '\r', '\n')
		b.nc = 0
	}
	b.flush()
	return b.err
}
