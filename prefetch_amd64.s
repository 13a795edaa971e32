#include "textflag.h"

// func prefetchAfter(p *byte, n uintptr)
//
// Prefetches the cache lines of [p+n, p+3n), n > 0. Prefetching neither
// faults nor reads memory in Go's sense: an address past p's object, even an
// unmapped one, is only a hint.
TEXT ·prefetchAfter(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ n+8(FP), BX
	ADDQ BX, AX
	LEAQ 0(AX)(BX*2), CX
loop:
	PREFETCHT0 0(AX)
	ADDQ $64, AX
	CMPQ AX, CX
	JCS  loop
	RET
