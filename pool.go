package sluice

import (
	"math/bits"
	"sync"
	"sync/atomic"
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
// would not. In front of the pools of the smaller sizes sits a shelf of a few
// buffers each (see shelf).
type bufPool struct {
	pools   [maxPooledShift - minPooledShift + 1]sync.Pool
	shelves [maxShelvedShift - minPooledShift + 1]shelf
}

// maxShelvedShift is the largest size with a shelf: 4 KiB, bufio's default,
// and the most a connection reading small messages needs.
const maxShelvedShift = 12

// shelfSlots is how many buffers a shelf holds: more than a busy server's
// connections hold at once between their reads (a read holds one from the
// moment its bytes arrive until the buffer is empty again), so that the pool
// behind it is seldom reached. At most 7.5 KiB per slot across the sizes, 60
// KiB per bufPool, stay on the shelves for good: unlike sync.Pool's, they are
// not emptied by the GC.
const shelfSlots = 8

// A shelf is a few buffers of one size, taken and given back without a call
// that could grow the stack. A read that finds the socket empty gives its
// buffer back, and a woken read takes one, from within the poller's RawRead,
// at the bottom of the goroutine's stack (see Server.serveConn); sync.Pool's
// Get and Put go one or two calls deeper where their per-P fast path misses,
// which with more than one P is often (a goroutine gives back on another P
// than it took on), and those calls overflowed a 2 KiB stack: at GOMAXPROCS=2
// most of the scale harness's 1000 handlers grew to 4 KiB (measured with a
// probe on runtime.morestack), and the server's RSS per connection rose from
// 5.0 to 7.8 KiB. take and give are nosplit, as the atomic operations they
// call are: they run in the room the runtime keeps beneath every stack's
// limit for such calls, without a check that could grow the stack, and the
// linker makes sure that they fit there.
type shelf [shelfSlots]atomic.Pointer[byte]

// take returns a buffer from the shelf, or nil where it is empty.
//
//go:nosplit
func (s *shelf) take() *byte {
	for i := range s {
		if b := s[i].Load(); b != nil && s[i].CompareAndSwap(b, nil) {
			return b
		}
	}
	return nil
}

// give puts b on the shelf and reports whether there was room.
//
//go:nosplit
func (s *shelf) give(b *byte) bool {
	for i := range s {
		if s[i].Load() == nil && s[i].CompareAndSwap(nil, b) {
			return true
		}
	}
	return false
}

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
	if i < len(p.shelves) {
		if b := p.shelves[i].take(); b != nil {
			return unsafe.Slice(b, size)
		}
	}
	if b, ok := p.pools[i].Get().(*byte); ok {
		return unsafe.Slice(b, size)
	}
	return make([]byte, size)
}

// tryGet returns a buffer of size bytes from its shelf, and nil where the
// shelf is empty or size has none: it never allocates, and it never reaches
// the pool behind the shelf, whose calls go deeper (see shelf). It is what
// a woken read calls from within the poller's RawRead; the caller falls back
// to get, from a shallower frame. get repeats its look at the shelf rather
// than call it: a call would add a frame beneath every Write that starts a
// batch (see Server.serveConn).
func (p *bufPool) tryGet(size int) []byte {
	if i := poolIndex(size); i >= 0 && i < len(p.shelves) {
		if b := p.shelves[i].take(); b != nil {
			return unsafe.Slice(b, size)
		}
	}
	return nil
}

// put gives b back for reuse if it is a pooled size. The caller must not use
// b, or any slice of it, afterwards.
func (p *bufPool) put(b []byte) {
	if i := poolIndex(cap(b)); i >= 0 {
		first := unsafe.SliceData(b) // cap(b) > 0: its first byte, even where len(b) is 0
		if i < len(p.shelves) && p.shelves[i].give(first) {
			return
		}
		p.pools[i].Put(first)
	}
}
