package sluice

import (
	"bytes"
	"context"
	"iter"
	"sync"
	"sync/atomic"

	"github.com/sourcegraph/conc"
)

// A Flow is a stage of a channel pipeline: goroutines it owns send values on C,
// and C is closed when the flow ends. Map, Merge and the channel forms of the
// read side (LineChan, ChunkChan, FrameChan) return one.
//
// Receive from C until it is closed, then call Err for the ending error; or call
// Stop to walk away early. Every send on C also waits on the flow's context, so a
// consumer that stops receiving leaves no goroutine stranded once Stop is called
// or the context ends; values a flow held but had not yet sent are dropped then.
// Err and Stop return only after every goroutine of the flow has ended, as
// errgroup.Group.Wait does.
type Flow[T any] struct {
	// C delivers the flow's values. Only the flow's own goroutines send on it,
	// and it is closed once, when the flow ends.
	C <-chan T

	cancel context.CancelFunc // ends the flow; safe to call at any time
	wg     conc.WaitGroup     // every goroutine of the flow

	mu  sync.Mutex
	err error // guarded by mu; the first ending error, set by the flow's goroutines
}

// A Stream is the Flow of owned byte slices that LineChan, ChunkChan and
// FrameChan return: one producer goroutine runs the iterator and sends a copy of
// each value, which the receiver owns. It ends at EOF (Err nil), on the
// iterator's first error, or when the context ends or Stop is called. A value the
// producer had read but not yet handed over when the Stream stopped is dropped
// with it; use the iterator itself where every byte must stay in the Conn.
type Stream = Flow[[]byte]

// fail records err as the flow's ending error unless one was recorded first, and
// cancels the flow so that its other goroutines end too.
func (f *Flow[T]) fail(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
	f.cancel()
}

