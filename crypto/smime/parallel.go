package smime

import (
	"bytes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"runtime"
	"sync"
)

// Receiving a large message is dominated by two linear passes, base64
// decoding and CBC decryption. Both split cleanly in two: base64 at a line
// break, CBC decryption at a block boundary (each plaintext block depends
// only on its own and the previous ciphertext block). On two cores each
// pass then takes about half the time; below parallelMin the hand-over
// costs more than it saves.
const parallelMin = 256 << 10

// useParallel reports whether n bytes are worth splitting across two
// goroutines.
func useParallel(n int) bool {
	return n >= parallelMin && runtime.GOMAXPROCS(0) >= 2
}

// decryptCBCBlocks runs CBC decryption of src into dst (which may be the
// same buffer), in two halves side by side for large inputs. len(src) is a
// positive multiple of the block size.
func decryptCBCBlocks(block cipher.Block, iv, dst, src []byte) {
	bs := block.BlockSize()
	if !useParallel(len(src)) {
		cipher.NewCBCDecrypter(block, iv).CryptBlocks(dst, src)
		return
	}
	mid := len(src) / 2 / bs * bs
	// The second half's IV is the first half's last ciphertext block,
	// which in-place decryption of the first half overwrites: copy it.
	iv2 := bytes.Clone(src[mid-bs : mid])
	var wg sync.WaitGroup
	wg.Go(func() {
		cipher.NewCBCDecrypter(block, iv2).CryptBlocks(dst[mid:], src[mid:])
	})
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(dst[:mid], src[:mid])
	wg.Wait()
}

// decodeLinesParallel is decodeLines over the whole body, split at a line
// break near the middle for large bodies: the second half is decoded in
// another goroutine at a provisional offset and moved down against the
// first half afterwards. out has base64.StdEncoding.DecodedLen(len(body))
// bytes.
func decodeLinesParallel(out, body []byte) (int, bool) {
	if !useParallel(len(body)) {
		return decodeLines(out, body, nil)
	}
	cut := bytes.IndexByte(body[len(body)/2:], '\n')
	if cut < 0 {
		return decodeLines(out, body, nil)
	}
	cut += len(body)/2 + 1
	first, second := body[:cut], body[cut:]
	off := base64.StdEncoding.DecodedLen(len(first)) // at least what first decodes to
	var n2 int
	var ok2 bool
	var wg sync.WaitGroup
	wg.Go(func() { n2, ok2 = decodeLines(out[off:], second, nil) })
	n1, ok1 := decodeLines(out[:off], first, second)
	wg.Wait()
	if !ok1 || !ok2 {
		return 0, false
	}
	copy(out[n1:], out[off:off+n2])
	return n1 + n2, true
}

// decodeLines decodes body line by line into out. It fails (for the
// caller's slower fallbacks) on a line that does not hold whole quanta, on
// invalid base64, and on anything but empty lines after a padded line,
// including in tail, the data that follows body.
func decodeLines(out, body, tail []byte) (int, bool) {
	n := 0
	for rest := body; len(rest) > 0; {
		if k := decodeLinesArch(out[n:], rest); k > 0 {
			n, rest = n+k*b64LineIn, rest[k*b64LineOut:]
			continue
		}
		// A whole 76-character line that decodes here holds no LF, so
		// its CRLF is the end IndexByte would find.
		if len(rest) >= 78 && rest[76] == '\r' && rest[77] == '\n' && len(out)-n >= b64LineIn && decodeFullLine(out[n:], rest) {
			n, rest = n+b64LineIn, rest[78:]
			continue
		}
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		if len(line)%4 != 0 {
			return n, false
		}
		if len(line) == 76 && len(out)-n >= b64LineIn && decodeFullLine(out[n:], line) {
			n += b64LineIn
			continue // no padding in a line that decodes here
		}
		m, err := base64.StdEncoding.Decode(out[n:], line)
		n += m
		if err != nil {
			return n, false
		}
		// Padding ends the data: only empty lines may follow.
		if line[len(line)-1] == '=' && (len(bytes.TrimSpace(rest)) != 0 || len(bytes.TrimSpace(tail)) != 0) {
			return n, false
		}
	}
	return n, true
}

// b64Values maps a base64 character to its 6-bit value, anything else
// (padding included) to 0xff (read only).
var b64Values = func() (t [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// decodeFullLine decodes a 76-character line without padding into the 57
// bytes of dst, eight characters at a time; it reports false, leaving the
// line to encoding/base64, on any character outside the alphabet.
func decodeFullLine(dst, line []byte) bool {
	line, dst = line[:76:76], dst[:b64LineIn:b64LineIn]
	var bad byte
	for i, o := 0, 0; i < 72; i, o = i+8, o+6 {
		c := line[i : i+8 : i+8]
		a0, a1, a2, a3 := b64Values[c[0]], b64Values[c[1]], b64Values[c[2]], b64Values[c[3]]
		a4, a5, a6, a7 := b64Values[c[4]], b64Values[c[5]], b64Values[c[6]], b64Values[c[7]]
		bad |= a0 | a1 | a2 | a3 | a4 | a5 | a6 | a7
		v := uint64(a0)<<42 | uint64(a1)<<36 | uint64(a2)<<30 | uint64(a3)<<24 |
			uint64(a4)<<18 | uint64(a5)<<12 | uint64(a6)<<6 | uint64(a7)
		binary.BigEndian.PutUint64(dst[o:], v<<16) // the two spare bytes are overwritten next
	}
	a0, a1, a2, a3 := b64Values[line[72]], b64Values[line[73]], b64Values[line[74]], b64Values[line[75]]
	bad |= a0 | a1 | a2 | a3
	v := uint32(a0)<<18 | uint32(a1)<<12 | uint32(a2)<<6 | uint32(a3)
	dst[54], dst[55], dst[56] = byte(v>>16), byte(v>>8), byte(v)
	return bad&0xc0 == 0
}
