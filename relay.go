package sluice

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
)

const (
	// relayChunk is the most a Relay direction copies into its destination's
	// write queue at a time, so the queue holds at most its high watermark
	// plus relayChunk.
	relayChunk = 64 << 10

	// spliceChunk is the most one splice step moves before Relay counts the
	// bytes and looks at ctx. A step moves what has arrived, up to this.
	spliceChunk = 1 << 20
)

// testHookRelayStep, if not nil, is told of every step of a Relay direction:
// n bytes from src, through its Reader or spliced in the kernel (a spliced
// step is told while it still holds the destination's write queue).
var testHookRelayStep func(src *Conn, n int64, spliced bool)

// Relay copies a's incoming bytes to b and b's to a, bytes already buffered in
// either Conn's reader first, each direction in order: the body of a proxy.
// When one side's input ends, the other side gets WriteEOF after everything
// relayed (a half-close) and the opposite direction goes on; where the
// destination cannot write EOF (CanWriteEOF is false: TLS), it is closed once
// both directions are done. aToB counts every byte written to b, those
// buffered in a before the call included; bToA every byte written to a.
//
// Relay blocks until both directions have ended and been flushed, and then
// returns nil and leaves a and b open (but for a destination closed as above;
// its Close's error is returned, if any). If a read or write fails in either
// direction, or ctx ends, it aborts both Conns (Abort: so a reset is passed on
// as a reset to the other side's peer) and returns the first failure's error,
// joined with the other direction's if that failed on its own; errors caused
// by its own abort are not reported. So: ctx.Err() when ctx ends; an error
// matching syscall.ECONNRESET when a peer resets; ErrIdleTimeout when
// WithIdleTimeout closed a Conn; an error matching net.ErrClosed when another
// goroutine closed one, or one was closed before the call; a close is
// reported as such where ctx has ended too (a Server handler's ctx ends with
// its Conn's close). If another goroutine is reading a or b, Relay returns
// ErrConcurrentRead at once and touches neither. On failure the counts include
// bytes written to a queue that the abort dropped.
//
// Relay holds both Conns' read locks while it runs, so reads by others fail
// with ErrConcurrentRead (Read waits), as does StartTLS. Writes to a or b by
// other goroutines are safe: each Write's bytes stay together and go out
// between two relayed chunks, at no particular point of the stream; a Write
// that comes while the kernel moves a chunk waits for it (its write deadline
// applies), and a Hub's Publish queues its copy to go out right after it.
// Close or Abort by another goroutine ends the relay as a failure, and so does
// WriteEOF once the relay next writes to that Conn. Relay runs each direction
// in a goroutine of its own and waits for both.
//
// Relay has no buffer of its own: each direction reads a chunk into its source
// Conn's buffer, copies it into the destination's write queue and paces itself
// with Drain, so it never holds more than a's and b's write queues (each at
// most its high watermark plus 64 KiB). Where both Conns are plain TCP (no TLS)
// without WithIdleTimeout and nothing is buffered, on Linux, the kernel moves
// the bytes (splice(2), as io.Copy between two *net.TCPConn does), without
// copying them through user space or the queues: each step moves what has
// arrived, up to 1 MiB, and then counts it in both Conns' Stats (and on a
// WithMessageTimeout clock), so those stay current while data flows (behind by
// at most the step under way) and exact once it has.
func Relay(ctx context.Context, a, b *Conn) (aToB, bToA int64, err error) {
	rl := &relay{ctx: ctx, a: a, b: b}
	if err := rl.lock(); err != nil {
		return 0, 0, err
	}
	defer a.rd.mu.unlock()
	defer b.rd.mu.unlock()
	if ctx.Err() != nil {
		err := rl.endErr()
		rl.fail(err)
		return 0, 0, err
	}
	// ended is cancelled when ctx ends, or when another goroutine closes a or
	// b (or a timeout does): a direction may wait on the other Conn only,
	// which that close does not wake.
	ended, end := context.WithCancelCause(ctx)
	defer end(nil)
	a.rd.onShutdown(end)
	b.rd.onShutdown(end)
	defer a.rd.onShutdown(nil)
	defer b.rd.onShutdown(nil)
	fired := make(chan struct{}) // closed when ended's end has been dealt with
	stop := context.AfterFunc(ended, func() {
		defer close(fired)
		rl.fail(rl.endErr())
	})

	var closeA, closeB bool
	var wg sync.WaitGroup
	wg.Add(2)
	// The two directions, owned by Relay, which waits for both just below.
	// Each ends once its source's input has ended and the end has been passed
	// on, or at the first failure in either direction, which aborts both
	// Conns and so ends the other direction's read, write, Drain or splice.
	go func() { defer wg.Done(); aToB, closeB = rl.copy(a, b) }()
	go func() { defer wg.Done(); bToA, closeA = rl.copy(b, a) }()
	wg.Wait()
	err = rl.finish()
	if !stop() {
		<-fired
	}
	if err != nil {
		return aToB, bToA, err
	}

	// Both directions ended cleanly: close the destinations that could not be
	// half-closed.
	var errs []error
	if closeA {
		errs = append(errs, a.Close())
	}
	if closeB {
		errs = append(errs, b.Close())
	}
	return aToB, bToA, errors.Join(errs...)
}

