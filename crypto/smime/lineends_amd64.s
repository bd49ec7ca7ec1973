//go:build amd64 && !purego

#include "textflag.h"

// Counting bare LFs with AVX2, 32 positions per step: the bytes at
// positions p..p+31 are compared with LF, the bytes one before with CR,
// and the LFs without a CR before them are counted from the byte mask.

DATA lfs<>+0(SB)/8, $0x0a0a0a0a0a0a0a0a
GLOBL lfs<>(SB), RODATA|NOPTR, $8
DATA crs<>+0(SB)/8, $0x0d0d0d0d0d0d0d0d
GLOBL crs<>(SB), RODATA|NOPTR, $8

// func bareLFsAVX2(b *byte, blocks int) int
// Counts bare LFs at positions 1 .. 32*blocks of b; b holds at least
// 32*blocks+1 bytes and blocks > 0.
TEXT ·bareLFsAVX2(SB), NOSPLIT, $0-24
	MOVQ b+0(FP), SI
	MOVQ blocks+8(FP), CX
	XORQ AX, AX
	VPBROADCASTQ lfs<>(SB), Y4
	VPBROADCASTQ crs<>(SB), Y5

loop:
	VMOVDQU 1(SI), Y0
	VMOVDQU 0(SI), Y1
	VPCMPEQB Y4, Y0, Y0
	VPCMPEQB Y5, Y1, Y1
	VPANDN Y0, Y1, Y2 // LF and not CR before
	VPMOVMSKB Y2, DX
	POPCNTL DX, DX
	ADDQ DX, AX
	ADDQ $32, SI
	DECQ CX
	JNZ loop

	VZEROUPPER
	MOVQ AX, ret+16(FP)
	RET
