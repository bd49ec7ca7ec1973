//go:build amd64 && !purego

package smime

import "golang.org/x/sys/cpu"

// hasAVX2 selects the AVX2 loops for base64 lines and the bare-LF count
// (read only; set from the CPU's features).
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasPOPCNT

//go:noescape
func encodeLinesAVX2(dst, src *byte, lines int)

//go:noescape
func bareLFsAVX2(b *byte, blocks int) int

// encodeLinesArch encodes all but the last of lines whole lines with
// AVX2 (which reads a few bytes past a line and writes two past it) and
// returns how many it did.
func encodeLinesArch(dst, src []byte, lines int) int {
	if !hasAVX2 || lines < 2 {
		return 0
	}
	_, _ = dst[lines*b64LineOut-1], src[lines*b64LineIn-1]
	encodeLinesAVX2(&dst[0], &src[0], lines-1)
	return lines - 1
}

// bareLFsArch counts the bare LFs among b[1:n] with AVX2 and returns the
// count and n; n is 1 when it did nothing.
func bareLFsArch(b []byte) (count, n int) {
	blocks := (len(b) - 1) / 32
	if !hasAVX2 || blocks < 2 {
		return 0, 1
	}
	return bareLFsAVX2(&b[0], blocks), 1 + blocks*32
}

//go:noescape
func decodeLinesAVX2(dst, src *byte, lines int) int

// decodeLinesArch decodes the run of whole 76-character lines (CRLF
// ended, no padding) at the start of src into dst with AVX2 and returns
// how many it decoded; it stops early where it could not read 80 bytes
// of src or write 64 of dst for a line.
func decodeLinesArch(dst, src []byte) int {
	if !hasAVX2 || len(src) < 80 || len(dst) < 64 {
		return 0
	}
	lines := min((len(src)-2)/b64LineOut, (len(dst)-64)/b64LineIn+1)
	return decodeLinesAVX2(&dst[0], &src[0], lines)
}
