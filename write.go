package sluice

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

var (
	errWriteAfterEOF = fmt.Errorf("sluice: write after WriteEOF: %w", net.ErrClosed)
	errCannotEOF     = errors.New("sluice: the transport cannot write EOF")
	errTLSAfterEOF   = fmt.Errorf("sluice: StartTLS after WriteEOF: %w", net.ErrClosed)
)

// writeQueue is a Conn's write side: a bounded, byte-counted buffer and
// everything that happens to it, from admission to close. Writes append to
// pending and return. Bytes reach the kernel by one of two routes, one batch at
// a time (sending), so they keep their order:
//
//   - the writer goroutine (drainLoop), started when there is something to send
//     and ending when the queue is empty, takes the whole of pending and sends
//     it with one blocking write, so many small writes cost one syscall;
//   - sendNow, one write(2) through the socket's descriptor that does not wait,
//     made by the Conn's reading goroutine before it reads, and by Drain: in a
//     request/response exchange that spares waking the writer goroutine on
//     another core. A Write made while the Conn's reader is active (it has
//     read, and no read is waiting) leaves its bytes for it (forReader); the
//     reader sends them when it next reads or waits, and Drain, Flush and
//     Close send them too; if none comes, a timer (the backstop) starts the
//     writer goroutine: within minBackstop of the Write where the Conn has
//     left writes waiting like this, and within 2*maxBackstop at worst where
//     it reads or drains soon after each Write (see scheduleLocked). While an
//     iterator loop (Lines, Frames, Chunks) runs, the loop's next read sends
//     them, or its end; for a body that waits on something else while bytes
//     are left, a Server's Conns have the Server's sweeper, and other Conns
//     the timer at loopBackstop.
//     A Write made while a read waits, or on a Conn never read, starts the
//     writer goroutine at once, and so does a Write that the pause blocks.
//
// Whether the queue may be used at all is decided in one place, errLocked.
type writeQueue struct {
	mu        sync.Mutex // guards the fields up to wg
	pending   []byte     // accepted, not yet taken for sending
	size      int        // bytes accepted and not yet handed to the kernel, a batch being sent included
	high, low int        // watermarks
	paused    bool       // size passed high and has not fallen to low since
	running   bool       // a writer goroutine is draining the queue
	sending   bool       // a batch is being handed to the kernel, by the writer or sendNow
	torn      bool       // the Conn is tearing down: no writer starts any more
	closeErr  error      // why the queue closed (Close, Abort, a timeout); nil while open
	err       error      // the first failed send; sticky
	eof       eofState
	lastBatch uint8     // the last batch's length, rounded up to a power of two, as a shift, at most maxPooledShift-1 (batchBufLocked)
	upgrading bool      // held (hold): StartTLS is switching the transport, or Relay splicing; Writes wait
	held      bool      // hold has returned: the holder has the connection, and nothing is sent until release
	late      int       // bytes at the end of pending that offer queued while upgrading: they wait for release
	deadline  time.Time // the write deadline: bounds a Write blocked by the pause
	// wake is closed (then cleared) when the queue changes in a way a waiter
	// may care about: size falls, an error sticks, it closes, the deadline or
	// limits change; nil while no one waits.
	wake    chan struct{}
	out     net.Conn      // where batches go: the connection, or TLS over it
	sock    *rawSock      // out's descriptor, for sendNow; nil over TLS or where there is none
	timer   *time.Timer   // runs backstop; made on first use
	armed   bool          // timer is set to run backstop
	armedL  bool          // ... at loopBackstop, for an iterator loop
	left    bool          // a Write left bytes for the reader, the timer their backstop, since backstop last ran
	swept   bool          // the sweeper saw bytes left for the reads, at sweptAt; guarded by mu, used by it alone
	delay   time.Duration // the backstop's next delay; 0 before the first
	takes   uint64        // batches taken for sending so far
	armAt   uint64        // takes when the timer was armed
	sweeper *sweeper      // the Server's backstop for bytes left in a loop (sweeper), or nil
	sweptAt uint64        // takes at the sweeper's look that saw bytes left
	clock   *activity     // the idle and message timeouts' clock, or nil

	// Statistics.
	written     atomic.Int64 // read by Stats without mu: sendAll adds as it goes
	peak        int
	drainWaits  int64
	drainWaited time.Duration

	// What the Conn's reads and the queue tell each other: the Conn's
	// readerState (see the Conn's read hook).
	reads *readerState

	wg sync.WaitGroup // the writer goroutine
}