// relay is one Relay call.
type relay struct {
	ctx  context.Context
	a, b *Conn

	mu       sync.Mutex // guards the fields below
	err      error      // the first failure, joined with those its abort did not cause; once set, both Conns are aborted
	byCtx    bool       // that failure was ctx's end
	finished bool       // both directions have ended: ctx's end no longer matters
}

// lock takes both Conns' read locks for the whole relay. A read under way
// elsewhere fails it with ErrConcurrentRead, touching neither Conn; any other
// failure (a Conn closed already) is the relay's first failure.
func (rl *relay) lock() error {
	err := rl.a.rd.lock(rl.ctx)
	if err == nil {
		if err = rl.b.rd.lock(rl.ctx); err != nil {
			rl.a.rd.mu.unlock()
		}
	}
	if err != nil && err != ErrConcurrentRead {
		rl.fail(err)
	}
	return err
}

// endErr is why the relay must end once ctx has ended or a or b has been
// closed: the close's reason where one of them is closed (a Server handler's
// ctx ends with its Conn's close), else ctx's error.
func (rl *relay) endErr() error {
	if reason := rl.a.closeReason(); reason != nil {
		return reason
	}
	return rl.b.endErr(rl.ctx)
}

// fail records a failure; ctx's error stands for its end, reported as endErr
// says. The first one aborts both Conns, which ends the other direction. A
// later one is reported only if it is a direction's own, which the abort
// cannot have caused: not the Conns' close (net.ErrClosed), not ctx's end,
// and not after ctx's end.
func (rl *relay) fail(err error) {
	if ctxErr := rl.ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		err = rl.endErr() // the close, where ctx ended with it
	}
	closeCaused := rl.closeCaused(err)
	rl.mu.Lock()
	first := rl.err == nil && !rl.finished
	byCtx := rl.ctx.Err() != nil && errors.Is(err, rl.ctx.Err())
	switch {
	case first:
		rl.err, rl.byCtx = err, byCtx
	case rl.finished, rl.byCtx, byCtx, errors.Is(err, net.ErrClosed), closeCaused:
	default:
		rl.err = errors.Join(rl.err, err)
	}
	rl.mu.Unlock()
	if first {
		rl.a.Abort()
		rl.b.Abort()
	}
}

// closeCaused reports whether err is why a or b was closed (by a timeout, say):
// a failure that the close caused, not one of the direction's own.
func (rl *relay) closeCaused(err error) bool {
	for _, c := range [...]*Conn{rl.a, rl.b} {
		if reason := c.closeReason(); reason != nil && errors.Is(err, reason) {
			return true
		}
	}
	return false
}

// finish marks both directions ended and returns the failure, if any.
func (rl *relay) finish() error {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.finished = true
	return rl.err
}

// copy relays src's input to dst until it ends, then passes the end on. It
// returns the bytes written to dst and whether dst, which cannot half-close,
// is left for Relay to close. It hands a failure to fail.
func (rl *relay) copy(src, dst *Conn) (n int64, closeDst bool) {
	err := rl.pump(src, dst, &n)
	if err == io.EOF {
		closeDst, err = rl.passEOF(dst)
	}
	if err != nil {
		rl.fail(err)
	}
	return n, closeDst
}

