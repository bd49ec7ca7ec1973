package smime

import (
	"bytes"
	"encoding/binary"
)

// Scans over whole messages before signing and encrypting. The 7-bit
// check runs a machine word at a time: a word without NUL, CR or LF is
// dismissed with a few arithmetic operations, and only words that hold
// one are looked at byte by byte. Mail lines are about 78 bytes long, so
// nine words in ten take the fast path, where three bytes.IndexByte calls
// and a line split per line cost more than the scan itself.

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasZero is non-zero when some byte of x is zero (exact as a test; the
// bits it sets above the first zero byte may be wrong).
func hasZero(x uint64) uint64 { return (x - ones) &^ x & highs }

// bareLFs counts the LFs in b that do not follow a CR. With AVX2 it
// compares 32 bytes at a time with LF and the 32 before them with CR
// (about 0.1 cycle per byte); elsewhere, and for the few bytes AVX2
// leaves, a search for each LF (vectorised) beats the word-at-a-time
// scan: an LF is the only byte looked for, and the check of the byte
// before it is one comparison.
func bareLFs(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	n, i := bareLFsArch(b)
	if b[0] == '\n' {
		n++
	}
	for ; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return n
		}
		i += j
		if b[i-1] != '\r' {
			n++
		}
	}
	return n
}

// is7bit reports whether body is valid 7bit data (RFC 2045 §2.7): no
// octets above 127, no NULs, no bare CR or LF, lines of at most 998 octets.
func is7bit(body []byte) bool {
	var high uint64
	line := 0 // octets since the last LF, a CR included
	i := 0
	for ; i+8 <= len(body); i += 8 {
		x := binary.LittleEndian.Uint64(body[i:])
		high |= x
		if hasZero(x)|hasZero(x^'\n'*ones)|hasZero(x^'\r'*ones) == 0 {
			if line += 8; line > 998+1 {
				return false
			}
			continue
		}
		var ok bool
		if line, ok = scan7bit(body, i, i+8, line); !ok {
			return false
		}
	}
	line, ok := scan7bit(body, i, len(body), line)
	// A last line without LF has no CR in it (a CR must precede an LF).
	return ok && line <= 998 && high&highs == 0 && isASCII(body[i:])
}

// scan7bit checks body[from:to] byte by byte for is7bit, given the octets
// of the current line before from; it returns them at to.
func scan7bit(body []byte, from, to, line int) (int, bool) {
	for j := from; j < to; j++ {
		switch body[j] {
		case 0:
			return 0, false
		case '\r':
			if j+1 >= len(body) || body[j+1] != '\n' {
				return 0, false // bare CR
			}
		case '\n':
			if j == 0 || body[j-1] != '\r' {
				return 0, false // bare LF
			}
			line = 0
			continue
		}
		if line++; line > 998+1 { // 998 octets and the CR
			return 0, false
		}
	}
	return line, true
}

// isASCII reports whether b has no octet above 127, eight at a time.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&highs != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