type eofState uint8

const (
	eofNone eofState = iota
	eofWanted
	eofSent
)

// A queueOp is what a caller of errLocked means to do.
type queueOp uint8

const (
	opWrite queueOp = iota // queue bytes
	opDrain                // wait for the pause to end
	opFlush                // wait for the queue to empty
	opEOF                  // half-close
	opHold                 // hold writes for StartTLS
)

// errLocked is the one place that decides whether op may go on, and why not,
// in this order: the queue closed (by Close, Abort or a timeout: its reason),
// then a send failed (the sticky error), then WriteEOF was called (writes and
// StartTLS fail; the rest go on).
func (q *writeQueue) errLocked(op queueOp) error {
	switch {
	case q.closeErr != nil:
		return q.closeErr
	case q.err != nil:
		return q.err
	case q.eof == eofNone:
		return nil
	case op == opWrite:
		return errWriteAfterEOF
	case op == opHold:
		return errTLSAfterEOF
	}
	return nil
}

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

// admitLocked waits while writing is paused (or StartTLS switches the
// transport) and returns nil once a Write may be queued: at once while the
// queue is not paused, however large the Write. A passed write deadline fails
// it, as net.Conn's Write, and so does ctx's end.
func (q *writeQueue) admitLocked(ctx context.Context) error {
	for {
		if err := q.errLocked(opWrite); err != nil {
			return err
		}
		if !q.deadline.IsZero() && !time.Now().Before(q.deadline) {
			return os.ErrDeadlineExceeded
		}
		if !q.paused && !q.upgrading {
			return nil
		}
		// What is queued must go out for the pause to end, and it may have
		// been left for the Conn's next read, which may be this goroutine's.
		q.startLocked()
		if err := q.waitLocked(ctx, q.deadline); err != nil {
			return err
		}
	}
}

// write queues bufs as one write, waiting as admitLocked does, and returns the
// bytes queued. If ctx ends while it waits (only WriteFrom's ctx can: Write's
// never ends), bufs are queued all the same, past the pause, and ctx.Err() is
// returned with their count: WriteFrom has taken them from its channel, and
// must not drop them.
func (q *writeQueue) write(ctx context.Context, bufs ...[]byte) (int, error) {
	q.mu.Lock() // unlocked by hand: this is every Write's path
	err := q.admitLocked(ctx)
	if err != nil && (err != ctx.Err() || q.errLocked(opWrite) != nil) {
		q.mu.Unlock()
		return 0, err
	}
	n := q.size
	size := 0
	for _, b := range bufs {
		size += len(b)
	}
	q.batchBufLocked(size)
	for _, b := range bufs {
		q.appendLocked(b)
	}
	n = q.queuedLocked(n)
	q.mu.Unlock()
	return n, err
}

// writeBytes is write(context.Background(), p), for Write: without write's
// ctx and array of one buffer, its frame and Write's are smaller, and they sit
// beneath a loop body's Write (see Server.serveConn).
func (q *writeQueue) writeBytes(p []byte) (int, error) {
	q.mu.Lock()
	if err := q.admitLocked(context.Background()); err != nil {
		q.mu.Unlock()
		return 0, err
	}
	n := q.size
	q.batchBufLocked(len(p))
	q.appendLocked(p)
	n = q.queuedLocked(n)
	q.mu.Unlock()
	return n, nil
}

// firstBatchShift is lastBatch before the first batch: its buffer is 4 KiB,
// bufio.Writer's default size.
const firstBatchShift = 11

// batchBufLocked gives a new batch its buffer: twice as large as the last
// batch was (up to the largest pooled size), or n, so that appendLocked need
// not grow it Write by Write. It inlines: the pool's calls are made from the
// caller's frame, which sits beneath a loop body's Write (see
// Server.serveConn).
func (q *writeQueue) batchBufLocked(n int) {
	if q.pending == nil && n > 0 { // an empty write takes none: an idle queue holds none
		q.pending = writeBufs.get(max(2<<q.lastBatch, n))[:0]
	}
}

