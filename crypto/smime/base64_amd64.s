//go:build amd64 && !purego

#include "textflag.h"

// Base64 lines with AVX2 (W. Muła and D. Lemire, "Faster Base64 Encoding
// and Decoding using AVX2 Instructions", 2018): 24 input bytes become 32
// characters in one register. A 57-byte line is two such steps and a
// 128-bit step whose last four characters (from three bytes of the next
// line) are overwritten by the CRLF and the next line.

// Per 128-bit lane: bytes 3k+1, 3k, 3k+2, 3k+1 into each 32-bit word.
DATA b64shuf<>+0(SB)/8, $0x0405030401020001
DATA b64shuf<>+8(SB)/8, $0x0a0b090a07080607
GLOBL b64shuf<>(SB), RODATA|NOPTR, $16

// Offsets from a 6-bit value to its character, indexed by the value
// folded to 0..13 (see ENCODE).
DATA b64lut<>+0(SB)/8, $0xfcfcfcfcfcfcfc47
DATA b64lut<>+8(SB)/8, $0x000041f0edfcfcfc
GLOBL b64lut<>(SB), RODATA|NOPTR, $16

DATA b64mask1<>+0(SB)/8, $0x0fc0fc000fc0fc00
GLOBL b64mask1<>(SB), RODATA|NOPTR, $8
DATA b64mul1<>+0(SB)/8, $0x0400004004000040
GLOBL b64mul1<>(SB), RODATA|NOPTR, $8
DATA b64mask2<>+0(SB)/8, $0x003f03f0003f03f0
GLOBL b64mask2<>(SB), RODATA|NOPTR, $8
DATA b64mul2<>+0(SB)/8, $0x0100001001000010
GLOBL b64mul2<>(SB), RODATA|NOPTR, $8
DATA b64c51<>+0(SB)/8, $0x3333333333333333
GLOBL b64c51<>(SB), RODATA|NOPTR, $8
DATA b64c26<>+0(SB)/8, $0x1a1a1a1a1a1a1a1a
GLOBL b64c26<>(SB), RODATA|NOPTR, $8
DATA b64c13<>+0(SB)/8, $0x0d0d0d0d0d0d0d0d
GLOBL b64c13<>(SB), RODATA|NOPTR, $8

// ENCODE turns the bytes in R0 (laid out for b64shuf) into characters,
// with R1 and R2 as scratch and the constants in R7..R15: shuffle, the
// 6-bit values by masks and multiplications, then the values folded to
// 0..13 (52..63 to 1..12 by a saturating subtraction, 0..25 to 13) index
// the offset added to each.
#define ENCODE(R0, R1, R2, R7, R8, R9, R10, R11, R12, R13, R14, R15) \
	VPSHUFB  R8, R0, R0;  \
	VPAND    R9, R0, R1;  \
	VPMULHUW R10, R1, R1; \
	VPAND    R11, R0, R2; \
	VPMULLW  R12, R2, R2; \
	VPOR     R1, R2, R0;  \
	VPSUBUSB R13, R0, R1; \
	VPCMPGTB R0, R14, R2; \
	VPAND    R15, R2, R2; \
	VPOR     R2, R1, R1;  \
	VPSHUFB  R1, R7, R1;  \
	VPADDB   R1, R0, R0

// func encodeLinesAVX2(dst, src *byte, lines int)
// Encodes lines 57-byte lines of src into 78-byte lines of dst. It reads
// up to 7 bytes past the last line and writes 2 bytes past it.
TEXT ·encodeLinesAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lines+16(FP), CX
	VBROADCASTI128 b64shuf<>(SB), Y8
	VBROADCASTI128 b64lut<>(SB), Y7
	VPBROADCASTQ   b64mask1<>(SB), Y9
	VPBROADCASTQ   b64mul1<>(SB), Y10
	VPBROADCASTQ   b64mask2<>(SB), Y11
	VPBROADCASTQ   b64mul2<>(SB), Y12
	VPBROADCASTQ   b64c51<>(SB), Y13
	VPBROADCASTQ   b64c26<>(SB), Y14
	VPBROADCASTQ   b64c13<>(SB), Y15
	TESTQ CX, CX
	JZ    done

loop:
	VMOVDQU     0(SI), X0
	VINSERTI128 $1, 12(SI), Y0, Y0
	VMOVDQU     24(SI), X3
	VINSERTI128 $1, 36(SI), Y3, Y3
	VMOVDQU     48(SI), X4
	ENCODE(Y0, Y1, Y2, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15)
	ENCODE(Y3, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15)
	ENCODE(X4, X1, X2, X7, X8, X9, X10, X11, X12, X13, X14, X15)
	VMOVDQU Y0, 0(DI)
	VMOVDQU Y3, 32(DI)
	VMOVDQU X4, 64(DI)
	MOVW    $0x0a0d, 76(DI)
	ADDQ    $57, SI
	ADDQ    $78, DI
	DECQ    CX
	JNZ     loop

done:
	VZEROUPPER
	RET