// pump moves src's bytes to dst until src's input ends (io.EOF) or something
// fails, counting them in n: first through src's buffer and dst's write queue,
// paced by Drain, then, once nothing is buffered, in the kernel where it can.
func (rl *relay) pump(src, dst *Conn, n *int64) error {
	sp := newSplicer(src, dst)
	for {
		if sp != nil && src.rd.caughtUp() {
			if err := sp.run(rl.ctx, n); err != errUrgentMark {
				return err
			}
			// One step through the Reader, whose read(2) passes the mark.
		}
		p, err := src.rd.nextChunk(rl.ctx, relayChunk)
		if err != nil {
			return err
		}
		if _, err := dst.Write(p); err != nil {
			return err
		}
		*n += int64(len(p))
		if testHookRelayStep != nil {
			testHookRelayStep(src, int64(len(p)), false)
		}
		if err := dst.Drain(rl.ctx); err != nil {
			return err
		}
	}
}

// passEOF passes the end of a source's input on to dst once everything
// relayed has been sent: a half-close where dst can; else dst is left for
// Relay to close once both directions are done.
func (rl *relay) passEOF(dst *Conn) (closeDst bool, err error) {
	if dst.CanWriteEOF() {
		err = dst.WriteEOF()
	} else {
		closeDst = true
	}
	if err == nil {
		err = dst.Flush(rl.ctx)
	}
	return closeDst, err
}

// errUrgentMark is splicer.run's where the next bytes wait past a TCP urgent
// mark, which splice(2) does not pass: pump reads them through the Reader.
var errUrgentMark = errors.New("sluice: relay: bytes past a TCP urgent mark")

// splicer moves one direction's bytes in the kernel where both Conns are
// plain TCP: *net.TCPConn's ReadFrom splices (Linux splice(2)).
type splicer struct {
	src, dst *Conn
	to       *net.TCPConn
	in       *inbound         // waits for src's bytes
	lr       io.LimitedReader // src's connection, and the bytes a step moves
}

// newSplicer returns the splicer from src to dst, or nil where the kernel
// cannot move the bytes: a Conn speaks TLS or is not TCP, or the platform has
// no splice; or where the kernel must not: a Conn has WithIdleTimeout, whose
// clock a splice step, which may take as long as dst's peer takes to read it,
// would see no progress on until the step ends. Neither can start TLS during a
// relay: Relay holds their reads.
func newSplicer(src, dst *Conn) *splicer {
	from, ok := src.raw.(*net.TCPConn)
	to, ok2 := dst.raw.(*net.TCPConn)
	if !ok || !ok2 || src.tlsState() != nil || dst.tlsState() != nil {
		return nil
	}
	if (src.clock != nil && src.clock.idle > 0) || (dst.clock != nil && dst.clock.idle > 0) {
		return nil
	}
	in := newInbound(src.rd.sock)
	if in == nil {
		return nil
	}
	return &splicer{src: src, dst: dst, to: to, in: in, lr: io.LimitedReader{R: from}}
}

// run moves src's bytes to dst until src's input ends (io.EOF), something
// fails, or bytes wait past a TCP urgent mark (errUrgentMark), counting them
// in total. Each step waits for bytes to arrive and moves
// those, up to spliceChunk, while it holds dst's write queue, so that no Write
// by another goroutine lands inside a step; then it counts them as src's reads
// and dst's sends count theirs, in Stats and on the timeouts' clocks. A step
// never waits for more bytes than have arrived, so the counts stay current on a
// connection that trickles.
func (s *splicer) run(ctx context.Context, total *int64) error {
	s.src.rd.watch(context.Background()) // an earlier read's context must not cut a wait short
	s.src.rd.release()                   // caught up: nothing buffered, and the kernel moves what comes
	for {
		avail, err := s.in.wait()
		switch {
		case err != nil:
			return s.why(err)
		case avail == 0:
			return io.EOF
		case avail < 0:
			return errUrgentMark
		}
		q := s.dst.queue()
		if err := q.hold(ctx, opWrite); err != nil {
			return err
		}
		s.lr.N = int64(min(avail, spliceChunk))
		n, err := s.to.ReadFrom(&s.lr)
		s.src.countRead(n)
		q.spliced(n)
		*total += n
		if testHookRelayStep != nil {
			testHookRelayStep(s.src, n, true)
		}
		q.release(nil, nil)
		switch {
		case err != nil:
			return s.why(err)
		case s.lr.N > 0:
			return io.EOF // the stream ended within the step
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// why returns why a step failed: the close reason where a Conn was closed (by
// Relay's abort, another goroutine or a timeout), which is what cut a wait or
// a splice short, else err.
func (s *splicer) why(err error) error {
	if reason := s.src.closeReason(); reason != nil {
		return reason
	}
	if reason := s.dst.closeReason(); reason != nil {
		return reason
	}
	return err
}