// queuedLocked sees to the sending of what a write queued after size was n,
// and returns how many bytes that was.
func (q *writeQueue) queuedLocked(n int) int {
	if q.upgrading {
		q.late += q.size - n // ctx ended during a hold: sent after it, as offer's
	} else {
		q.scheduleLocked()
	}
	return q.size - n
}

// appendLocked queues b and pauses writing once the queue has passed the
// high watermark; the caller makes sure what is queued will be sent.
func (q *writeQueue) appendLocked(b []byte) {
	q.reserveLocked(len(b))
	q.pending = append(q.pending, b...)
	q.size += len(b)
	q.peak = max(q.peak, q.size)
	if q.size > q.high {
		q.paused = true
	}
}

// offer queues a copy of p unless limit bytes or more are queued already,
// without waiting and past the high watermark if need be (Hub.Publish's rule).
// It reports whether p was queued; if not, the error says why the queue cannot
// take writes, and nil means it is full. While the queue is held (hold), p
// waits at the end of the queue for release, behind what came before the hold.
func (q *writeQueue) offer(p []byte, limit int) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.errLocked(opWrite); err != nil {
		return false, err
	}
	if q.size >= limit {
		return false, nil
	}
	q.appendLocked(p)
	if q.upgrading {
		q.late += len(p)
		return true, nil
	}
	if !q.sending {
		// The publisher is not the member's reader: its bytes do not wait
		// for that reader's next read, nor arm the backstop for it. (A send
		// under way takes them, or starts the writer for them, when done.)
		q.startLocked()
	}
	return true, nil
}

// takesWrites reports whether the queue still takes writes: it has not been
// closed, no send has failed and WriteEOF has not been called.
func (q *writeQueue) takesWrites() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.errLocked(opWrite) == nil
}

// The backstop's delay: minBackstop at first and after a backstop that found
// bytes stranded (left for a reader that did not come); doubled, up to
// maxBackstop, after one that found nothing to do. While an iterator loop
// runs it is loopBackstop at least (see scheduleLocked).
const (
	minBackstop  = time.Millisecond
	maxBackstop  = 32 * time.Millisecond
	loopBackstop = 100 * time.Millisecond
)

// scheduleLocked makes sure what is queued will be sent: by the writer
// goroutine, or, where the Conn's reader is active, by its next read (see
// writeQueue), with the backstop timer in case none comes. The timer is armed
// at most once per delay and never stopped early: moving a timer earlier, as
// a stop and re-arm for every message would, wakes the runtime's network
// poller on another core each time. Its delay backs off while it keeps
// finding that the reader or Drain took what was left: a timer firing every
// millisecond costs a request/response exchange ~10% (measured, 2 cores),
// since each firing wakes another core. And while Writes keep leaving bytes,
// it re-arms itself when it fires (backstop), so that a Write in the middle
// of an exchange finds it armed and leaves it alone: re-armed by the first
// Write after each firing instead, it cost an echo round trip ~3%
// (echo-pingpong against bufio, 20 interleaved runs: median 0.883 -> 0.914).
func (q *writeQueue) scheduleLocked() {
	switch {
	case q.running || q.sending:
		return // the sender takes what is queued now when it is done
	case q.sock == nil || !q.reads.has(readerUsed):
		q.startLocked()
		return
	}
	switch v := q.reads.set(forReader, true); {
	case v&readerWaiting != 0:
		q.startLocked() // no read is coming to send it
	case v&readerLooping != 0 && q.sweeper != nil && q.sweeper.note():
		// While an iterator loop runs, its next read or its end sends what
		// is left, and a body that writes is usually about to return; but
		// the Write may come from another goroutine while the body waits on
		// something else, for as long as that takes. The Server's sweeper
		// sees to that, at no cost per Conn. (forReader is set above, before
		// note: a sweeper that has stopped since sees it in its last look.)
	default:
		// Elsewhere the Conn's own timer does, at loopBackstop where a loop
		// runs: rarely enough that a busy loop hardly pays for it.
		q.left = true
		switch {
		case !q.armed:
			q.armLocked(v&readerLooping != 0)
		case q.armedL && v&readerLooping == 0 && q.timer.Stop():
			// The timer was armed at loopBackstop for a loop that has
			// ended: a Write outside a loop is owed the shorter delay.
			// (Where Stop finds it fired already, backstop re-arms it by
			// the loop's end itself.)
			q.armLocked(false)
		}
	}
}

