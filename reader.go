package sluice

import (
	"bytes"
	"context"
	"errors"
	"io"
	"iter"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

const (
	// growBufSize is how far the buffer doubles by itself while reads keep
	// filling it, so a streaming connection reads in large gulps.
	growBufSize = 64 << 10

	// maxEmptyReads bounds the reads in a row that may return no data and no
	// error before a read gives up with io.ErrNoProgress, as bufio's do.
	maxEmptyReads = 100

	// Owned results of up to smallResult bytes (a frame's header read with
	// ReadExactly, a short line) are carved from a block of smallBlock bytes
	// shared with the results before and after them, as Go's allocator packs
	// tiny objects: one allocation serves many. Keeping such a result keeps
	// at most smallBlock bytes alive.
	smallResult = 16
	smallBlock  = 256

	// prefetchResult is the largest owned result after which take prefetches
	// the memory the next ones are likely to take (prefetch): past it,
	// the copy itself costs more than the wait it would spare.
	prefetchResult = 256
)

// aLongTimeAgo is a deadline in the past: setting it interrupts a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

var (
	errNegativeCount = errors.New("sluice: negative count")
	errChunkSize     = errors.New("sluice: chunk size must be at least 1")
)

type readDeadliner interface{ SetReadDeadline(time.Time) error }

// A readHook is what a Conn needs to hear from its reading half; the Conn gives
// it to the Reader at construction (a standalone Reader has none). The Reader
// calls it only around reads from the stream, never per line or frame, and
// from shallow frames where it can (see rawSock).
type readHook interface {
	// beforeRead runs before every read from the stream. The Conn sends what
	// a Write left for this read to send: the peer may be waiting for it.
	beforeRead()
	// waiting runs when a read finds no data and is about to wait. msg is the
	// stream offset of the message whose rest is awaited, or -1 where the read
	// waits for a message's first byte (or is no message read).
	waiting(msg int64)
	// afterRead runs after every read from the stream, with the bytes it
	// brought.
	afterRead(n int)
	// eofErr returns the error a read that found the end of the stream stands
	// for: nil for a clean EOF, or the connection reset that the Conn's own
	// sends met first (the kernel reports a reset to one system call only).
	eofErr() error
	// looping runs when an iterator loop (Lines, Frames, Chunks) starts, with
	// true, and when it ends, with false: while it runs, its next step will
	// read.
	looping(on bool)
}

// Reader is the reading half of a stream (asyncio's StreamReader). NewReader
// puts one over any io.Reader; every Conn has its own, whose methods the Conn
// shares (see Conn for the methods' documentation).
//
// Reads fill an internal buffer with whatever has arrived, up to its free room,
// as asyncio's transport does. The buffer grows as needed up to at least
// limit+1 bytes, and with the bytes that actually arrive: a header that
// announces 8 MiB costs nothing until the bytes come. Over a Unix socket a
// Reader waiting for data holds no buffer at all; buffers come from a pool
// shared by all connections.
//
// Only one goroutine reads at a time: a context-taking read or iterator step
// started while another is under way returns ErrConcurrentRead at once. Read,
// the io.Reader method, waits its turn instead, as net.Conn's Read does.
type Reader struct {
	mu    readLock // held for the length of a read or iterator loop; guards the fields up to rd
	buf   []byte
	r, w  int    // buf[r:w] is buffered and unread
	off   int64  // the stream offset of buf[0]: identifies a message for the message timeout
	size  int    // the size of the next buffer taken: what reads have needed so far
	err   error  // sticky: io.EOF or the first read error
	small []byte // what is left of the block small results are carved from
	limit int
	skip  skipState // data to discard before the next read
	// (The small fields share a word: a quiet Conn's size counts.)
	full   bool        // the last read filled the free room: grow before the next
	smalls uint8       // small results taken since the Reader last waited (counting to 2)
	sticky bool        // a Conn's: the watch stays armed between reads (see below)
	closed atomic.Bool // the owning Conn was closed or aborted

	// The stream, and its descriptor where a read can wait without a buffer
	// (Unix sockets; else nil). StartTLS swaps both, under dmu.
	rd   io.Reader
	sock *rawSock

	hook     readHook // the owning Conn's, or nil
	closeErr error    // why the Conn closed: written once, before closed is set

	// Cancellation: a context's end interrupts a blocked read by moving rd's
	// read deadline into the past (context.AfterFunc), then restoring the
	// user's. A Conn's Reader keeps the watch armed between reads (sticky) and
	// re-arms it only for another context, so a loop of reads with one context
	// allocates nothing; the Conn stops it when it closes.
	cs          atomic.Pointer[cancelState] // made by the first watch or read deadline, then fixed
	dmu         sync.Mutex                  // guards the fields below and cs's, but watched
	canCancel   bool                        // set at construction: rd has a working SetReadDeadline; else ctx is checked between reads
	interrupted bool                        // a context holds the deadline in the past
	shut        bool                        // the Conn closed: the deadline stays in the past
}

// cancelState is what interrupting reads takes: a Reader makes it the first
// time it watches a context or gets a read deadline. A Server's handler that
// reads with its own ctx needs neither, so a quiet Conn is smaller without it.
type cancelState struct {
	watched   <-chan struct{} // the watched context's Done; written by the reading goroutine under dmu, read by it alone
	stopWatch func() bool     // the armed AfterFunc's stop, or nil
	interrupt func()          // the Reader's interrupt, bound once
	watchWG   sync.WaitGroup  // an armed watch's interrupt, until it has run or been stopped
	deadline  time.Time       // the user's read deadline
	onShut    func(error)     // told the close's reason when the Reader is shut, while a Relay holds it (onShutdown)
}

// NewReader returns a Reader over rd (asyncio's standalone StreamReader, as over a
// subprocess's stdout; feed_data is writing to an io.Pipe, feed_eof closing it).
// Cancelling a read's context interrupts a blocked rd.Read where rd has a
// SetReadDeadline method that works (sockets, os.Pipe ends); otherwise the
// context is checked between reads. NewReader panics if an option is invalid.
func NewReader(rd io.Reader, opts ...Option) *Reader {
	cfg, err := newConfig(opts)
	if err != nil {
		panic(err)
	}
	r := new(Reader)
	r.init(rd, cfg.limit, nil)
	return r
}

// init readies r to read from rd. A Conn passes itself as hook and reads the
// socket's descriptor directly where the platform allows (newRawReader).
func (r *Reader) init(rd io.Reader, limit int, hook readHook) {
	r.rd, r.limit, r.hook = rd, limit, hook
	r.size = minPooled
	d, ok := rd.(readDeadliner)
	r.canCancel = ok && d.SetReadDeadline(time.Time{}) == nil
}

// Buffered returns the number of bytes that can be read without a read from the
// underlying stream (as bufio.Reader.Buffered), so an echo or proxy loop can
// flush when no more input is waiting. Call it from the reading goroutine.
func (c *Conn) Buffered() int { return c.rd.Buffered() }

// Buffered returns the bytes buffered and not yet read. See Conn.Buffered.
func (r *Reader) Buffered() int {
	if r.skip.seps != nil {
		return 0 // a skipped frame's tail, kept in case its separator starts there: never read
	}
	return r.w - r.r
}

// caughtUp reports whether nothing is buffered and the stream has neither ended
// nor failed: the next byte can only come from the stream, so a reader holding
// the read lock may take it past the buffer (Relay's splice).
func (r *Reader) caughtUp() bool { return r.r == r.w && r.err == nil && !r.skip.pending() }

// AtEOF reports whether a read has seen the end of the stream and nothing is
// left buffered (asyncio's at_eof). Call it from the reading goroutine.
func (c *Conn) AtEOF() bool { return c.rd.AtEOF() }

// AtEOF reports whether the stream has ended and nothing is buffered. See
// Conn.AtEOF.
func (r *Reader) AtEOF() bool { return r.err == io.EOF && r.Buffered() == 0 }

// lock takes the read lock for a context-taking read, failing at once if another
// goroutine holds it or the owning Conn is closed, then settles pending
// discards. It does not look at ctx: a read that need not wait returns what is
// buffered whatever ctx says; fill checks ctx before every wait.
func (r *Reader) lock(ctx context.Context) error { return r.begun(ctx, r.mu.tryLock()) }

// begun readies a read, or a loop, that tried the read lock, took reporting
// whether it got it: ErrConcurrentRead if not, else begin's error, with the
// lock released, as it is where begin panics (a pending skip reads, and a
// NewReader's io.Reader may panic).
func (r *Reader) begun(ctx context.Context, took bool) error {
	if !took {
		return ErrConcurrentRead
	}
	held := false
	defer func() {
		if !held {
			r.mu.unlock()
		}
	}()
	err := r.begin(ctx)
	held = err == nil
	return err
}

// settled reports whether a read whose lock is held may take what is buffered
// without begin: the Reader is open and has nothing to skip first.
func (r *Reader) settled() bool { return !r.closed.Load() && !r.skip.pending() }

// begin readies a read whose lock is held: it fails on a closed Conn, takes a
// buffer, lets the hook send what Writes left if the read will wait, and
// discards what a skip asks for.
func (r *Reader) begin(ctx context.Context) error {
	if r.closed.Load() {
		return r.closeErr
	}
	r.takeBuf()
	r.mayRead()
	if r.skip.pending() {
		return r.settleSkip(ctx)
	}
	return nil
}

// fill reads once from the stream into the buffer's free room, making room
// first. want is the number of unread bytes the caller waits for, where it is
// known (0 if not): the buffer grows towards it as bytes arrive, never ahead of
// them. what says what the caller reads: a message (forMessage, forLine) is
// bounded by WithMessageTimeout once its first byte is in; forLine reads on
// until a newline comes or the unread bytes pass the limit (Lines' wait), and
// returns nil at the stream's end.
//
// It returns the sticky error if there is one, ctx.Err() if ctx has ended
// (keeping whatever was read), a timeout if the user's read deadline passed,
// or the read error, which then sticks.
func (r *Reader) fill(ctx context.Context, want int, what fillFor) error {
	if r.err != nil {
		return r.err
	}
	// A Server handler's ctx (served) ends only with the Conn's close,
	// which the read itself then reports: no need to look at it (a cache
	// miss per read with many connections). A ctx that ended with the close
	// (one made from the handler's) reports the close too.
	if !r.served(ctx) {
		if err := ctx.Err(); err != nil {
			if r.closed.Load() {
				return r.closeErr
			}
			return err
		}
	}
	at := int64(-1)
	switch {
	case what == forBytes:
	case r.skip.pending():
		at = r.skipMsg() // the rest of a rejected record is still its message's
	case r.w > r.r:
		at = r.off + int64(r.r)
	}
	seen := r.w - r.r // for forLine: the bytes known to hold no newline
	r.watch(ctx)
	// One read per turn; a turn that only waited (again: see rawSock) or
	// brought nothing is followed by another. The reads are made here rather
	// than in a function of their own: every frame beneath a waiting read
	// counts (see Server.serveConn).
	var n int
	var err error
	for empty := 0; ; {
		r.makeRoom(want)
		if r.hook != nil {
			r.hook.beforeRead()
		}
		if r.sock != nil {
			var again bool
			if n, again, err = r.sock.read(at); again {
				continue // woken after a wait that gave the buffer back
			}
		} else {
			n, err = r.readStream(at)
		}
		if err = r.account(n, err); n > 0 || err != nil || empty == maxEmptyReads {
			if n > 0 && err == nil && what == forLine && r.w-r.r <= r.limit &&
				bytes.IndexByte(r.buf[r.r+seen:r.w], '\n') < 0 &&
				(r.served(ctx) || ctx.Err() == nil) {
				// Still no newline, not yet too long, and ctx has not
				// ended (a reader that cannot be interrupted is looked at
				// between reads): read on, in this frame, as the line's
				// message.
				seen, empty, at = r.w-r.r, 0, r.off+int64(r.r)
				continue
			}
			break
		}
		empty++
	}
	if !r.sticky {
		r.unwatch()
	}
	switch {
	case err != nil:
		if err = r.readErr(ctx, err); err == io.EOF && what == forLine {
			return nil // Lines' next turn finds it sticking
		}
		return err
	case n == 0:
		r.err = io.ErrNoProgress
		return r.err
	}
	return nil
}

// fillFor says what a fill reads for.
type fillFor uint8

const (
	forBytes   fillFor = iota // any bytes
	forMessage                // a message: a line, a frame, a ReadExactly
	forLine                   // the rest of a line (Lines): reads until a newline comes
)

// readStream makes one read from rd, which may wait, into the buffer's free
// room (msg as in fill).
func (r *Reader) readStream(msg int64) (int, error) {
	if r.hook != nil {
		r.hook.waiting(msg) // it may
	}
	n, err := r.rd.Read(r.buf[r.w:])
	return max(n, 0), err
}

// account takes in the n bytes a read brought and returns the error to act
// on: EOF, once the Conn's own sends have met a reset, is that reset; EOF
// that came with data waits for the next read.
func (r *Reader) account(n int, err error) error {
	r.full = n > 0 && r.w+n == len(r.buf)
	r.w += n
	if r.hook != nil {
		r.hook.afterRead(n)
		if err == io.EOF {
			if rerr := r.hook.eofErr(); rerr != nil {
				err = rerr
			}
		}
	}
	if n > 0 && err == io.EOF {
		err = nil
	}
	return err
}

// readErr classifies a failed read: a passed deadline is ctx's end, the Conn's
// close or the user's timeout, and does not stick; anything else does.
func (r *Reader) readErr(ctx context.Context, err error) error {
	if r.closed.Load() {
		return r.closeErr
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return err
	}
	r.err = err
	if err != io.EOF {
		// Every later read returns it (asyncio's set_exception): what the
		// stream left buffered before it failed is not handed out after it.
		r.consume(r.w - r.r)
	}
	return err
}

// makeRoom makes free room at the end of the buffer for the next read (want as
// in fill). It starts over when everything was read, doubles the buffer while
// reads keep filling it (up to growBufSize), slides unread data to the front,
// and grows when unread data fills the buffer: doubling, and straight to want,
// where that is known, when the doubling reaches it or falls short of it by
// an eighth at most (callers bound the rest: a line by the limit, a frame by
// its maximum). So a buffer that grows to hold n bytes has cost at most about
// 2n in allocations, and is never more than 2.25 times the bytes received:
// want, which a peer's header may claim, never sizes it on its own.
func (r *Reader) makeRoom(want int) {
	switch unread := r.w - r.r; {
	case r.buf == nil:
		r.buf = readBufs.get(r.size)
	case unread == 0:
		r.off += int64(r.w)
		r.r, r.w = 0, 0
		if r.full && len(r.buf) < growBufSize {
			r.grow(2 * len(r.buf))
		}
	case r.full && len(r.buf) < growBufSize:
		r.grow(2 * len(r.buf))
	case unread == len(r.buf):
		n := 2 * len(r.buf)
		if want > unread && want-n <= n/8 {
			n = want // within reach of the doubling: go there at once
		}
		r.grow(n)
	case r.r > 0 && (r.w == len(r.buf) || r.r > len(r.buf)/2 || want > len(r.buf)-r.r):
		// As bufio.Scanner: slide once the unread data is past the middle, so
		// that a read never gets a sliver of free room at the end.
		r.off += int64(r.r)
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
}

// grow replaces the buffer with one of at least n bytes, keeping the unread
// data at the front, and gives the old one back.
func (r *Reader) grow(n int) {
	buf := readBufs.get(n)
	r.off += int64(r.r)
	r.w = copy(buf, r.buf[r.r:r.w])
	r.r = 0
	readBufs.put(r.buf)
	r.buf = buf
	r.size = len(buf)
}

// takeBuf makes sure the Reader has a buffer, taking one from the pool. A
// read that finds no buffer needs one (nothing is buffered), so the read
// methods and iterator steps take it first, in a shallow frame: taking it
// may allocate, and an allocation deep beneath a read can grow the
// goroutine's stack for good (see Server.serveConn).
func (r *Reader) takeBuf() {
	if r.buf == nil {
		r.buf = readBufs.get(r.size)
		r.r, r.w = 0, 0
	}
}

// mayRead tells the hook, where nothing is buffered, that the read or step
// about to run will read from the stream: the Conn sends what Writes left for
// it here, in a shallow frame, rather than beneath the read (fill tells it
// too, for reads that start with part of a record buffered).
func (r *Reader) mayRead() {
	if r.r == r.w && r.hook != nil {
		r.hook.beforeRead()
	}
}

// release gives an empty buffer back to the pool, so a Reader waiting for data
// holds none; the next read takes one of the same size, or of the usual size
// after a one-off large read.
func (r *Reader) release() { readBufs.put(r.unhold()) }

// unhold is release but for the pool's Put, which it leaves to the caller: it
// returns the buffer to give back, if any. The poller's callback, beneath a
// waiting read, puts it from its own frame (see Server.serveConn).
func (r *Reader) unhold() []byte {
	if r.r != r.w || r.buf == nil {
		return nil
	}
	if r.oversized() {
		r.size = minPooled
	}
	buf := r.buf
	r.off += int64(r.w)
	r.buf, r.r, r.w = nil, 0, 0
	r.small, r.smalls = nil, 0
	return buf
}

// handOver gives the buffer's unread bytes to the caller, buffer and all, and
// leaves the Reader without one; the bytes are the caller's for good.
func (r *Reader) handOver() []byte {
	p := r.buf[r.r:r.w:r.w]
	r.off += int64(r.w)
	r.buf, r.r, r.w = nil, 0, 0
	return p
}

// take returns a copy of the next n buffered bytes and consumes them. The
// copy's capacity is its length. A small one is carved from the shared block
// (see smallResult); another is one allocation made without zeroing first
// (the compiler turns make and copy into one call).
func (r *Reader) take(n int) []byte {
	src := r.buf[r.r : r.r+n]
	var p []byte
	if n <= smallResult && r.smalls < 2 {
		r.smalls++
	}
	if n <= smallResult && n > 0 && (len(r.small) >= n || r.smalls > 1) {
		// The second small result since the Reader last waited: more are
		// likely to follow (headers of a stream of frames). A lone one, as
		// between the waits of an idle or request/response connection, is
		// allocated alone, so that a quiet Conn keeps no block.
		if len(r.small) < n {
			r.small = make([]byte, smallBlock)
		}
		p, r.small = r.small[:n:n], r.small[n:]
		copy(p, src)
	} else {
		p = make([]byte, len(src))
		copy(p, src)
		if n > 0 && n <= prefetchResult {
			// The next two results of this size are likely to be
			// allocated just past this one (the allocator hands out a
			// span's free slots in address order), in memory not
			// touched since the last GC. The next read's lock waits for
			// every store before it to drain, a copy into that cold
			// memory among them; brought into the cache now, while the
			// caller works on p, it drains at once: ~3% of a frame read
			// with two ReadExactly calls on the bench VM.
			prefetch(unsafe.Pointer(&p[0]), uintptr(n), 3*uintptr(n))
		}
	}
	r.consume(n)
	return p
}

// consume drops the next n buffered bytes. Once a one-off large read (a big
// ReadExactly or frame) is over, the oversized buffer is given up.
func (r *Reader) consume(n int) {
	r.r += n
	if r.r == r.w && r.oversized() {
		r.off += int64(r.w)
		r.buf, r.r, r.w = nil, 0, 0
		r.size = minPooled
	}
}

// oversized reports whether the buffer is larger than reads that keep
// filling it grow it: a one-off large read's (a big ReadExactly or frame),
// not to be kept, nor taken again at that size, once it is empty. (Twice the
// limit may overflow: the buffer is halved instead.)
func (r *Reader) oversized() bool { return len(r.buf)/2 > max(growBufSize, r.limit) }

// served reports whether ctx is a Server handler's ctx for the Conn r is the
// reading half of (handlerCtx): it ends only with the Conn's close, which a
// read then reports itself, so reads neither look at it nor watch it.
func (r *Reader) served(ctx context.Context) bool {
	h, ok := ctx.(handlerCtx)
	return ok && r.hook == readHook(h.c)
}

// watch makes ctx's end interrupt the reads about to start. A context that can
// never end, or whose end comes with the Conn's own close, costs nothing, and
// so does the same context as the last read's while its watch is armed.
func (r *Reader) watch(ctx context.Context) {
	var done <-chan struct{}
	if r.canCancel && !r.served(ctx) {
		done = ctx.Done()
	}
	cs := r.cs.Load()
	if cs == nil && done == nil || cs != nil && done == cs.watched {
		return
	}
	r.unwatch()
	if done == nil {
		return
	}
	r.dmu.Lock()
	defer r.dmu.Unlock()
	if r.shut {
		return // reads fail with the close error; nothing to interrupt
	}
	cs = r.cancelStateLocked()
	cs.watchWG.Add(1)
	cs.stopWatch = context.AfterFunc(ctx, cs.interrupt)
	cs.watched = done
}

// cancelStateLocked returns the Reader's cancelState, making it first if need
// be. dmu is held.
func (r *Reader) cancelStateLocked() *cancelState {
	cs := r.cs.Load()
	if cs == nil {
		cs = &cancelState{interrupt: r.interrupt}
		r.cs.Store(cs)
	}
	return cs
}

// disarm stops a watch whose stop function was taken from stopWatch: the
// interrupt will never run, or it ran or is running and has finished when
// disarm returns, so the caller may restore the deadline.
func (cs *cancelState) disarm(stop func() bool) {
	if stop() {
		cs.watchWG.Done()
	} else {
		cs.watchWG.Wait()
	}
}

func (r *Reader) interrupt() {
	cs := r.cs.Load()
	defer cs.watchWG.Done()
	r.dmu.Lock()
	r.interrupted = true
	r.deadliner().SetReadDeadline(aLongTimeAgo)
	r.dmu.Unlock()
}

// unwatch disarms the watch, if any, and restores the user's deadline if the
// watch had moved it.
func (r *Reader) unwatch() {
	cs := r.cs.Load()
	if cs == nil {
		return
	}
	r.dmu.Lock()
	stop := cs.stopWatch
	cs.stopWatch, cs.watched = nil, nil
	r.dmu.Unlock()
	if stop == nil {
		return
	}
	cs.disarm(stop)
	r.dmu.Lock()
	if r.interrupted && !r.shut {
		r.interrupted = false
		r.deadliner().SetReadDeadline(cs.deadline)
	}
	r.dmu.Unlock()
}

// deadliner returns rd's SetReadDeadline, where canCancel says it has one.
// rd changes only under dmu (StartTLS), which the callers hold.
func (r *Reader) deadliner() readDeadliner { return r.rd.(readDeadliner) }

// setReadDeadline records the user's read deadline and applies it, unless a
// context or the Conn's close holds the deadline in the past for the moment.
func (r *Reader) setReadDeadline(t time.Time) error {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	if cs := r.cs.Load(); cs != nil || !t.IsZero() {
		r.cancelStateLocked().deadline = t
	}
	if r.interrupted && r.mu.state.Load() == lockFree {
		// The watched context ended after its read returned: no read is
		// under way for the interrupt to cut short (a read with that
		// context would fail on ctx.Err() before waiting), so the user's
		// deadline applies now, for the socket's direct users too.
		r.interrupted = false
	}
	if !r.canCancel || r.interrupted || r.shut {
		return nil
	}
	return r.deadliner().SetReadDeadline(t)
}

// shutdown marks the Reader closed by its Conn, for reason: blocked and later
// reads return reason. It interrupts a blocked read and disarms the watch, so
// that a long-lived context keeps nothing of the Conn. Call it once.
func (r *Reader) shutdown(reason error) {
	r.closeErr = reason
	r.closed.Store(true)
	r.dmu.Lock()
	r.shut = true
	if r.canCancel {
		r.deadliner().SetReadDeadline(aLongTimeAgo)
	}
	var stop func() bool
	var onShut func(error)
	cs := r.cs.Load()
	if cs != nil {
		stop, cs.stopWatch = cs.stopWatch, nil
		onShut = cs.onShut
	}
	r.dmu.Unlock()
	if stop != nil {
		cs.disarm(stop)
	}
	if onShut != nil {
		onShut(reason)
	}
}

// onShutdown makes shutdown tell f the close's reason, or tells it at once if
// the Reader is shut already; a nil f stops that. Relay uses it: a Conn closed
// by another goroutine must end a relay whose directions wait on the other
// Conn. f must not block.
func (r *Reader) onShutdown(f func(error)) {
	r.dmu.Lock()
	shut := r.shut
	if !shut && (f != nil || r.cs.Load() != nil) {
		r.cancelStateLocked().onShut = f
	}
	r.dmu.Unlock()
	if shut && f != nil {
		f(r.closeErr) // set before shut, which dmu orders
	}
}

// Read reads up to len(p) bytes into p (io.Reader, net.Conn): buffered bytes
// first, else one read from the stream, straight into p when p is at least as
// large as the buffer would be (so a Conn used only through Read never takes a
// buffer). It blocks until data arrives, the read deadline passes (a timeout
// error), or the stream ends (io.EOF); after Close or Abort it returns an error
// matching net.ErrClosed. Concurrent Reads take turns, as net.Conn's do, and
// wait for another read under way; but a Read made while an iterator loop
// (Lines, Frames, Chunks, a channel form's) runs, from its body or elsewhere,
// returns ErrConcurrentRead at once, as the loop may never end.
func (c *Conn) Read(p []byte) (int, error) { return c.rd.Read(p) }

// Read reads up to len(p) bytes into p (io.Reader). See Conn.Read.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if r.closed.Load() {
			return 0, r.closeErr
		}
		return 0, nil
	}
	if !r.mu.lock() {
		return 0, ErrConcurrentRead
	}
	defer r.mu.unlock()
	if r.closed.Load() {
		return 0, r.closeErr
	}
	ctx := context.Background()
	if err := r.settleSkip(ctx); err != nil {
		return 0, err
	}
	if r.r == r.w {
		if r.err != nil {
			return 0, r.err
		}
		if len(p) >= r.size && r.buf == nil && r.sock == nil {
			return r.readDirect(p)
		}
		if err := r.fill(ctx, 0, forBytes); r.r == r.w {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}

// readDirect reads from rd straight into p, bypassing the buffer.
func (r *Reader) readDirect(p []byte) (int, error) {
	r.watch(context.Background()) // disarms a watch left by another context
	if r.hook != nil {
		r.hook.beforeRead()
		r.hook.waiting(-1) // it may
	}
	n, err := r.rd.Read(p)
	n = max(n, 0)
	if r.hook != nil {
		r.hook.afterRead(n)
		if err == io.EOF && n == 0 {
			if rerr := r.hook.eofErr(); rerr != nil {
				err = rerr
			}
		}
	}
	switch {
	case err == io.EOF:
		r.err = err // as a buffered read's: AtEOF, and later reads, see it
	case err != nil:
		err = r.readErr(context.Background(), err)
	}
	return n, err
}

// ReadAll reads until the end of the stream and returns everything (asyncio's
// read() with no size). It returns a nil error at EOF. It blocks until EOF, ctx
// ends (ctx.Err(), everything read so far stays buffered) or a read fails. The
// returned slice is the caller's.
func (c *Conn) ReadAll(ctx context.Context) ([]byte, error) { return c.rd.ReadAll(ctx) }

// ReadAll reads until the end of the stream. See Conn.ReadAll.
func (r *Reader) ReadAll(ctx context.Context) ([]byte, error) {
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.mu.unlock()
	for {
		err := r.fill(ctx, 0, forBytes)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if r.buf == nil {
		return []byte{}, nil
	}
	return r.handOver(), nil // hand the buffer over rather than copy it
}

// ReadExactly reads exactly n bytes (asyncio's readexactly). n == 0 returns an
// empty slice at once, or a failed connection's sticky error; n < 0 is an
// error. If the stream ends first, the error is an *IncompleteReadError with
// the partial data and Expected n, and the buffer is emptied. It blocks until n
// bytes are buffered, ctx ends (ctx.Err(), nothing is lost) or a read fails. It
// is not bounded by the limit, and the buffer grows with the bytes that arrive,
// not with n. The returned slice is the caller's: one allocation, without
// zeroing.
func (c *Conn) ReadExactly(ctx context.Context, n int) ([]byte, error) {
	return c.rd.ReadExactly(ctx, n)
}

// ReadExactly reads exactly n bytes. See Conn.ReadExactly.
func (r *Reader) ReadExactly(ctx context.Context, n int) ([]byte, error) {
	if n < 0 {
		return nil, errNegativeCount
	}
	if !r.mu.tryLockTaking() {
		return nil, ErrConcurrentRead
	}
	if n > 0 && r.w-r.r >= n && r.settled() {
		// Buffered already, and nothing else to do first (see begin):
		// nothing below can panic, so the unlock need not be deferred, and
		// a frame's header and payload pay for no defer and no call to
		// begin (~13% of the two calls).
		p := r.take(n)
		r.mu.unlockTaking()
		return p, nil
	}
	r.mu.holdTaking()
	if n == 0 {
		return r.readNothing()
	}
	return r.readExactly(ctx, n)
}

// readNothing is ReadExactly(ctx, 0), the read lock held: an empty result at
// once, not even a pending skip waited for. It is a function of its own so
// that ReadExactly has no defer.
func (r *Reader) readNothing() ([]byte, error) {
	defer r.mu.unlock()
	if r.closed.Load() {
		return nil, r.closeErr
	}
	if r.err != nil && r.err != io.EOF {
		return nil, r.err // a failed connection's error sticks (asyncio's readexactly raises it first)
	}
	return []byte{}, nil
}

// readExactly is ReadExactly where it may have to read. The read lock is held;
// it is released when readExactly returns or a read panics (a NewReader's
// io.Reader may).
func (r *Reader) readExactly(ctx context.Context, n int) ([]byte, error) {
	defer r.mu.unlock()
	if err := r.begin(ctx); err != nil {
		return nil, err
	}
	if err := r.await(ctx, n); err != nil {
		return nil, err
	}
	return r.take(n), nil
}

// await reads until n bytes are buffered, growing the buffer only as bytes
// arrive. If the stream ends first it empties the buffer into an
// *IncompleteReadError.
func (r *Reader) await(ctx context.Context, n int) error {
	for r.w-r.r < n {
		// A read may return data with io.EOF: count the data before the EOF.
		if err := r.fill(ctx, n, forMessage); err != nil && r.w-r.r < n {
			if err == io.EOF {
				return r.incomplete(n)
			}
			return err
		}
	}
	return nil
}

// takeAll returns a copy of everything buffered and empties the buffer.
func (r *Reader) takeAll() []byte {
	return r.take(r.w - r.r)
}

// Chunks returns a single-use iterator over the stream's bytes as they arrive,
// at most n at a time: what is buffered, else what one read brings. EOF ends the
// loop with no error; any other error (ctx.Err(), a read error, n < 1) is yielded
// once and ends it. Breaking out loses nothing. The yielded slice points into the
// buffer and is valid until the next step or read; its capacity is its length. A
// step allocates nothing.
func (c *Conn) Chunks(ctx context.Context, n int) iter.Seq2[[]byte, error] {
	return c.rd.Chunks(ctx, n)
}

// ChunkChan is the channel form of Chunks: a Stream of owned chunks of at most n
// bytes, for select and goroutine pipelines. See Stream for its lifecycle.
func (c *Conn) ChunkChan(ctx context.Context, n int) *Stream { return c.rd.ChunkChan(ctx, n) }

// Chunks returns a single-use iterator over the stream's bytes as they arrive.
// See Conn.Chunks.
func (r *Reader) Chunks(ctx context.Context, n int) iter.Seq2[[]byte, error] {
	if n < 1 {
		return func(yield func([]byte, error) bool) { yield(nil, errChunkSize) }
	}
	return steps(ctx, r, chunkStep(n))
}

// chunkStep is Chunks' step: up to n bytes.
type chunkStep int

func (n chunkStep) next(ctx context.Context, r *Reader) ([]byte, error) {
	return r.nextChunk(ctx, int(n))
}

// nextChunk returns up to n buffered bytes, reading once if none are, as a
// view into the buffer. The read lock is held.
func (r *Reader) nextChunk(ctx context.Context, n int) ([]byte, error) {
	if r.closed.Load() {
		return nil, r.closeErr
	}
	for r.r == r.w {
		if err := r.fill(ctx, 0, forBytes); err != nil && r.r == r.w {
			return nil, err
		}
	}
	n = min(n, r.w-r.r)
	chunk := r.buf[r.r : r.r+n : r.r+n]
	r.consume(n) // the buffer, given up, stays the chunk's until the next step
	return chunk, nil
}

// A stepper reads one record for steps: a chunk or a frame. The
// read lock is held.
type stepper interface {
	next(ctx context.Context, r *Reader) ([]byte, error)
}

// steps is the iterator over a Reader's chunks and frames (Lines has its own
// loop, with its buffered-line path inline): it takes the read lock at its
// first step and holds it until the loop ends, so a step that finds its
// record buffered costs no atomic operation, and it calls s.next until
// io.EOF, which ends the loop quietly, or another error, which is yielded
// once and ends it. It runs on the consumer's goroutine and keeps no state of
// its own, so breaking out of the loop loses nothing. It is generic over the
// step's type rather than taking a func, so that a step is a plain value
// (Chunks' size, Frames' framing) and no closure is made for it. The loop is
// a function of its own, not the closure, for the reason Reader.lines gives.
func steps[S stepper](ctx context.Context, r *Reader, s S) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) { runSteps(ctx, r, s, yield) }
}

