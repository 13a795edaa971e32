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

// A bufPool is a pool per pooled size, of pointers to the first byte of each
// buffer: a pointer fits in an interface without an allocation, where a slice
// would not.
type bufPool [maxPooledShift - minPooledShift + 1]sync.Pool

// readBufs are the Readers' buffers, writeBufs the write queues'. Apart, each
// finds its own slot of the pool free where a connection's goroutine takes
// and gives back one of each in turns (a read, the reply's batch, and back to
// the read): sharing it, a buffer given back would often find the slot taken
// by the other kind and go to the pool's deeper, costlier queue, at the
// bottom of the stack (see Server.serveConn).
var readBufs, writeBufs bufPool

// poolIndex returns the pool of buffers of exactly size bytes, or -1.
func poolIndex(size int) int {
	if size < minPooled || size > maxPooled || size&(size-1) != 0 {
		return -1
	}
	return bits.Len(uint(size)) - 1 - minPooledShift
}

// get returns a buffer of len and cap at least n: the smallest pooled size
// that holds n, or exactly n beyond the largest. Its contents are arbitrary.
func (p *bufPool) get(n int) []byte {
	size := minPooled
	if n > minPooled {
		size = 1 << bits.Len(uint(n-1))
	}
	i := poolIndex(size)
	if i < 0 {
		return make([]byte, n)
	}
	if b, ok := p[i].Get().(*byte); ok {
		return unsafe.Slice(b, size)
	}
	return make([]byte, size)
}

// tryGet returns a pooled buffer of size bytes where the pool has one, and
// nil where it has none or size is not a pooled size: it never allocates. It
// is get's look at the pool, repeated there rather than called: a call would
// add a frame beneath every Write that starts a batch (see Server.serveConn).
func (p *bufPool) tryGet(size int) []byte {
	if i := poolIndex(size); i >= 0 {
		if b, ok := p[i].Get().(*byte); ok {
			return unsafe.Slice(b, size)
		}
	}
	return nil
}

// put gives b back for reuse if it is a pooled size. The caller must not use
// b, or any slice of it, afterwards.
func (p *bufPool) put(b []byte) {
	if i := poolIndex(cap(b)); i >= 0 {
		p[i].Put(unsafe.SliceData(b)) // cap(b) > 0: its first byte, even where len(b) is 0
	}
}