// armLocked sets the timer to run backstop after the current delay, or after
// loopBackstop at least where an iterator loop runs.
func (q *writeQueue) armLocked(looping bool) {
	if q.delay == 0 {
		q.delay = minBackstop
	}
	d := q.delay
	if looping {
		d = max(d, loopBackstop)
	}
	q.armed, q.armedL, q.armAt = true, looping, q.takes
	if q.timer == nil {
		q.timer = time.AfterFunc(d, q.backstop)
	} else {
		q.timer.Reset(d)
	}
}

// backstop starts the writer for bytes stranded: left for the reader since
// before the timer was armed, with nothing taken for sending since. Bytes left
// by a later Write, after a take, are not stranded yet: the timer is armed
// again for them, with a longer delay, so they wait at most this delay and
// the next. It is armed again, too, where Writes left bytes since it was
// armed and the reader or Drain took them: the exchange goes on, and its next
// Write finds the timer armed (see scheduleLocked). Once a delay passes with
// no such Write, it stays disarmed.
func (q *writeQueue) backstop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.armed = false
	left := q.left
	q.left = false
	waiting := q.reads.has(forReader) && !q.sending
	if waiting && q.takes == q.armAt {
		q.delay = minBackstop
		q.startLocked()
		return
	}
	q.delay = min(2*q.delay, maxBackstop)
	if (waiting || left) && !q.torn {
		q.armLocked(q.reads.has(readerLooping))
	}
}

// sweep is the sweeper's look at the queue: it starts the writer for bytes
// left for the Conn's reads that were left at its last look already, nothing
// having been taken since, or at its final look wherever bytes are left; it
// reports whether bytes are left for it to look at again.
func (q *writeQueue) sweep(final bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.reads.has(forReader) || q.sending || q.running || q.torn {
		q.swept = false // none left, or a sender takes them when done
		return false
	}
	if final || (q.swept && q.takes == q.sweptAt) {
		q.swept = false
		q.startLocked()
		return false
	}
	q.swept, q.sweptAt = true, q.takes
	return true
}

// reserveLocked makes room in pending for n more bytes, moving to a larger
// buffer (at least twice the size) when it must.
func (q *writeQueue) reserveLocked(n int) {
	if cap(q.pending)-len(q.pending) >= n {
		return
	}
	buf := append(writeBufs.get(max(len(q.pending)+n, 2*cap(q.pending)))[:0], q.pending...)
	writeBufs.put(q.pending)
	q.pending = buf
}

// releaseBufsLocked gives the buffers of an empty, idle queue back to the pool.
func (q *writeQueue) releaseBufsLocked() {
	if q.pending == nil || len(q.pending) > 0 || q.sending || q.running {
		return
	}
	writeBufs.put(q.pending)
	q.pending = nil
}

// startLocked starts the writer goroutine if there is something to send and
// none runs, unless a holder has the connection.
func (q *writeQueue) startLocked() {
	if q.running || q.torn || q.held || (len(q.pending) == q.late && q.eof != eofWanted) {
		return
	}
	q.start()
}

// start is startLocked's start of the writer, apart so that startLocked,
// which sits beneath a loop body's Drain (see Server.serveConn), has a small
// frame.
func (q *writeQueue) start() {
	q.running = true
	q.wg.Add(1)
	// Owned by the Conn: teardown waits for it. It ends as soon as the queue
	// is empty or a send fails; teardown closes the transport, which makes a
	// blocked send fail.
	go q.drainLoop()
}

// drainLoop is the writer goroutine: it sends pending in batches until nothing
// is left, then sends a wanted EOF.
func (q *writeQueue) drainLoop() {
	defer q.wg.Done()
	q.mu.Lock()
	defer q.mu.Unlock()
	// While sendNow is sending, leave the queue to it: it starts a writer
	// again if it leaves anything behind.
	for q.err == nil && len(q.pending) > q.late && !q.sending {
		batch, out := q.takeLocked()
		sock, clock := q.sock, q.clock
		q.mu.Unlock()
		var n int
		var err error
		before := q.written.Load() // only this sender moves it until sentLocked
		if sock != nil {
			n, err = sock.sendAll(batch, q) // counts what it sends as it goes, but for its last write
		} else {
			n, err = sendBatch(out, clock, batch)
		}
		q.mu.Lock()
		q.countLocked(int64(n) - (q.written.Load() - before)) // those sendAll did not count as it went
		writeBufs.put(q.sentLocked(batch, n, err))
	}
	if q.err == nil && q.eof == eofWanted && !q.sending && len(q.pending) == 0 {
		hc := q.out.(halfCloser)
		q.mu.Unlock()
		err := hc.CloseWrite()
		q.mu.Lock()
		q.eof = eofSent
		q.failLocked(err)
	}
	q.running = false
	q.releaseBufsLocked()
	q.broadcastLocked()
}

