package sluice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sourcegraph/conc"
)

// Write buffers come from two pools shared by all connections, so a quiet
// connection holds none: a queue takes a buffer when data arrives and gives its
// buffers back once it is empty. The pools are caches, not state: sync.Pool may
// drop what they hold at any GC.
const (
	smallBuf = 4 << 10  // a reply, a few messages
	largeBuf = 64 << 10 // a burst: the default high watermark
)

var (
	smallBufs = sync.Pool{New: func() any { return new([smallBuf]byte) }}
	largeBufs = sync.Pool{New: func() any { return new([largeBuf]byte) }}
)

// getBuf returns an empty buffer with room for at least n bytes.
func getBuf(n int) []byte {
	switch {
	case n <= smallBuf:
		return smallBufs.Get().(*[smallBuf]byte)[:0]
	case n <= largeBuf:
		return largeBufs.Get().(*[largeBuf]byte)[:0]
	}
	return make([]byte, 0, n)
}

// putBuf gives a buffer from getBuf back; one of another size is left to the GC.
func putBuf(b []byte) {
	switch cap(b) {
	case smallBuf:
		smallBufs.Put((*[smallBuf]byte)(b[:smallBuf]))
	case largeBuf:
		largeBufs.Put((*[largeBuf]byte)(b[:largeBuf]))
	}
}

var (
	errWriteAfterEOF = fmt.Errorf("sluice: write after WriteEOF: %w", net.ErrClosed)
	errCannotEOF     = errors.New("sluice: the transport cannot write EOF")
)

// writeQueue is a Conn's bounded, byte-counted write buffer. Writes append to
// pending; a writer goroutine, started when there is something to send and ending
// when the queue is empty, takes the whole of pending at once and sends it with a
// single write, so many small writes cost one syscall. The Conn's reads may send
// it first (sendNow, scheduleLocked). One batch is sent at a time (sending), so
// the bytes keep their order.
type writeQueue struct {
	mu        sync.Mutex // guards the fields up to timer
	pending   []byte     // accepted, not yet taken by the writer
	spare     []byte     // a sent batch, kept for reuse
	size      int        // bytes accepted and not yet handed to the kernel
	high, low int        // watermarks
	paused    bool       // size passed high and has not fallen to low yet
	running   bool       // a writer goroutine is draining the queue
	armed     bool       // timer will run backstop
	sending   bool       // a taken batch is being written, by the writer or sendNow
	err       error      // the first write error; sticky
	closed    bool       // Close or Abort began: no new writes
	eof       eofState
	upgrading bool      // StartTLS is switching out to TLS: Writes wait
	deadline  time.Time // the write deadline: bounds a blocked Write
	// wake is closed (then cleared) when size falls, an error sticks, the queue
	// closes or the deadline changes; nil while no one waits.
	wake chan struct{}

	out    net.Conn        // where the writer sends; StartTLS swaps it
	raw    syscall.RawConn // out's descriptor for sendNow; nil over TLS or a non-socket
	reader *Reader         // the Conn's reading half, whose reads call sendNow
	timer  *time.Timer     // runs backstop; made on first use

	// sendNow's one write(2): writeOnceRaw bound once, and its arguments, used
	// only by the goroutine that set sending.
	writeOnceFn func(fd uintptr) bool
	onceBuf     []byte
	onceN       int
	onceErr     error

	writer   conc.WaitGroup // the writer goroutine
	writerFn func()         // the writer's loop, bound once
}

type eofState uint8

const (
	eofNone eofState = iota
	eofWanted
	eofSent
)

// broadcastLocked wakes everyone waiting on the queue.
func (q *writeQueue) broadcastLocked() {
	if q.wake != nil {
		close(q.wake)
		q.wake = nil
	}
}

// waitLocked releases q.mu until the queue changes, ctx ends or the deadline
// passes, and takes it again. It returns ctx.Err() or a timeout error.
func (q *writeQueue) waitLocked(ctx context.Context, deadline time.Time) error {
	if q.wake == nil {
		q.wake = make(chan struct{})
	}
	wake := q.wake
	q.mu.Unlock()
	defer q.mu.Lock()
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timeout:
		return os.ErrDeadlineExceeded
	}
}

