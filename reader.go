package sluice

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// minBufSize is a new read buffer's size. A quiet connection holds no more
	// than this: the buffer is allocated by the first read that needs one.
	minBufSize = 512
	// growBufSize is how far the buffer doubles by itself while reads keep
	// filling it, so a streaming connection reads in large gulps.
	growBufSize = 64 << 10
)

// aLongTimeAgo is a deadline in the past: setting it interrupts a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

type readDeadliner interface{ SetReadDeadline(time.Time) error }

// Reader is the reading half of a stream (asyncio's StreamReader): every read
// method, iterator and frame reader exists on both Reader and Conn. NewReader puts
// one over any io.Reader; a Conn embeds its own.
//
// Reads fill an internal buffer with whatever has arrived, up to its free room, as
// asyncio's transport does; the buffer starts small (no buffer at all before the
// first read) and grows as needed up to at least limit+1 bytes.
//
// Only one goroutine reads at a time: a context-taking read or iterator step
// started while another is blocked returns ErrConcurrentRead at once. Read, the
// io.Reader method, waits its turn instead, as net.Conn's Read does.
type Reader struct {
	mu    sync.Mutex // held by the reading goroutine; guards the fields up to closed
	rd    io.Reader
	buf   []byte
	r, w  int   // buf[r:w] is buffered and unread
	full  bool  // the last read filled the free room: grow before the next
	err   error // sticky: io.EOF or the first read error
	limit int
	skip  skipState // data to discard before the next read

	// A Conn's writes and reads cooperate (see writeQueue.scheduleLocked):
	// before a read from rd, which may block, beforeBlock sends what the
	// writer has queued; blocking says such a read is under way, used that
	// there has been one.
	beforeBlock func()
	blocking    atomic.Bool
	used        atomic.Bool

	closed atomic.Bool // the owning Conn was closed or aborted

	// Cancellation: a context's end interrupts a blocked read by moving rd's read
	// deadline into the past (context.AfterFunc), then restoring the user's.
	dl          readDeadliner   // rd's SetReadDeadline, or nil: then ctx is checked between reads
	closesWith  <-chan struct{} // a Done channel whose closing comes with the Conn's own close: not watched
	interruptFn func()          // r.interrupt, bound once
	stopWatch   func() bool     // the armed AfterFunc's stop, or nil
	watchWG     sync.WaitGroup
	dmu         sync.Mutex // guards deadline and interrupted
	deadline    time.Time  // the user's read deadline
	interrupted bool
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
	r.init(rd, cfg)
	return r
}

func (r *Reader) init(rd io.Reader, cfg *config) {
	r.rd = rd
	r.limit = cfg.limit
	r.dl = nil
	if d, ok := rd.(readDeadliner); ok && d.SetReadDeadline(time.Time{}) == nil {
		r.dl = d
	}
	r.interruptFn = r.interrupt
}

// Buffered returns the number of bytes that can be read without a read from the
// underlying stream (as bufio.Reader.Buffered). Call it from the reading
// goroutine.
func (r *Reader) Buffered() int { return r.w - r.r }

// AtEOF reports whether a read has seen the end of the stream and nothing is left
// buffered (asyncio's at_eof). Call it from the reading goroutine.
func (r *Reader) AtEOF() bool { return r.err == io.EOF && r.r == r.w }

// lock takes the read lock for a context-taking read, failing at once if another
// goroutine holds it, then settles pending discards.
func (r *Reader) lock(ctx context.Context) error {
	if !r.mu.TryLock() {
		return ErrConcurrentRead
	}
	if err := r.ready(ctx); err != nil {
		r.mu.Unlock()
		return err
	}
	return nil
}

// ready returns errClosed after the owning Conn's Close, ctx's error if it ended,
// and otherwise discards what an earlier overrun left to skip.
func (r *Reader) ready(ctx context.Context) error {
	if r.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.settleSkip(ctx)
}

// fill reads once from the stream into the buffer's free room, making room first.
// It returns the sticky error if there is one, ctx.Err() if ctx ended (keeping
// whatever was read), a timeout if the user's read deadline passed, or the read
// error, which then sticks.
func (r *Reader) fill(ctx context.Context) error {
	if r.err != nil {
		return r.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.makeRoom()
	n, err := r.readRaw(ctx, r.buf[r.w:])
	r.full = r.w+n == len(r.buf)
	r.w += n
	if err != nil {
		return r.readErr(ctx, err)
	}
	return nil
}

// readRaw makes one read from rd into p, which ctx's end interrupts. It first
// marks the read under way, then lets a Conn send what its writer queued: in
// that order, so a Write either sees the read coming or is sent by it.
func (r *Reader) readRaw(ctx context.Context, p []byte) (int, error) {
	if !r.used.Load() {
		r.used.Store(true)
	}
	r.blocking.Store(true)
	defer r.blocking.Store(false)
	if r.beforeBlock != nil {
		r.beforeBlock()
	}
	r.watch(ctx)
	defer r.unwatch()
	return r.rd.Read(p)
}

// readErr classifies a failed read: a deadline is ctx's end or the user's
// timeout, and does not stick; anything else does.
func (r *Reader) readErr(ctx context.Context, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return err
	}
	if r.closed.Load() {
		err = errClosed
	}
	r.err = err
	return err
}

// makeRoom makes free room at the end of the buffer for the next read: it starts
// over when everything was read, doubles the buffer while reads keep filling it
// (up to growBufSize), and otherwise slides unread data to the front, growing only
// when the unread data fills the buffer (callers bound that by the limit).
func (r *Reader) makeRoom() {
	if r.r == r.w {
		r.r, r.w = 0, 0
	}
	switch {
	case r.buf == nil:
		r.buf = make([]byte, minBufSize)
	case r.full && len(r.buf) < growBufSize:
		r.grow(2 * len(r.buf))
	case r.r > 0:
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	case r.w == len(r.buf):
		r.grow(2 * len(r.buf))
	}
}