// timedPiece is the most that sendBatch hands to a transport with no descriptor
// (TLS: one record) between two looks at the clock.
const timedPiece = 16 << 10

// sendBatch is the writer goroutine's send of a batch where there is no
// descriptor (TLS; the descriptor's is rawSock.sendAll): one blocking write to
// out; or, where an idle or message timeout keeps a clock, a send that tells
// the clock of its progress as it goes, so that a peer that reads a large batch
// slowly is not taken for idle, in pieces of timedPiece.
func sendBatch(out net.Conn, clock *activity, batch []byte) (int, error) {
	if clock == nil {
		return out.Write(batch)
	}
	n := 0
	for n < len(batch) {
		k, err := out.Write(batch[n:min(len(batch), n+timedPiece)])
		n += k
		if err != nil {
			return n, err
		}
		clock.touch()
	}
	return n, nil
}

// sendQueued tries once, without waiting, to hand what is queued to the
// kernel. Whatever the socket does not take at once is left to the writer
// goroutine. It often sits beneath a handler's loop body (Drain; see
// Server.serveConn), so the write(2) and the pool's Put are made from its own
// small frame, not from deeper ones.
func (q *writeQueue) sendQueued() {
	sock := q.takeForSend()
	if sock == nil {
		return
	}
	putBatch(q.sendDone(sock.trySend()))
}

// putBatch gives a sent batch's buffer back to the pool: writeBufs.put, in a
// function of its own, so that its callers pass three words of arguments,
// not four with the pool's address.
//
//go:noinline
func putBatch(b []byte) { writeBufs.put(b) }

// takeForSend takes what is queued for sendQueued into sock's send, or returns
// nil where there is nothing to do.
//
// sendQueued and Drain call it, then sock.trySend, sendDone and putBatch, from
// their own frames, with no more than three words of arguments to any: their
// frames, and what they call, sit beneath a loop body's Drain (see
// Server.serveConn).
func (q *writeQueue) takeForSend() *rawSock {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.sock == nil || q.sending || q.err != nil || q.upgrading || len(q.pending) == 0 {
		return nil
	}
	q.sock.buf, _ = q.takeLocked()
	return q.sock
}

// sendDone accounts for sendQueued's batch and leaves what the socket did not
// take, what came meanwhile, and a WriteEOF made meanwhile to the writer
// goroutine: a writer started during the send left them to it (drainLoop).
// It returns the batch's buffer, for the caller to give back (putBatch).
func (q *writeQueue) sendDone(err error) []byte {
	batch := q.sock.buf
	n, err := q.sock.sent(err)
	q.mu.Lock() // unlocked by hand, as write: nothing below panics
	q.countLocked(int64(n))
	spent := q.sentLocked(batch, n, err)
	if q.err == nil {
		q.startLocked()
	}
	q.releaseBufsLocked()
	q.mu.Unlock()
	return spent
}

// takeLocked takes everything pending as the next batch to send and marks it
// being sent, but for the late bytes, which stay queued for after the hold.
func (q *writeQueue) takeLocked() (batch []byte, out net.Conn) {
	batch, out = q.pending, q.out
	q.pending = nil // the next Write takes a buffer from the pool
	if q.late > 0 {
		n := len(batch) - q.late
		q.pending = append(writeBufs.get(q.late)[:0], batch[n:]...)
		batch = batch[:n]
	}
	q.sending = true
	q.lastBatch = uint8(min(bits.Len(uint(len(batch)-1)), maxPooledShift-1)) // batches are never empty
	q.takes++
	q.reads.set(forReader, false)
	return batch, out
}

