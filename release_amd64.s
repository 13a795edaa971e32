//go:build !race

#include "textflag.h"

// func storeRelease(p *atomic.Int32, v int32)
TEXT ·storeRelease(SB), NOSPLIT, $0-12
	MOVQ p+0(FP), AX
	MOVL v+8(FP), BX
	MOVL BX, 0(AX)
	RET