// reserve makes the buffer able to hold n unread bytes.
func (r *Reader) reserve(n int) {
	if len(r.buf)-r.r >= n {
		return
	}
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	if len(r.buf) < n {
		r.grow(n)
	}
}

// grow replaces the buffer with one of size n (at least minBufSize), keeping the
// unread data at the front.
func (r *Reader) grow(n int) {
	buf := make([]byte, max(n, minBufSize))
	r.w = copy(buf, r.buf[r.r:r.w])
	r.r = 0
	r.buf = buf
}

// take returns a copy of the next n buffered bytes and consumes them.
func (r *Reader) take(n int) []byte {
	p := make([]byte, n)
	copy(p, r.buf[r.r:])
	r.consume(n)
	return p
}

// consume drops the next n buffered bytes. Once a one-off large read (a big
// ReadExactly or frame) is over, the oversized buffer is given back.
func (r *Reader) consume(n int) {
	r.r += n
	if r.r == r.w && len(r.buf) > 2*max(growBufSize, r.limit) {
		r.buf, r.r, r.w = nil, 0, 0
	}
}

// takeAll returns a copy of everything buffered and empties the buffer.
func (r *Reader) takeAll() []byte {
	return r.take(r.w - r.r)
}

// watch arms ctx to interrupt the read about to start; unwatch disarms it. A
// context that can never end costs nothing.
func (r *Reader) watch(ctx context.Context) {
	if done := ctx.Done(); r.dl == nil || done == nil || done == r.closesWith {
		return
	}
	r.watchWG.Add(1)
	r.stopWatch = context.AfterFunc(ctx, r.interruptFn)
}

func (r *Reader) interrupt() {
	defer r.watchWG.Done()
	r.dmu.Lock()
	r.interrupted = true
	r.dl.SetReadDeadline(aLongTimeAgo)
	r.dmu.Unlock()
}

func (r *Reader) unwatch() {
	if r.stopWatch == nil {
		return
	}
	if r.stopWatch() {
		r.watchWG.Done() // interrupt will never run
	} else {
		r.watchWG.Wait() // it ran or is running: let it finish before we restore
	}
	r.stopWatch = nil
	r.dmu.Lock()
	if r.interrupted {
		r.interrupted = false
		r.dl.SetReadDeadline(r.deadline)
	}
	r.dmu.Unlock()
}

// setReadDeadline records the user's read deadline and applies it, unless a
// cancelled context holds the deadline in the past for the moment (unwatch
// applies it then).
func (r *Reader) setReadDeadline(t time.Time) error {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	r.deadline = t
	if r.dl == nil || r.interrupted {
		return nil
	}
	return r.dl.SetReadDeadline(t)
}

// Read reads up to len(p) bytes into p (io.Reader): buffered bytes first, else one
// read from the stream, straight into p when p is at least as large as the buffer
// (so a Conn used only through Read never allocates a buffer). It blocks until
// data arrives, the read deadline passes (a timeout error), or the stream ends
// (io.EOF). Concurrent Reads take turns, as net.Conn's do.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx := context.Background()
	if err := r.ready(ctx); err != nil {
		return 0, err
	}
	if r.r == r.w {
		if r.err != nil {
			return 0, r.err
		}
		if len(p) >= len(r.buf) {
			n, err := r.readRaw(ctx, p)
			if err != nil {
				err = r.readErr(ctx, err)
			}
			return n, err
		}
		if err := r.fill(ctx); r.r == r.w {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}

// ReadAll reads until the end of the stream and returns everything (asyncio's
// read() with no size). It returns a nil error at EOF. It blocks until EOF, ctx
// ends (ctx.Err(), everything read so far stays buffered) or a read fails. The
// returned slice is the caller's.
func (r *Reader) ReadAll(ctx context.Context) ([]byte, error) {
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	for {
		err := r.fill(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	p := r.buf[r.r:r.w:r.w]
	r.buf, r.r, r.w = nil, 0, 0 // hand the buffer over rather than copy it
	if p == nil {
		p = []byte{}
	}
	return p, nil
}

// ReadExactly reads exactly n bytes (asyncio's readexactly). n == 0 returns an
// empty slice at once; n < 0 is an error. If the stream ends first, the error is
// an *IncompleteReadError with the partial data and Expected n, and the buffer is
// emptied. It blocks until n bytes are buffered, ctx ends (ctx.Err(), nothing is
// lost) or a read fails. It is not bounded by the limit. The returned slice is the
// caller's.
func (r *Reader) ReadExactly(ctx context.Context, n int) ([]byte, error) {
	if n < 0 {
		return nil, errNegativeCount
	}
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	if err := r.await(ctx, n); err != nil {
		return nil, err
	}
	return r.take(n), nil
}

// await reads until n bytes are buffered. If the stream ends first it empties
// the buffer into an *IncompleteReadError.
func (r *Reader) await(ctx context.Context, n int) error {
	if r.w-r.r >= n {
		return nil
	}
	r.reserve(n)
	for r.w-r.r < n {
		// A read may return data with io.EOF: count the data before the EOF.
		if err := r.fill(ctx); err != nil && r.w-r.r < n {
			if err == io.EOF {
				return &IncompleteReadError{Partial: r.takeAll(), Expected: n}
			}
			return err
		}
	}
	return nil
}

var errNegativeCount = errors.New("sluice: negative count")