// sentLocked accounts for a batch of which n bytes were handed to the kernel;
// the rest, unless err says it cannot be sent, goes back to the front of the
// queue. Writing resumes once the queue is down to the low watermark. It
// returns batch's buffer, for the caller to give back (writeBufs.put). The caller
// counts the bytes in Stats (countLocked).
func (q *writeQueue) sentLocked(batch []byte, n int, err error) []byte {
	q.sending = false
	q.size -= n
	if err != nil || n < len(batch) {
		q.unsentLocked(batch[n:], err)
	}
	if q.paused && q.size <= q.low {
		q.paused = false
	}
	q.broadcastLocked()
	return batch
}

// unsentLocked deals with what a send did not hand to the kernel: dropped if
// err says it cannot be sent, else back to the front of the queue. It is
// sentLocked's rare case, apart so that sentLocked, which sits beneath a loop
// body's Drain (see Server.serveConn), has a small frame and calls nothing in
// the common one.
func (q *writeQueue) unsentLocked(rest []byte, err error) {
	if err != nil {
		q.size -= len(rest) // dropped, as failLocked drops pending
		q.failLocked(err)
		return
	}
	buf := append(append(writeBufs.get(len(rest) + len(q.pending))[:0], rest...), q.pending...)
	writeBufs.put(q.pending)
	q.pending = buf
}

// countLocked counts n bytes handed to the kernel in Stats and on the timeouts'
// clock.
func (q *writeQueue) countLocked(n int64) {
	q.written.Add(n)
	if n > 0 && q.clock != nil {
		q.clock.touch()
	}
}

// spliced counts n bytes that Relay's splice handed to the kernel past the
// queue, while it held the queue.
func (q *writeQueue) spliced(n int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.countLocked(n)
}

// failLocked makes err the sticky write error, if it is the first, and drops
// what can no longer be sent. A failure caused by the Conn's own teardown
// (its transport closed under a send) is reported as the close; one during a
// Close's flush, before that, is the send's own (a reset, say): a write error
// is never lost.
func (q *writeQueue) failLocked(err error) {
	if err == nil || q.err != nil {
		return
	}
	if q.closeErr != nil && (q.torn || errors.Is(err, net.ErrClosed)) {
		err = q.closeErr
	}
	q.err = err
	q.dropLocked()
}

// dropLocked drops everything not yet being sent and ends the pause.
func (q *writeQueue) dropLocked() {
	q.size -= len(q.pending)
	q.pending, q.late = q.pending[:0], 0
	q.paused = false
	q.broadcastLocked()
}

// flushLocked waits until everything queued (and a wanted EOF) has been handed
// to the kernel, ctx ends or the deadline passes. Close's own flush (closing)
// goes on after the queue is closed; any other stops with the close's reason.
// Close's flush is bounded by the write deadline too, as it is when it waits:
// a deadline moved while it waits applies at once.
func (q *writeQueue) flushLocked(ctx context.Context, deadline time.Time, closing bool) error {
	for {
		bound := deadline
		if closing && !q.deadline.IsZero() && q.deadline.Before(bound) {
			bound = q.deadline
		}
		if !closing {
			if err := q.errLocked(opFlush); err != nil {
				return err
			}
		} else if q.err != nil {
			return q.err
		}
		if q.size == 0 && q.eof != eofWanted {
			return nil
		}
		q.startLocked()
		if err := q.waitLocked(ctx, bound); err != nil {
			return err
		}
	}
}

// close marks the queue closed for reason, so that new writes fail, and wakes
// every waiter. It reports false if the queue was closed already.
func (q *writeQueue) close(reason error) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closeErr != nil {
		return false
	}
	q.closeErr = reason
	q.broadcastLocked()
	return true
}

// flushForClose sends what is queued before the Conn closes, for at most
// timeout, or until the write deadline if that comes first. It returns the
// sticky error, or a timeout error saying how much was dropped.
func (q *writeQueue) flushForClose(timeout time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	err := q.flushLocked(context.Background(), time.Now().Add(timeout), true)
	if err == os.ErrDeadlineExceeded {
		err = fmt.Errorf("sluice: close: %d queued bytes dropped: %w", q.size, err)
	}
	return err
}

// abort drops everything queued; a Close flushing it returns at once, with
// the close's reason.
func (q *writeQueue) abort() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.err = q.closeErr
	}
	q.dropLocked()
}