// writableLocked returns why a Write cannot be accepted now, or nil.
func (q *writeQueue) writableLocked() error {
	switch {
	case q.closed:
		return errClosed
	case q.err != nil:
		return q.err
	case q.eof != eofNone:
		return errWriteAfterEOF
	case !q.deadline.IsZero() && !time.Now().Before(q.deadline):
		return os.ErrDeadlineExceeded
	}
	return nil
}

// admit waits until n more bytes fit under the high watermark (an empty queue
// admits anything) and returns with q.mu held. On error q.mu is held too.
func (q *writeQueue) admit(n int) error {
	for {
		if err := q.writableLocked(); err != nil {
			return err
		}
		switch {
		case q.upgrading:
			// StartTLS is switching the transport: wait, so these bytes go over TLS.
		case q.size == 0 || q.size+n <= q.high:
			return nil
		default:
			q.paused = true
			q.startLocked() // the queue is full: no read will come to send it
		}
		if err := q.waitLocked(context.Background(), q.deadline); err != nil {
			return err
		}
	}
}

// appendLocked queues bufs and makes sure the writer runs.
func (q *writeQueue) appendLocked(bufs ...[]byte) {
	for _, b := range bufs {
		q.reserveLocked(len(b))
		q.pending = append(q.pending, b...)
		q.size += len(b)
	}
	if q.size > q.high {
		q.paused = true
	}
	q.scheduleLocked()
}

// backstopDelay bounds how long queued data waits for the Conn's next read to
// send it before the writer goroutine is started anyway.
const backstopDelay = time.Millisecond

// scheduleLocked makes sure what is queued will be sent. Usually it starts the
// writer goroutine. But where the Conn has been read and no read is under way,
// reads and writes alternate, most likely on one goroutine (a request/response
// client, a server handler), and the next read will send the queue itself
// (sendNow) before it blocks: starting a goroutine for a 64-byte reply would
// wake another core and cost more than the reply's round trip saves. The
// backstop timer starts the writer if no read comes within backstopDelay; it is
// armed at most once per backstopDelay, so it costs nothing per message.
func (q *writeQueue) scheduleLocked() {
	switch {
	case q.running:
	case q.reader == nil || q.raw == nil || q.reader.blocking.Load() || !q.reader.used.Load():
		q.startLocked()
	case !q.armed:
		q.armed = true
		if q.timer == nil {
			q.timer = time.AfterFunc(backstopDelay, q.backstop)
		} else {
			q.timer.Reset(backstopDelay)
		}
	}
}

// backstop starts the writer for what no read has sent.
func (q *writeQueue) backstop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.armed = false
	if !q.sending && !q.closed { // Close starts the writer itself; Abort drops the queue
		q.startLocked()
	}
}

// reserveLocked makes room in pending for n more bytes, moving to a larger
// buffer (at least twice the size) when it must.
func (q *writeQueue) reserveLocked(n int) {
	if cap(q.pending)-len(q.pending) >= n {
		return
	}
	buf := append(getBuf(max(len(q.pending)+n, 2*cap(q.pending))), q.pending...)
	putBuf(q.pending)
	q.pending = buf
}

// releaseBufsLocked gives the buffers of an empty, idle queue back to the pools.
func (q *writeQueue) releaseBufsLocked() {
	if len(q.pending) > 0 || q.sending || q.running {
		return
	}
	putBuf(q.pending)
	putBuf(q.spare)
	q.pending, q.spare = nil, nil
}

func (q *writeQueue) startLocked() {
	if !q.running && (len(q.pending) > 0 || q.eof == eofWanted) {
		q.running = true
		// Owned by the Conn: teardown waits for it. It ends as soon as the queue
		// is empty or a write fails; Abort makes a blocked write fail.
		q.writer.Go(q.writerFn)
	}
}

// drainLoop is the writer goroutine: it sends pending in batches until nothing is
// left, then sends a wanted EOF.
func (q *writeQueue) drainLoop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	// While sendNow is sending inline, leave the queue to it: it starts a writer
	// again if it leaves anything behind.
	for q.err == nil && len(q.pending) > 0 && !q.sending {
		batch, out := q.takeLocked()
		q.mu.Unlock()
		n, err := out.Write(batch)
		q.mu.Lock()
		q.sentLocked(batch, n, err)
	}
	if q.err == nil && q.eof == eofWanted && !q.sending && len(q.pending) == 0 {
		out := q.out.(interface{ CloseWrite() error })
		q.mu.Unlock()
		err := out.CloseWrite()
		q.mu.Lock()
		q.eof = eofSent
		q.failLocked(err)
	}
	q.running = false
	q.releaseBufsLocked()
	q.broadcastLocked()
}