// Err waits for every goroutine of the flow to end and returns why it ended: nil
// after a normal end; the first error of the flow's own work (fn's for Map, the
// iterator's for a Stream); else ctx.Err() when the context ended, which is
// context.Canceled after Stop. Call it once C is closed, or after Stop: called
// while values wait unreceived on C, it blocks until the context ends.
//
// If a goroutine of the flow panicked (a panic in Map's fn), Err panics with that
// value and its stack, as conc.WaitGroup.Wait does.
//
// Err is safe to call more than once and from several goroutines at once.
func (f *Flow[T]) Err() error {
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Stop cancels the flow, waits for its goroutines to end and returns Err: nil if
// the flow had already ended normally, else its ending error (context.Canceled
// when Stop ended it). A Stream's producer blocked in a read is interrupted where
// the stream supports read deadlines (see NewReader). Values not yet received are
// dropped, and C is closed when Stop returns.
//
// Stop is idempotent, and safe to call concurrently with receives from C and
// with Err.
func (f *Flow[T]) Stop() error {
	f.cancel()
	return f.Err()
}

// newStream starts a producer that runs seq(ctx) and feeds a Stream.
func newStream(ctx context.Context, seq func(context.Context) iter.Seq2[[]byte, error]) *Stream {
	ctx, cancel := context.WithCancel(ctx)
	c := make(chan []byte)
	s := &Stream{C: c, cancel: cancel}
	// Owned by the Stream: Err and Stop wait for it. It ends at EOF, on the first
	// error, or when ctx ends (Stop cancels ctx), and every send selects on ctx.
	s.wg.Go(func() { produce(ctx, s, c, seq(ctx)) })
	return s
}

// produce runs seq and sends a copy of each value on c, which it closes.
func produce(ctx context.Context, s *Stream, c chan<- []byte, seq iter.Seq2[[]byte, error]) {
	defer s.cancel()
	defer close(c)
	for v, err := range seq {
		if err != nil {
			s.fail(err)
			return
		}
		if !sendOrDone(c, bytes.Clone(v), ctx.Done()) {
			s.fail(ctx.Err())
			return
		}
	}
}

// LineChan is the channel form of Lines: a Stream of owned line copies, without
// line endings. See Stream for its lifecycle.
func (r *Reader) LineChan(ctx context.Context) *Stream {
	return newStream(ctx, r.Lines)
}

// ChunkChan is the channel form of Chunks: a Stream of owned chunks of at most n
// bytes. See Stream for its lifecycle.
func (r *Reader) ChunkChan(ctx context.Context, n int) *Stream {
	return newStream(ctx, func(ctx context.Context) iter.Seq2[[]byte, error] { return r.Chunks(ctx, n) })
}

// Map returns a Flow of fn applied to each value received from in, sent on C in
// the order the inputs arrived. At most workers calls of fn run at once
// (workers < 1 means 1). Map itself returns at once; the flow's goroutines do
// the receiving, the calls and the sending.
//
// Map holds at most 2×workers values taken from in and not yet received from C,
// those being processed included: a consumer that stops receiving stops Map from
// receiving, and so on back up the pipeline.
//
// C is closed, and the flow ends, when:
//   - in is closed and every result has been sent: Err returns nil;
//   - fn returns an error, the first one to be seen: Err returns it, fn's context
//     is cancelled, results not yet sent are dropped and in is no longer received
//     from;
//   - ctx ends or Stop is called: Err returns ctx.Err(), with the same effects.
//
// fn's context is ctx, cancelled when the flow ends early; an fn that honours it
// lets Stop return promptly, since Err and Stop wait for every call of fn to
// return. A panic in fn ends the flow and is raised again by Err and Stop.
//
// Each result is sent as fn returned it; Map keeps no reference to a value once
// it has been sent. fn is called from up to workers goroutines at once, so it
// must be safe for concurrent use.
//
// Map owns its goroutines: one receiving from in, workers calling fn and one
// sending on C. A value costs a few channel operations and no allocation.
func Map[In, Out any](ctx context.Context, in <-chan In, workers int, fn func(context.Context, In) (Out, error)) *Flow[Out] {
	if workers < 1 {
		workers = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan Out)
	f := &Flow[Out]{C: out, cancel: cancel}
	m := &mapper[In, Out]{
		f:     f,
		fn:    fn,
		out:   out,
		slots: make([]mapSlot[In, Out], 2*workers),
		jobs:  make(chan *mapSlot[In, Out], 2*workers),
		order: make(chan *mapSlot[In, Out], 2*workers-2),
	}
	for i := range m.slots {
		m.slots[i].done = make(chan struct{}, 1)
	}
	// Owned by the Flow: Err and Stop wait for it. It ends when in is closed or
	// ctx ends (the end of the flow, early, cancels ctx); every send selects on ctx.
	f.wg.Go(func() { m.dispatch(ctx, in) })
	for i := 0; i < workers; i++ {
		// Owned by the Flow: Err and Stop wait for it. It ends when dispatch
		// closes jobs, which it does when it ends.
		f.wg.Go(func() { m.work(ctx) })
	}
	// Owned by the Flow: Err and Stop wait for it. It ends after the last result,
	// on the first error, or when ctx ends; every send selects on ctx.
	f.wg.Go(func() { m.collect(ctx) })
	return f
}

// A mapper is Map's machinery. conc/stream also runs tasks in parallel and
// delivers results in order, but it cannot keep Map's bound: its callback queue
// holds MaxGoroutines+1 tasks, one more is in the callback, and its Go blocks
// holding yet another, so a stalled consumer leaves workers+3 values in flight,
// over 2×workers for one or two workers; its Go cannot be cancelled either, and
// each task costs two closures. So Map is written plainly: a ring of 2×workers
// reusable slots, a dispatcher, workers and a collector.
//
// The dispatcher receives a value into the next slot of the ring, hands the slot
// to the workers on jobs, then queues it on order. The collector takes slots from
// order in turn, waits for each slot's result and sends it on C. order holds
// 2×workers-2 slots; with the one the collector is sending and the one the
// dispatcher is queueing, at most 2×workers values are in flight, and a slot is
// reused only after the collector has finished with its previous value: the
// dispatcher fills value i's slot after its send of value i-1 on order has
// completed, which, order holding 2w-2, happens after the collector received
// value i-2w+1 (the memory model's k-th receive from a channel of capacity C
// before the completion of the (k+C)-th send), so after it was done with value
// i-2w, the slot's previous occupant. A worker is done with a slot once it has
// signalled done, which the collector waits for.
type mapper[In, Out any] struct {
	f     *Flow[Out]
	fn    func(context.Context, In) (Out, error)
	out   chan<- Out
	slots []mapSlot[In, Out] // the ring, 2×workers long
	// jobs carries each filled slot from the dispatcher to a worker; it never
	// fills, as it has room for every slot. The dispatcher closes it when it ends.
	jobs chan *mapSlot[In, Out]
	// order carries each filled slot, in input order, from the dispatcher to the
	// collector; its capacity, 2×workers-2, is what bounds the values in flight.
	// The dispatcher closes it when it ends.
	order chan *mapSlot[In, Out]
}

// A mapSlot holds one value on its way through Map. The dispatcher writes in,
// a worker reads in and writes out and err, then signals done; the collector
// reads out and err after done.
type mapSlot[In, Out any] struct {
	in   In
	out  Out
	err  error
	done chan struct{} // capacity 1: one send per value, by the worker that ran it
}

// dispatch receives values from in into the ring's slots and hands them to the
// workers and, in order, to the collector. It ends when in is closed or ctx ends.
func (m *mapper[In, Out]) dispatch(ctx context.Context, in <-chan In) {
	defer close(m.order)
	defer close(m.jobs)
	done := ctx.Done()
	for i := 0; ; {
		v, ok, ended := recvOrDone(in, done, nil)
		if ended {
			m.f.fail(ctx.Err())
			return
		}
		if !ok {
			return
		}
		s := &m.slots[i]
		if i++; i == len(m.slots) {
			i = 0
		}
		s.in = v
		m.jobs <- s // never blocks: jobs has room for every slot
		if !sendOrDone(m.order, s, done) {
			m.f.fail(ctx.Err())
			return
		}
	}
}

// work runs fn on the slots from jobs until jobs is closed. It skips the call
// once the flow has ended, and ends the flow on fn's first error or panic.
func (m *mapper[In, Out]) work(ctx context.Context) {
	returned := false
	defer func() {
		if !returned {
			m.f.cancel() // fn panicked: end the flow; Err raises the panic again
		}
	}()
	done := ctx.Done()
	var zero In
	for s := range m.jobs {
		select {
		case <-done:
			s.err = ctx.Err()
		default:
			if s.out, s.err = m.fn(ctx, s.in); s.err != nil {
				if err := ctx.Err(); err != nil {
					s.err = err // fn reported the flow's end, not an error of its own
				}
				m.f.fail(s.err)
			}
		}
		s.in = zero // hold no reference to a value we are done with
		s.done <- struct{}{}
	}
	returned = true
}

// collect sends the slots' results on C in order, and closes C when the flow
// ends: after the last result, on the first error, or when ctx ends.
func (m *mapper[In, Out]) collect(ctx context.Context) {
	defer m.f.cancel() // release ctx: once C is closed no call of fn is wanted
	defer close(m.out)
	done := ctx.Done()
	var zero Out
	for s := range m.order {
		if _, _, ended := recvOrDone(s.done, done, nil); ended {
			m.f.fail(ctx.Err())
			return
		}
		// The flow may have ended meanwhile, by a later value's error: drop the
		// result rather than let select pick the send at random.
		select {
		case <-done:
			m.f.fail(ctx.Err())
			return
		default:
		}
		if s.err != nil {
			m.f.fail(s.err) // a no-op after the worker's own fail
			return
		}
		if !sendOrDone(m.out, s.out, done) {
			m.f.fail(ctx.Err())
			return
		}
		s.out = zero
	}
}

// Merge returns a Flow that sends every value received from each of ins on C,
// each input's values in their order; values of different inputs interleave as
// they arrive. Merge itself returns at once.
//
// C is closed when every input is closed (Err returns nil; at once when there
// are no inputs), or when ctx ends or Stop is called (Err returns ctx.Err();
// values already received and not yet sent are dropped). A nil input is never
// closed, so with one C is closed only when ctx ends or by Stop.
//
// Values are sent as they were received. Merge owns one goroutine per input,
// each a sender on C; the last to end closes C. It holds at most one value per
// input, so a consumer that stops receiving stops it from receiving. A value
// costs two channel operations and no allocation.
func Merge[T any](ctx context.Context, ins ...<-chan T) *Flow[T] {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan T)
	f := &Flow[T]{C: out, cancel: cancel}
	if len(ins) == 0 {
		close(out)
		cancel()
		return f
	}
	var left atomic.Int32 // forwarders not yet ended; the last closes out
	left.Store(int32(len(ins)))
	for _, in := range ins {
		// Owned by the Flow: Err and Stop wait for it. It ends when in is closed
		// or ctx ends; every send selects on ctx.
		f.wg.Go(func() {
			defer func() {
				if left.Add(-1) == 0 {
					close(out)
					cancel() // release ctx
				}
			}()
			forward(ctx, f, out, in)
		})
	}
	return f
}