// tear stops the queue for good, before the Conn closes its transport: no
// writer starts any more, and a send that fails from here on fails because of
// the close (failLocked).
func (q *writeQueue) tear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.torn = true
	if q.armed {
		q.timer.Stop()
		q.armed = false
	}
}

// hold stops the queue from accepting writes and waits until everything queued
// has been handed to the kernel and the writer goroutine has ended, so the
// holder has the connection to itself: StartTLS for its handshake (op opHold),
// Relay for one splice (op opWrite). Writes wait meanwhile; what a Hub
// publishes is queued (offer) and sent after release. On error nothing is
// held.
func (q *writeQueue) hold(ctx context.Context, op queueOp) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.upgrading = true
	for {
		err := q.errLocked(op)
		if err == nil && q.size == q.late && !q.running && !q.sending {
			q.held = true
			return nil
		}
		if err == nil {
			q.startLocked()
			err = q.waitLocked(ctx, time.Time{})
		}
		if err != nil {
			q.unholdLocked()
			return err
		}
	}
}

// release ends the hold: writes go on, to out if it is not nil (TLS, which
// sendNow must not bypass), and what was published meanwhile is sent. A
// failed upgrade's error sticks.
func (q *writeQueue) release(out net.Conn, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if out != nil {
		q.out, q.sock = out, nil
	}
	q.failLocked(err)
	q.unholdLocked()
}

// unholdLocked ends a hold, or a hold that failed: the late bytes are sent
// like any others, and Writes waiting for the hold go on.
func (q *writeQueue) unholdLocked() {
	q.upgrading, q.held, q.late = false, false, 0
	q.startLocked()
	q.broadcastLocked()
}

// resetErr returns the sticky error if it is a connection reset: the reset a
// read that found EOF must report instead.
func (q *writeQueue) resetErr() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil && isReset(q.err) {
		return q.err
	}
	return nil
}

// halfCloser is a transport that can half-close: *net.TCPConn, *net.UnixConn.
type halfCloser interface{ CloseWrite() error }

// canEOF reports whether out, where a queue sends, can half-close: TCP and
// Unix sockets can; TLS cannot (asyncio's can_write_eof).
func canEOF(out net.Conn) bool {
	if _, ok := out.(*tls.Conn); ok {
		return false
	}
	_, ok := out.(halfCloser)
	return ok
}

// Write queues a copy of p and returns len(p), without a syscall: the Conn's
// writer sends it in the background (see Drain for pacing).
//
// Writing is paused once WriteBufferSize exceeds the high watermark and resumes
// when it falls to the low watermark (asyncio's pause_writing and
// resume_writing). A Write into a queue that is not paused is accepted at once,
// even if it takes the queue past the high watermark; a Write into a paused
// queue blocks until writing resumes, or until the write deadline passes, when
// it queues nothing and returns 0 and a timeout error. So a Write + Drain(ctx)
// loop always waits in Drain, where ctx is honoured, and memory is bounded by
// the high watermark plus one Write, with any number of writers.
//
// How the bytes are sent: a writer goroutine hands everything queued to the
// kernel in one write(2). Where the Conn's reading goroutine is active (it has
// read, and is not waiting for data) a Write leaves its bytes for it instead:
// in a request/response exchange the next read sends them itself, with one
// write(2) that does not wait, just before it waits for the reply, sparing the
// writer goroutine's wake-up on another core. Such bytes go out when the Conn
// next reads or waits, or at the next Drain, Flush or Close, or, if none of
// these comes, through the writer goroutine: within a millisecond on a Conn
// that leaves writes waiting like that, within 64 ms at worst on one that
// reads or drains soon after each Write (the timer behind it backs off while
// it finds nothing to do). While a Lines, Frames or Chunks loop runs they go
// out when the loop next reads from the socket (a step that finds its record
// buffered does not read, so the replies to pipelined requests go out
// together), at the loop's end, or at a Drain, Flush or Close, and otherwise
// through the writer goroutine within 200 ms at worst (100 ms on a Conn of its
// own; a Server's sweeper looks every 100 ms and sends what its previous look
// saw): a loop body that writes and then waits on something other than the
// Conn, or a goroutine that writes while the body runs, calls Drain for them
// to go out at once. A
// Write made while a read is waiting, or on a Conn never read, starts the
// writer at once.
//
// Errors: the sticky error of an earlier failed send; an error matching
// net.ErrClosed after Close, Abort or WriteEOF; the reason the Conn was closed
// by a timeout (ErrIdleTimeout, ErrMessageTimeout); a timeout error
// (os.ErrDeadlineExceeded) once the write deadline has passed. Write is safe to
// call from many goroutines; each Write's bytes stay together.
func (c *Conn) Write(p []byte) (int, error) {
	return c.queue().writeBytes(p)
}