// takeLocked takes everything pending as the next batch to send and marks it
// being sent.
func (q *writeQueue) takeLocked() (batch []byte, out net.Conn) {
	batch, out = q.pending, q.out
	q.pending, q.spare = q.spare[:0], nil
	q.sending = true
	return batch, out
}

// sentLocked accounts for a batch of which n bytes were handed to the kernel;
// the rest, unless err says it cannot be sent, goes back to the front of the
// queue.
func (q *writeQueue) sentLocked(batch []byte, n int, err error) {
	q.sending = false
	q.size -= n
	switch rest := batch[n:]; {
	case err != nil:
		q.size -= len(rest) // dropped, as failLocked drops pending
	case len(rest) > 0:
		buf := append(append(getBuf(len(rest)+len(q.pending)), rest...), q.pending...)
		putBuf(q.pending)
		q.pending = buf
	}
	if q.spare == nil {
		q.spare = batch
	}
	q.failLocked(err)
	if q.paused && q.size <= q.low {
		q.paused = false
	}
	q.broadcastLocked()
}

// failLocked makes err the sticky write error, if it is the first, and drops
// what can no longer be sent.
func (q *writeQueue) failLocked(err error) {
	if err == nil || q.err != nil {
		return
	}
	if q.closed {
		err = errClosed
	}
	q.err = err
	q.size -= len(q.pending)
	q.pending = q.pending[:0]
	q.paused = false
	q.broadcastLocked()
}

// Write queues a copy of p and returns len(p), without a syscall while the queued
// bytes stay within the high watermark; the Conn's writer goroutine sends them in
// the background. Where reads and writes alternate (a request/response client, a
// server handler), the Conn's next read, before it blocks, sends the queue itself
// with one non-blocking write(2), sparing the hand-off to the writer goroutine;
// if no read comes within a millisecond, the writer goroutine sends it. Flush,
// Drain and Close start it at once. A Write that would take the queue past the high watermark
// blocks until it fits; an empty queue always admits one Write, however large, so
// memory is bounded by the high watermark plus one write. The block ends when room
// is made, the write deadline passes (a timeout error, nothing queued), or the
// Conn fails or closes.
//
// Errors: the sticky write error of an earlier failed send, an error matching
// net.ErrClosed after Close, Abort or WriteEOF. Write is safe to call from many
// goroutines; each Write's bytes stay together.
func (c *Conn) Write(p []byte) (int, error) {
	q := &c.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.admit(len(p)); err != nil {
		return 0, err
	}
	q.appendLocked(p)
	return len(p), nil
}

// Writev queues bufs as one write (asyncio's writelines), with Write's blocking
// and errors, and returns the bytes queued.
func (c *Conn) Writev(bufs ...[]byte) (int64, error) {
	var n int
	for _, b := range bufs {
		n += len(b)
	}
	q := &c.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.admit(n); err != nil {
		return 0, err
	}
	q.appendLocked(bufs...)
	return int64(n), nil
}

// Drain waits for the write queue to drain, with asyncio's hysteresis (CPython's
// StreamWriter.drain): once the queue has passed the high watermark, writing is
// paused and Drain blocks until it falls to the low watermark; while not paused it
// returns at once. It returns the sticky write error if a send failed, ctx.Err()
// if ctx ends first, and an error matching net.ErrClosed after Close or Abort.
// Any number of goroutines may wait in Drain.
func (c *Conn) Drain(ctx context.Context) error {
	q := &c.q
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case q.err != nil:
			return q.err
		case q.closed:
			return errClosed
		case !q.paused:
			return nil
		}
		q.startLocked()
		if err := q.waitLocked(ctx, time.Time{}); err != nil {
			return err
		}
	}
}

