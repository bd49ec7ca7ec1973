//go:build !amd64 || purego

package smime

func encodeLinesArch(dst, src []byte, lines int) int { return 0 }

func bareLFsArch(b []byte) (count, n int) { return 0, 1 }

func decodeLinesArch(dst, src []byte) int { return 0 }