// Writev queues bufs as one write (asyncio's writelines), with Write's pausing
// and errors, and returns the bytes queued.
func (c *Conn) Writev(bufs ...[]byte) (int64, error) {
	n, err := c.queue().write(context.Background(), bufs...)
	return int64(n), err
}

// Drain waits for writing to resume, with asyncio's hysteresis (CPython's
// StreamWriter.drain): once the queue has passed the high watermark, writing is
// paused and Drain blocks until the queue falls to the low watermark; while
// writing is not paused it returns at once. Either way it first sends what
// Writes left for the Conn's next read (see Write), with one write(2) that does
// not wait. It returns the sticky write error if a send failed, ctx.Err() if
// ctx ends first, and an error matching net.ErrClosed after Close or Abort (or
// the timeout that closed the Conn). Any number of goroutines may wait in
// Drain. A Drain that waits counts in Stats.
func (c *Conn) Drain(ctx context.Context) error {
	q := c.wq.Load()
	if q == nil {
		return nil // nothing written, and open: closing makes the queue
	}
	if c.reads.has(forReader) {
		// What a Write left for the reader goes out now: sendQueued, in
		// this frame, which sits beneath a loop body (see
		// Server.serveConn).
		if sock := q.takeForSend(); sock != nil {
			putBatch(q.sendDone(sock.trySend()))
		}
	}
	return q.drain(ctx)
}

// drain waits while writing is paused, counting the wait in Stats.
func (q *writeQueue) drain(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var since time.Time
	defer func() {
		if !since.IsZero() {
			q.drainWaited += time.Since(since)
		}
	}()
	for {
		if err := q.errLocked(opDrain); err != nil {
			return err
		}
		if !q.paused {
			return nil
		}
		if since.IsZero() {
			since = time.Now()
			q.drainWaits++
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
	q := c.queue()
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.flushLocked(ctx, time.Time{}, false)
}

// SetWriteBufferLimits sets the high and low watermarks in bytes (asyncio's
// set_write_buffer_limits). low > high or a negative value is an error. Writing
// pauses or resumes at once by the new limits, and blocked writers and drainers
// re-check against them.
func (c *Conn) SetWriteBufferLimits(high, low int) error {
	if err := checkLimits(high, low); err != nil {
		return err
	}
	q := c.queue()
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
	q := c.wq.Load()
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.size
}

// CanWriteEOF reports whether WriteEOF can half-close this Conn (asyncio's
// can_write_eof): true over TCP and Unix sockets, false over TLS.
func (c *Conn) CanWriteEOF() bool {
	q := c.wq.Load()
	if q == nil {
		return canEOF(c.raw) // where a queue made now would send
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return canEOF(q.out)
}

// WriteEOF half-closes the connection once the queued data is sent (asyncio's
// write_eof): the peer reads EOF, and this side can still read. It does not
// block; a failure to half-close becomes the sticky write error. Later writes
// fail with an error matching net.ErrClosed. A second call does nothing. It
// returns an error where CanWriteEOF is false (and while StartTLS runs, or a
// Relay splices into the Conn), and after Close or Abort.
func (c *Conn) WriteEOF() error {
	q := c.queue()
	q.mu.Lock()
	defer q.mu.Unlock()
	switch err := q.errLocked(opEOF); {
	case err != nil:
		return err
	case q.eof != eofNone:
		return nil
	case q.upgrading || !canEOF(q.out):
		return errCannotEOF
	}
	q.eof = eofWanted
	q.startLocked()
	return nil
}

// SetWriteDeadline sets the deadline for Writes blocked by the pause (net.Conn).
// A passed deadline makes Write fail at once with a timeout error. Data already
// queued is sent regardless; Close bounds that. A zero t means no deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() && c.wq.Load() == nil {
		return nil // a queue starts with no deadline: none to clear
	}
	q := c.queue()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deadline = t
	q.broadcastLocked()
	return nil
}