// forward sends the values from in on out until in is closed or ctx ends.
func forward[T any](ctx context.Context, f *Flow[T], out chan<- T, in <-chan T) {
	done := ctx.Done()
	for {
		v, ok, ended := recvOrDone(in, done, nil)
		switch {
		case ended:
			f.fail(ctx.Err())
			return
		case !ok:
			return
		case !sendOrDone(out, v, done):
			f.fail(ctx.Err())
			return
		}
	}
}

// recvOrDone receives from in, or reports ended once done (or gone, where it
// is not nil) is closed. Once it is, it takes nothing more from in, even a
// value that is ready (a select would pick at random): a flow that has ended
// leaves its input's values where they are. It tries the receive without
// blocking first: a select that can go ahead at once costs far less than one
// that waits on two channels. (Each look that does not wait has one case: the
// compiler makes that a plain non-blocking receive, a nil gone included.)
func recvOrDone[T any](in <-chan T, done, gone <-chan struct{}) (v T, ok, ended bool) {
	select {
	case <-done:
		return v, false, true
	default:
	}
	select {
	case <-gone:
		return v, false, true
	default:
	}
	select {
	case v, ok = <-in:
		return v, ok, false
	default:
	}
	select {
	case v, ok = <-in:
		return v, ok, false
	case <-done:
		return v, false, true
	case <-gone:
		return v, false, true
	}
}