// Flush waits until everything queued (and a WriteEOF asked for) has been handed
// to the kernel. It returns the sticky write error if a send failed, ctx.Err() if
// ctx ends first, and an error matching net.ErrClosed after Close or Abort.
func (c *Conn) Flush(ctx context.Context) error {
	q := &c.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return errClosed
	}
	return q.flushLocked(ctx, time.Time{})
}

// flushLocked waits until the queue is empty (and a wanted EOF sent), ctx ends or
// the deadline passes.
func (q *writeQueue) flushLocked(ctx context.Context, deadline time.Time) error {
	for q.err == nil && (q.size > 0 || q.eof == eofWanted) {
		q.startLocked()
		if err := q.waitLocked(ctx, deadline); err != nil {
			return err
		}
	}
	return q.err
}

// SetWriteBufferLimits sets the high and low watermarks in bytes (asyncio's
// set_write_buffer_limits). low > high or a negative value is an error. Waiting
// writers and drainers re-check against the new limits.
func (c *Conn) SetWriteBufferLimits(high, low int) error {
	if err := checkLimits(high, low); err != nil {
		return err
	}
	q := &c.q
	q.mu.Lock()
	defer q.mu.Unlock()
	q.high, q.low = high, low
	if q.size > high {
		q.paused = true
	} else if q.size <= low {
		q.paused = false
	}
	q.broadcastLocked()
	return nil
}

// WriteBufferSize returns the bytes accepted by Write and not yet handed to the
// kernel, a batch being sent included (asyncio's get_write_buffer_size).
func (c *Conn) WriteBufferSize() int {
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	return c.q.size
}

// WriteEOF half-closes the connection once the queued data is sent (asyncio's
// write_eof): the peer reads EOF, and this side can still read. It does not
// block; a failure to half-close becomes the sticky write error. Later writes
// fail with an error matching net.ErrClosed. It returns an error where
// CanWriteEOF is false, and after Close.
func (c *Conn) WriteEOF() error {
	if !c.CanWriteEOF() {
		return errCannotEOF
	}
	q := &c.q
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return errClosed
	case q.err != nil:
		return q.err
	case q.eof != eofNone:
		return nil
	case q.upgrading:
		return errCannotEOF // the transport is becoming TLS
	}
	q.eof = eofWanted
	q.startLocked()
	return nil
}

// SetWriteDeadline sets the deadline for Writes blocked on a full queue (net.Conn).
// A past deadline makes Write fail at once with a timeout error. Data already
// queued is sent regardless; Close bounds that. A zero t means no deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	q := &c.q
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deadline = t
	q.broadcastLocked()
	return nil
}

// sendNow tries once, without blocking, to hand what is queued to the kernel.
// The Conn's reading goroutine calls it before a read that may block: in a
// request/response exchange the reply it is about to wait for needs the request
// sent first, and sending it here saves the hand-off to the writer goroutine
// (which, finding the queue empty, just ends). Whatever the socket does not take
// at once stays queued for the writer goroutine, which Write has started.
func (q *writeQueue) sendNow() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.raw == nil || q.sending || q.err != nil || q.upgrading || len(q.pending) == 0 {
		return
	}
	batch, _ := q.takeLocked()
	raw := q.raw
	q.mu.Unlock()
	n, err := q.writeOnce(raw, batch)
	q.mu.Lock()
	q.sentLocked(batch, n, err)
	q.startLocked() // for what it left, or what was queued meanwhile
	q.releaseBufsLocked()
}

// writeOnce makes one non-blocking write(2) of p on raw and returns what it
// took; a full socket buffer is not an error. Only the sender (q.sending) calls
// it, so the once* fields are its own.
func (q *writeQueue) writeOnce(raw syscall.RawConn, p []byte) (int, error) {
	q.onceBuf = p
	err := raw.Write(q.writeOnceFn)
	n, werr := q.onceN, q.onceErr
	q.onceBuf, q.onceErr = nil, nil
	if werr == syscall.EAGAIN || werr == syscall.EINTR {
		werr = nil
	}
	if err == nil && werr != nil {
		err = os.NewSyscallError("write", werr)
	}
	return max(n, 0), err
}

// writeOnceRaw is writeOnce's callback: one attempt, never waiting for the
// socket to drain.
func (q *writeQueue) writeOnceRaw(fd uintptr) bool {
	q.onceN, q.onceErr = syscall.Write(int(fd), q.onceBuf)
	return true
}
