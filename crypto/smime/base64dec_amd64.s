//go:build amd64 && !purego

#include "textflag.h"

// Decoding whole 76-character base64 lines with AVX2 (W. Muła and
// D. Lemire, "Faster Base64 Encoding and Decoding using AVX2
// Instructions", 2018): 32 characters are checked and turned into 24
// bytes per step, two steps and a 128-bit step of 12 characters a line.
// A character outside the alphabet (padding, white space) makes the two
// nibble lookups overlap; the line is then left to the caller.

DATA b64dlo<>+0(SB)/8, $0x1111111111111115
DATA b64dlo<>+8(SB)/8, $0x1a1b1b1b1a131111
GLOBL b64dlo<>(SB), RODATA|NOPTR, $16
DATA b64dhi<>+0(SB)/8, $0x0804080402011010
DATA b64dhi<>+8(SB)/8, $0x1010101010101010
GLOBL b64dhi<>(SB), RODATA|NOPTR, $16
DATA b64droll<>+0(SB)/8, $0xb9b9bfbf04131000
DATA b64droll<>+8(SB)/8, $0x0000000000000000
GLOBL b64droll<>(SB), RODATA|NOPTR, $16
DATA b64dpack<>+0(SB)/8, $0x090a040506000102
DATA b64dpack<>+8(SB)/8, $0xffffffff0c0d0e08
GLOBL b64dpack<>(SB), RODATA|NOPTR, $16
DATA b64dperm<>+0(SB)/8, $0x0000000100000000
DATA b64dperm<>+8(SB)/8, $0x0000000400000002
DATA b64dperm<>+16(SB)/8, $0x0000000600000005
DATA b64dperm<>+24(SB)/8, $0x0000000700000007
GLOBL b64dperm<>(SB), RODATA|NOPTR, $32
DATA b64dtail<>+0(SB)/8, $0xffffffffffffffff
DATA b64dtail<>+8(SB)/8, $0x00000000ffffffff
GLOBL b64dtail<>(SB), RODATA|NOPTR, $16
DATA b64d2f<>+0(SB)/8, $0x2f2f2f2f2f2f2f2f
GLOBL b64d2f<>(SB), RODATA|NOPTR, $8
DATA b64dm1<>+0(SB)/8, $0x0140014001400140
GLOBL b64dm1<>(SB), RODATA|NOPTR, $8
DATA b64dm2<>+0(SB)/8, $0x0001100000011000
GLOBL b64dm2<>(SB), RODATA|NOPTR, $8

// CHECK leaves in R0 the 6-bit values of the characters in R0 and in R1
// a value that is non-zero where a character is not base64; R2 and R3
// are scratch. Constants: R8 lo lookup, R9 hi lookup, R10 roll, R11 0x2f.
#define CHECK(R0, R1, R2, R3, R8, R9, R10, R11) \
	VPSRLD   $4, R0, R2;  \
	VPAND    R11, R2, R2; \
	VPAND    R11, R0, R1; \
	VPSHUFB  R1, R8, R1;  \
	VPSHUFB  R2, R9, R3;  \
	VPAND    R3, R1, R1;  \
	VPCMPEQB R11, R0, R3; \
	VPADDB   R3, R2, R2;  \
	VPSHUFB  R2, R10, R2; \
	VPADDB   R2, R0, R0

// PACK turns four 6-bit values per 32-bit word into three bytes at the
// start of each 128-bit lane. Constants: R12, R13 multipliers, R14 shuffle.
#define PACK(R0, R12, R13, R14) \
	VPMADDUBSW R12, R0, R0; \
	VPMADDWD   R13, R0, R0; \
	VPSHUFB    R14, R0, R0

// func decodeLinesAVX2(dst, src *byte, lines int) int
// Decodes up to lines lines of 76 characters and CRLF from src into 57
// bytes each of dst, stopping at the first line that is not that; returns
// the number decoded. It reads 80 bytes of src and writes 64 bytes of dst
// from the start of each line.
TEXT ·decodeLinesAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lines+16(FP), CX
	XORQ AX, AX
	VBROADCASTI128 b64dlo<>(SB), Y8
	VBROADCASTI128 b64dhi<>(SB), Y9
	VBROADCASTI128 b64droll<>(SB), Y10
	VPBROADCASTQ   b64d2f<>(SB), Y11
	VPBROADCASTQ   b64dm1<>(SB), Y12
	VPBROADCASTQ   b64dm2<>(SB), Y13
	VBROADCASTI128 b64dpack<>(SB), Y14
	VMOVDQU        b64dperm<>(SB), Y15
	VMOVDQU        b64dtail<>(SB), X7
	TESTQ CX, CX
	JZ    done

loop:
	MOVWLZX 76(SI), DX
	CMPL    DX, $0x0a0d
	JNE     done
	VMOVDQU 0(SI), Y0
	VMOVDQU 32(SI), Y4
	VMOVDQU 64(SI), X5
	CHECK(Y0, Y1, Y2, Y3, Y8, Y9, Y10, Y11)
	VPTEST  Y1, Y1
	JNZ     done
	CHECK(Y4, Y1, Y2, Y3, Y8, Y9, Y10, Y11)
	VPTEST  Y1, Y1
	JNZ     done
	CHECK(X5, X1, X2, X3, X8, X9, X10, X11)
	VPTEST  X7, X1
	JNZ     done
	PACK(Y0, Y12, Y13, Y14)
	PACK(Y4, Y12, Y13, Y14)
	PACK(X5, X12, X13, X14)
	VPERMD  Y0, Y15, Y0
	VPERMD  Y4, Y15, Y4
	VMOVDQU Y0, 0(DI)
	VMOVDQU Y4, 24(DI)
	VMOVDQU X5, 48(DI)
	INCQ    AX
	ADDQ    $78, SI
	ADDQ    $57, DI
	CMPQ    AX, CX
	JNE     loop

done:
	VZEROUPPER
	MOVQ AX, ret+24(FP)
	RET
