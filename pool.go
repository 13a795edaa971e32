package sluice

import (
	"math/bits"
	"sync"
	"unsafe"
)

// Buffers for both halves of every Conn come from pools shared by all
// connections, one per power-of-two size from minPooled to maxPooled, so a
// quiet connection holds none: a Reader takes one when bytes arrive and gives
// it back when it is empty and about to wait; a write queue takes one when data
// is queued and gives it back once it is empty. The pools are caches, not
// state: sync.Pool may drop what they hold at any GC. A buffer of another size
// (a frame larger than maxPooled) is made for the occasion and left to the GC.
//
// maxPooled is twice the default high watermark: a write queue holds up to the
// high watermark plus one write.
const (
	minPooledShift = 9 // 512 B
	maxPooledShift = 17
	minPooled      = 1 << minPooledShift
	maxPooled      = 1 << maxPooledShift
)

// bufPools holds pointers to the first byte of each pooled buffer: a pointer
// fits in an interface without an allocation, where a slice would not.
var bufPools [maxPooledShift - minPooledShift + 1]sync.Pool

// poolIndex returns the pool of buffers of exactly size bytes, or -1.
func poolIndex(size int) int {
	if size < minPooled || size > maxPooled || size&(size-1) != 0 {
		return -1
	}
	return bits.Len(uint(size)) - 1 - minPooledShift
}

// getBuf returns a buffer of len and cap at least n: the smallest pooled size
// that holds n, or exactly n beyond the largest. Its contents are arbitrary.
func getBuf(n int) []byte {
	size := minPooled
	if n > minPooled {
		size = 1 << bits.Len(uint(n-1))
	}
	i := poolIndex(size)
	if i < 0 {
		return make([]byte, n)
	}
	if p, ok := bufPools[i].Get().(*byte); ok {
		return unsafe.Slice(p, size)
	}
	return make([]byte, size)
}

// putBuf gives b back for reuse if it is a pooled size. The caller must not
// use b, or any slice of it, afterwards.
func putBuf(b []byte) {
	if i := poolIndex(cap(b)); i >= 0 {
		bufPools[i].Put(unsafe.SliceData(b[:1]))
	}
}