// runSteps is steps' loop.
func runSteps[S stepper](ctx context.Context, r *Reader, s S, yield func([]byte, error) bool) {
	if err := r.startLoop(ctx); err != nil {
		yield(nil, err)
		return
	}
	defer r.endLoop()
	for {
		r.takeBuf()
		r.mayRead()
		v, err := s.next(ctx, r)
		if err == io.EOF {
			return
		}
		if !yield(v, err) || err != nil {
			return
		}
	}
}

// startLoop takes the read lock for an iterator loop, as one (a Read does not
// wait for it), and tells the hook.
func (r *Reader) startLoop(ctx context.Context) error {
	if err := r.begun(ctx, r.mu.tryLockLoop()); err != nil {
		return err
	}
	if r.hook != nil {
		r.hook.looping(true)
	}
	return nil
}

// endLoop tells the hook the loop ended and releases the read lock.
func (r *Reader) endLoop() {
	if r.hook != nil {
		r.hook.looping(false)
	}
	r.mu.unlock()
}

// skipState is what an overrun left to discard before the next read.
type skipState struct {
	// n is, while seps is nil, the bytes still to discard (an oversized
	// frame's body); while seps is set, the stream offset of the skipped
	// record's first byte, for WithMessageTimeout (see skipMsg).
	n    int64
	seps *sepSet // discard through the next of these (a line or delimited frame over the limit)
}

