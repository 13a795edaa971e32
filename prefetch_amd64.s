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

// func prefetchStack()
//
// Prefetches the cache lines from the stack pointer up to the next 2 KiB
// boundary: on a goroutine's 2 KiB stack, which the runtime aligns to its
// size, the frames of the caller's callers, up to the stack's top.
TEXT ·prefetchStack(SB), NOSPLIT, $0-0
	MOVQ SP, AX
	MOVQ AX, CX
	ORQ  $2047, CX
	INCQ CX
stack:
	PREFETCHT0 0(AX)
	ADDQ $64, AX
	CMPQ AX, CX
	JCS  stack
	RET