// sendOrDone sends v on out and reports true, or reports false once done is
// closed; like recvOrDone, it tries without blocking first.
func sendOrDone[T any](out chan<- T, v T, done <-chan struct{}) bool {
	select {
	case out <- v:
		return true
	default:
	}
	select {
	case out <- v:
		return true
	case <-done:
		return false
	}
}

// WriteFrom receives from in until it is closed and writes each value whole
// and in order, as Write does, copying it into the write queue before it
// receives the next. It paces itself with Drain(ctx) before each receive, so
// it never holds more than the high watermark plus one value: a peer that
// reads slowly slows the receives from in, and so whatever feeds in. When in
// is closed it flushes (Flush) and returns the bytes written and nil.
//
// If ctx ends it returns the bytes written so far and ctx.Err() at once, also
// where in was closed by ctx's end (an upstream Flow on the same ctx); values
// not yet received stay in the channel, and what is queued stays queued. If
// the Conn is closed (by Close, Abort or a timeout, from any goroutine) while
// WriteFrom waits for a value, it returns at once with the close's error, as
// the next write would: one matching net.ErrClosed, or the timeout's (also
// where ctx is a Server handler's, which ends with the close). A
// value it has received is queued even if ctx ends while another goroutine's
// write has paused writing (it is then queued past the pause). A
// write error (the sticky error, an error matching net.ErrClosed, a timeout
// that closed the Conn) is returned as it is, with the bytes written before
// it. It does not close the Conn. Another goroutine may write to the
// Conn meanwhile; each value's bytes stay together.
func (c *Conn) WriteFrom(ctx context.Context, in <-chan []byte) (int64, error) {
	return c.writeFrom(ctx, in, func(p []byte) (int, error) { return c.queue().write(ctx, p) })
}

// WriteFramesFrom is WriteFrom with WriteFrame for each value: f's header,
// the value, and for Delimited its separator. Its count is the bytes on the
// wire, headers and separators included. A value f cannot write (over its
// maximum, say) ends it with WriteFrame's error, nothing of that value
// queued.
func (c *Conn) WriteFramesFrom(ctx context.Context, f Framing, in <-chan []byte) (int64, error) {
	return c.writeFrom(ctx, in, func(p []byte) (int, error) { return c.writeFrame(ctx, f, p) })
}

// writeFrom is WriteFrom's loop, with write queueing one value. It waits for
// the pause to end before it receives, so that a value it has received is
// queued at once (unless another goroutine's write has paused writing again
// meanwhile: then write waits, and if ctx ends it queues the value anyway).
// While it waits for a value it also watches for the Conn's close: a feeder
// that sends nothing more does not keep it waiting on a Conn that will take
// nothing.
func (c *Conn) writeFrom(ctx context.Context, in <-chan []byte, write func([]byte) (int, error)) (int64, error) {
	var n int64
	done, closing := ctx.Done(), c.closingDone()
	for {
		if err := c.Drain(ctx); err != nil {
			return n, err
		}
		p, ok, ended := recvOrDone(in, done, closing)
		switch {
		case ended:
			return n, c.endErr(ctx)
		case !ok:
			// in may have closed because ctx ended (an upstream Flow on the
			// same ctx closes its C then): report ctx's end, not a clean one.
			if err := ctx.Err(); err != nil {
				return n, err
			}
			return n, c.Flush(ctx)
		}
		k, err := write(p)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
}
