#include "textflag.h"

// func prefetch(p unsafe.Pointer, from, to uintptr)
//
// Prefetches the cache lines of [p+from, p+to), from < to. The sums are made
// here, not in Go, where checkptr would reject a pointer past p's object:
// prefetching neither faults nor reads memory in Go's sense, so any address,
// even an unmapped one, is only a hint.
TEXT ·prefetch(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), AX
	MOVQ from+8(FP), BX
	MOVQ to+16(FP), CX
	ADDQ AX, CX
	ADDQ BX, AX
loop:
	PREFETCHT0 0(AX)
	ADDQ $64, AX
	CMPQ AX, CX
	JCS  loop
	RET