func (s *skipState) pending() bool { return s.n > 0 || s.seps != nil }

// skipMsg returns the message a pending skip discards the rest of, as fill
// reports it to the message timeout: an offset inside the skipped record that
// stays the same while it is consumed (its first byte, or, for a sized skip,
// its last), so a peer that drips a rejected record is cut off as one that
// drips a valid one.
func (r *Reader) skipMsg() int64 {
	if r.skip.seps != nil {
		return r.skip.n
	}
	return satAdd(r.off+int64(r.r), r.skip.n-1)
}

// settleSkip discards what skipState asks for, reading as needed, without
// growing the buffer. EOF ends the skipping quietly, discarding what is left of
// the skipped record (a tail that could have begun a separator): the caller's
// read then sees EOF itself.
func (r *Reader) settleSkip(ctx context.Context) error {
	for r.skip.pending() {
		if r.skip.seps == nil {
			k := int(min(int64(r.w-r.r), r.skip.n))
			r.consume(k)
			if r.skip.n -= int64(k); r.skip.n == 0 {
				continue
			}
		} else if r.skipThroughSep() {
			continue
		}
		if r.err == io.EOF {
			r.consume(r.w - r.r)
			r.skip = skipState{}
			return nil
		}
		if err := r.fill(ctx, 0, forMessage); err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// skipThroughSep discards buffered data through the first of skip.seps and
// reports true, or discards all but the tail where a separator could still begin
// and reports false.
func (r *Reader) skipThroughSep() bool {
	s := r.skip.seps
	if _, e := s.index(r.buf[r.r:r.w]); e >= 0 {
		r.consume(e)
		r.skip = skipState{}
		return true
	}
	if keep := s.max - 1; r.w-r.r > keep {
		r.consume(r.w - r.r - keep)
	}
	return false
}
