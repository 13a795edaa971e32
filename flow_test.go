package sluice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
	"go.uber.org/goleak"
)

// quiet is how long a negative check waits for something that must not happen.
const quiet = 50 * time.Millisecond

// A feeder sends 0, 1, 2, ... on the unbuffered channel in, up to n values or
// until stop is closed, then closes in. Each completed send is reported on sent,
// so a test sees exactly how many values a flow has taken.
type feeder struct {
	in   chan int
	sent chan int      // i after the send of i completed; room for all n
	stop chan struct{} // closed by the test to end the feeder early
	done chan struct{} // closed when the feeder has closed in and ended
}

func startFeeder(t *testing.T, n int) *feeder {
	t.Helper()
	fd := &feeder{in: make(chan int), sent: make(chan int, n), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(fd.done)
		defer close(fd.in)
		for i := 0; i < n; i++ {
			select {
			case fd.in <- i:
				fd.sent <- i
			case <-fd.stop:
				return
			}
		}
	}()
	t.Cleanup(fd.end)
	return fd
}

// end stops the feeder and waits for it; it is safe to call more than once.
func (fd *feeder) end() {
	select {
	case <-fd.stop:
	default:
		close(fd.stop)
	}
	<-fd.done
}

// recvNone fails if c delivers anything (a value or its close) within quiet.
func recvNone[T any](t *testing.T, c <-chan T, what string) {
	t.Helper()
	select {
	case v, ok := <-c:
		t.Fatalf("%s: got %v (open %v), want nothing", what, v, ok)
	case <-time.After(quiet):
	}
}

// within runs fn on another goroutine and returns its result, failing the test
// if it takes longer than testTimeout.
func within(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	return recv(t, done)
}

// drain receives from c until it is closed, within testTimeout.
func drain[T any](t *testing.T, c <-chan T) []T {
	t.Helper()
	var got []T
	timeout := time.After(testTimeout)
	for {
		select {
		case v, ok := <-c:
			if !ok {
				return got
			}
			got = append(got, v)
		case <-timeout:
			t.Fatalf("channel not closed in time, %d values received", len(got))
		}
	}
}

// closed reports whether c is closed now, without waiting.
func closed[T any](c <-chan T) bool {
	select {
	case _, ok := <-c:
		return !ok
	default:
		return false
	}
}

// flowGoroutines counts the goroutines running code of flow.go, the Flows'
// own; the test goroutine must not be in a Flow method when it is called.
func flowGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "/flow.go:") {
			n++
		}
	}
	return n
}

// stopAtCleanup stops f when the test ends, failing it if Stop takes longer
// than testTimeout (a broken flow must fail the test, not hang it).
func stopAtCleanup[T any](t *testing.T, f *Flow[T]) {
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.Stop()
		}()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Error("Stop did not return")
		}
	})
}

// noLeaks fails the test at cleanup if it leaves a goroutine behind.
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// maxTracker tracks how many calls run at once, and the most there ever were.
type maxTracker struct{ now, max atomic.Int32 }

func (m *maxTracker) enter() {
	n := m.now.Add(1)
	for {
		old := m.max.Load()
		if n <= old || m.max.CompareAndSwap(old, n) {
			return
		}
	}
}

func (m *maxTracker) leave() { m.now.Add(-1) }

var errBoom = errors.New("boom")

func TestMapOrder(t *testing.T) {
	for _, workers := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("%d workers, random delays", workers), func(t *testing.T) {
			is := is.New(t)
			const n = 500
			fd := startFeeder(t, n)
			var calls maxTracker
			f := Map(testCtx(t), fd.in, workers, func(ctx context.Context, v int) (string, error) {
				calls.enter()
				defer calls.leave()
				time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond) // simulated work
				return fmt.Sprint(v * 2), nil
			})
			got := drain(t, f.C)
			is.NoErr(f.Err())
			is.Equal(len(got), n)
			for i, s := range got {
				if s != fmt.Sprint(i*2) {
					t.Fatalf("result %d is %q, want %d", i, s, i*2)
				}
			}
			is.True(int(calls.max.Load()) <= workers)
			is.Equal(flowGoroutines(), 0)
		})
	}
}

// The bound: with a consumer that does not receive, Map takes exactly 2×workers
// values from in, runs at most workers calls at once, and takes one more value
// for each result received.
func TestMapBound(t *testing.T) {
	slow(t)
	for _, tc := range []struct {
		name            string
		workers, actual int
	}{
		{"one worker", 1, 1},
		{"two workers", 2, 2},
		{"five workers", 5, 5},
		{"zero means one", 0, 1},
		{"negative means one", -3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			w := tc.actual
			fd := startFeeder(t, 1000)
			gate := make(chan struct{})
			started := make(chan int, 1000)
			var calls maxTracker
			f := Map(testCtx(t), fd.in, tc.workers, func(ctx context.Context, v int) (int, error) {
				calls.enter()
				defer calls.leave()
				started <- v
				select {
				case <-gate:
					return v, nil
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			})
			stopAtCleanup(t, f)

			// Every worker busy: exactly workers calls, no more.
			for i := 0; i < w; i++ {
				recv(t, started)
			}
			recvNone(t, started, "a call beyond workers")
			// The dispatcher takes values while the workers are busy, up to the bound.
			for i := 0; i < 2*w; i++ {
				is.Equal(recv(t, fd.sent), i)
			}
			recvNone(t, fd.sent, "a value beyond 2×workers")
			is.Equal(int(calls.now.Load()), w)

			// The calls finish, but the consumer still does not receive.
			close(gate)
			for i := w; i < 2*w; i++ {
				recv(t, started)
			}
			recvNone(t, started, "a call beyond 2×workers values")
			recvNone(t, fd.sent, "a value beyond 2×workers, calls done")

			// Each result received lets exactly one more value in.
			for i := 0; i < 3; i++ {
				is.Equal(recv(t, f.C), i)
				is.Equal(recv(t, fd.sent), 2*w+i)
				recvNone(t, fd.sent, "a second value for one result received")
			}

			fd.end() // closes in
			rest := drain(t, f.C)
			is.NoErr(f.Err())
			for i, v := range rest {
				is.Equal(v, 3+i)
			}
			is.Equal(int(calls.max.Load()), w)
		})
	}
}

// The first error ends the flow: Err returns it, even though a running call then
// returns an error of its own, that call's context is cancelled, no result is
// sent, and in is no longer received from.
func TestMapError(t *testing.T) {
	noLeaks(t)
	is := is.New(t)
	tctx := testCtx(t)
	const workers = 2
	fd := startFeeder(t, 1000)
	started0 := make(chan struct{})
	var cancelled atomic.Bool
	f := Map(tctx, fd.in, workers, func(ctx context.Context, v int) (int, error) {
		switch v {
		case 0: // runs until the flow cancels it
			close(started0)
			select {
			case <-ctx.Done():
				cancelled.Store(true)
				return 0, errors.New("cancelled, reported late")
			case <-tctx.Done():
				return 0, nil
			}
		case 1: // fails while 0 runs
			<-started0
			return 0, errBoom
		}
		return v, nil
	})
	got := drain(t, f.C)
	is.Equal(len(got), 0) // no result is sent after the error; 0's never came
	is.Equal(f.Err(), errBoom)
	is.Equal(f.Err(), errBoom) // again
	is.True(cancelled.Load())
	is.Equal(flowGoroutines(), 0) // every goroutine ended when Err returned

	// in is no longer received from: the flow ended with in open and values
	// on offer, having taken no more than its bound.
	fd.end()
	is.True(len(fd.sent) <= 2*workers)
}

// A result that is ready but not yet received when another value's call fails
// is dropped.
func TestMapErrorDropsReadyResults(t *testing.T) {
	is := is.New(t)
	fd := startFeeder(t, 1000)
	f := Map(testCtx(t), fd.in, 2, func(ctx context.Context, v int) (int, error) {
		if v == 3 {
			return 0, errBoom
		}
		return v, nil
	})
	// Nobody receives until the flow has ended: results 0 to 2 were ready.
	is.Equal(within(t, f.Err), errBoom)
	is.True(closed(f.C))
	is.Equal(flowGoroutines(), 0)
}

// ctx ending and Stop end a flow promptly while fn is blocked on its context and
// while the consumer does not receive; C is closed when Err or Stop returns.
func TestMapCancel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		blocked bool // fn blocks on its ctx; else the consumer does not receive
		stop    bool // Stop; else the parent context is cancelled
	}{
		{"ctx cancelled while fn blocks", true, false},
		{"Stop while fn blocks", true, true},
		{"ctx cancelled while the consumer does not receive", false, false},
		{"Stop while the consumer does not receive", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			const workers = 3
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			fd := startFeeder(t, 1000)
			started := make(chan int, 1000)
			f := Map(ctx, fd.in, workers, func(ctx context.Context, v int) (int, error) {
				started <- v
				if tc.blocked {
					<-ctx.Done()
					return 0, fmt.Errorf("call %d: %w", v, ctx.Err()) // not Err's to report
				}
				return v, nil
			})
			// Wait until the flow is stuck: all calls blocked, or the bound reached.
			for i := 0; i < workers; i++ {
				recv(t, started)
			}
			for i := 0; i < 2*workers; i++ {
				recv(t, fd.sent)
			}
			var err error
			if tc.stop {
				err = within(t, f.Stop)
			} else {
				cancel()
				err = within(t, f.Err)
			}
			is.Equal(err, context.Canceled)
			is.True(closed(f.C))
			is.Equal(flowGoroutines(), 0)
		})
	}
}

// Err reports the context's own error: a deadline is not turned into
// context.Canceled.
func TestMapDeadline(t *testing.T) {
	is := is.New(t)
	ctx, cancel := context.WithTimeout(testCtx(t), quiet)
	defer cancel()
	fd := startFeeder(t, 1000)
	f := Map(ctx, fd.in, 2, func(ctx context.Context, v int) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	is.Equal(len(drain(t, f.C)), 0)
	is.Equal(f.Err(), context.DeadlineExceeded)
	is.Equal(f.Stop(), context.DeadlineExceeded)
}

func TestFlowStopAndErr(t *testing.T) {
	t.Run("Stop twice, Err twice", func(t *testing.T) {
		is := is.New(t)
		fd := startFeeder(t, 1000)
		f := Map(testCtx(t), fd.in, 2, func(ctx context.Context, v int) (int, error) { return v, nil })
		is.Equal(recv(t, f.C), 0)
		is.Equal(within(t, f.Stop), context.Canceled)
		is.Equal(within(t, f.Stop), context.Canceled)
		is.Equal(f.Err(), context.Canceled)
		is.Equal(f.Err(), context.Canceled)
	})
	t.Run("Stop and Err from several goroutines", func(t *testing.T) {
		is := is.New(t)
		fd := startFeeder(t, 1000)
		f := Map(testCtx(t), fd.in, 2, func(ctx context.Context, v int) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 0 {
					errs <- f.Stop()
				} else {
					errs <- f.Err()
				}
			}()
		}
		f.Stop()
		is.NoErr(within(t, func() error { wg.Wait(); return nil }))
		close(errs)
		for err := range errs {
			is.Equal(err, context.Canceled)
		}
	})
	t.Run("Stop while another goroutine receives", func(t *testing.T) {
		is := is.New(t)
		fd := startFeeder(t, 100000)
		f := Map(testCtx(t), fd.in, 2, func(ctx context.Context, v int) (int, error) { return v, nil })
		received := make(chan int)
		go func() {
			is := is.NewRelaxed(t)
			defer close(received)
			n := 0
			for v := range f.C {
				is.Equal(v, n)
				n++
				if n == 10 {
					received <- n
				}
			}
		}()
		is.Equal(recv(t, received), 10)
		is.Equal(within(t, f.Stop), context.Canceled)
		is.Equal(len(drain(t, received)), 0) // the receiving loop ended
	})
	t.Run("Stop after a normal end", func(t *testing.T) {
		is := is.New(t)
		fd := startFeeder(t, 5)
		f := Map(testCtx(t), fd.in, 2, func(ctx context.Context, v int) (int, error) { return v, nil })
		is.Equal(drain(t, f.C), []int{0, 1, 2, 3, 4})
		is.NoErr(f.Stop())
		is.NoErr(f.Err())
	})
	t.Run("a panic in fn is raised by Err", func(t *testing.T) {
		is := is.New(t)
		fd := startFeeder(t, 1000)
		f := Map(testCtx(t), fd.in, 2, func(ctx context.Context, v int) (int, error) {
			if v == 1 {
				panic("fn failed")
			}
			return v, nil
		})
		drain(t, f.C)
		defer func() {
			r := recover()
			is.True(r != nil)
			is.True(strings.Contains(fmt.Sprint(r), "fn failed"))
		}()
		f.Err()
		t.Fatal("Err did not panic")
	})
}

func TestMerge(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int // values sent on each input
	}{
		{"one input", []int{100}},
		{"three inputs", []int{100, 100, 100}},
		{"uneven inputs, one empty", []int{1, 0, 300, 17}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ins := make([]<-chan [2]int, len(tc.sizes))
			var feeders sync.WaitGroup
			t.Cleanup(feeders.Wait)
			for i, n := range tc.sizes {
				c := make(chan [2]int)
				ins[i] = c
				feeders.Add(1)
				go func() {
					defer feeders.Done()
					defer close(c)
					for j := 0; j < n; j++ {
						c <- [2]int{i, j} // input, position
					}
				}()
			}
			f := Merge(testCtx(t), ins...)
			next := make([]int, len(ins))
			for _, v := range drain(t, f.C) {
				is.Equal(v[1], next[v[0]]) // each input's values in their order
				next[v[0]]++
			}
			is.NoErr(f.Err())
			is.Equal(next, tc.sizes) // every value
			is.Equal(flowGoroutines(), 0)
		})
	}
}

func TestMergeNoInputs(t *testing.T) {
	is := is.New(t)
	f := Merge[int](testCtx(t))
	is.True(closed(f.C)) // at once
	is.NoErr(f.Err())
	is.NoErr(f.Stop())
}

// C stays open while any input is open, and closes when the last one closes.
func TestMergeClosesWhenAllInputsClose(t *testing.T) {
	is := is.New(t)
	a, b := make(chan string), make(chan string)
	f := Merge(testCtx(t), a, b)
	stopAtCleanup(t, f)
	a <- "a"
	is.Equal(recv(t, f.C), "a")
	close(a)
	recvNone(t, f.C, "with b open")
	b <- "b"
	is.Equal(recv(t, f.C), "b")
	close(b)
	drain(t, f.C)
	is.NoErr(f.Err())
}

// ctx ending and Stop end a Merge whose inputs stay open, while its consumer
// does not receive.
// A Merge whose ctx has ended takes nothing from its inputs: no value is taken
// and then dropped.
func TestMergeEndedCtxTakesNothing(t *testing.T) {
	is := is.New(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	in := make(chan int, 3)
	in <- 1
	in <- 2
	in <- 3
	f := Merge(ctx, (<-chan int)(in))
	for range f.C {
		t.Error("a value was sent after ctx ended")
	}
	is.True(errors.Is(f.Err(), context.Canceled))
	is.Equal(len(in), 3)
}

func TestMergeCancel(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop bool
		want error
	}{
		{"Stop", true, context.Canceled},
		{"ctx cancelled", false, context.Canceled},
		{"deadline", false, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			if tc.want == context.DeadlineExceeded {
				ctx, cancel = context.WithTimeout(ctx, quiet)
				defer cancel()
			}
			a, b := startFeeder(t, 1000), startFeeder(t, 1000)
			f := Merge(ctx, a.in, b.in)
			recv(t, a.sent) // one of the values is held by a forwarder
			var err error
			switch {
			case tc.stop:
				err = within(t, f.Stop)
			case tc.want == context.Canceled:
				cancel()
				fallthrough
			default:
				err = within(t, f.Err)
			}
			is.Equal(err, tc.want)
			is.True(closed(f.C))
			is.Equal(flowGoroutines(), 0)
		})
	}
}

// A Stream is a Flow: the read side's channel forms feed Map and Merge.
func TestStreamIsAFlow(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	c := feed(t, defaultLimit, "one\ntwo\n", "three\n")
	d := feed(t, defaultLimit, "abcdef")
	var lines *Flow[[]byte] = c.LineChan(ctx)
	upper := Map(ctx, lines.C, 2, func(ctx context.Context, line []byte) ([]byte, error) {
		return bytes.ToUpper(line), nil
	})
	chunks := d.ChunkChan(ctx, 4)
	all := Merge(ctx, upper.C, chunks.C)
	var got []string
	for v := range all.C {
		got = append(got, string(v))
	}
	is.NoErr(all.Err())
	is.NoErr(upper.Err())
	is.NoErr(lines.Err())
	is.NoErr(chunks.Err())
	var ups, chs []string
	for _, s := range got {
		if s == strings.ToUpper(s) && strings.ToLower(s) != s {
			ups = append(ups, s)
		} else {
			chs = append(chs, s)
		}
	}
	is.Equal(ups, []string{"ONE", "TWO", "THREE"})
	is.Equal(strings.Join(chs, ""), "abcdef")
}

func TestLineChan(t *testing.T) {
	is := is.New(t)
	c := feed(t, defaultLimit, streamData)
	s := c.LineChan(testCtx(t))
	var got [][]byte
	for line := range s.C {
		got = append(got, line)
	}
	is.NoErr(s.Err())
	is.Equal(len(got), 3)
	// Values are owned copies: distinct arrays, intact after the stream ended.
	is.Equal(string(got[0]), "line1")
	is.Equal(string(got[2]), "line3")
	is.True(&got[0][0] != &got[1][0])
}

func TestLineChanError(t *testing.T) {
	is := is.New(t)
	c := feed(t, 4, "ok\ntoo long\n")
	s := c.LineChan(testCtx(t))
	var got []string
	for line := range s.C {
		got = append(got, string(line))
	}
	is.Equal(got, []string{"ok"})
	is.True(errors.Is(s.Err(), ErrLimitOverrun))
}

// A consumer that walks away with Stop ends the producer, even one blocked in a
// read on a silent peer.
func TestStreamStop(t *testing.T) {
	is := is.New(t)
	c := feedOpts(t, false, nil, "first\n")
	s := c.LineChan(context.Background())
	select {
	case line := <-s.C:
		is.Equal(string(line), "first")
	case <-time.After(testTimeout):
		t.Fatal("no line")
	}
	is.True(errors.Is(s.Stop(), context.Canceled))
	is.True(errors.Is(s.Stop(), context.Canceled)) // idempotent
	_, open := <-s.C
	is.True(!open)
}

func TestStreamContextEnds(t *testing.T) {
	is := is.New(t)
	c := feedOpts(t, false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s := c.ChunkChan(ctx, 16)
	for range s.C {
		t.Fatal("no data was sent")
	}
	is.True(errors.Is(s.Err(), context.DeadlineExceeded))
}

func TestChunkChanSelect(t *testing.T) {
	is := is.New(t)
	c := feed(t, defaultLimit, "abcdefgh")
	s := c.ChunkChan(testCtx(t), 3)
	var got string
	timeout := time.After(testTimeout)
	for done := false; !done; {
		select {
		case chunk, ok := <-s.C:
			if !ok {
				done = true
				break
			}
			got += string(chunk)
		case <-timeout:
			t.Fatal("stream did not end")
		}
	}
	is.NoErr(s.Err())
	is.Equal(got, "abcdefgh")
}

// WriteFrom writes every value whole and in order, flushes when in closes,
// returns the bytes written, and leaves the Conn open.
func TestWriteFrom(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	in := make(chan []byte)
	go func() {
		defer close(in)
		for i := range 1000 {
			in <- []byte(fmt.Sprintf("value %d\n", i))
		}
	}()
	var want bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&want, "value %d\n", i)
	}
	n, err := c.WriteFrom(testCtx(t), in)
	is.NoErr(err)
	is.Equal(n, int64(want.Len()))
	is.Equal(c.WriteBufferSize(), 0) // flushed
	is.True(!c.IsClosing())
	got := make([]byte, want.Len())
	_, err = io.ReadFull(peer, got)
	is.NoErr(err)
	is.Equal(string(got), want.String())
}

// WriteFrom paces itself by the queue: with a peer that does not read it
// holds no more than the high watermark plus one value, and stops receiving,
// so the values not taken stay in the channel; ctx ends it at once.
func TestWriteFromBackpressure(t *testing.T) {
	is := is.New(t)
	const high, size = 32 << 10, 1000
	c, _ := connPair(t, WithWriteBufferLimits(high, high/4)) // the peer never reads
	in := make(chan []byte)
	var sent atomic.Int64
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		v := bytes.Repeat([]byte("v"), size)
		for {
			select {
			case in <- v:
				sent.Add(1)
			case <-stop:
				return
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var n int64
	var err error
	go func() {
		defer close(done)
		n, err = c.WriteFrom(ctx, in)
	}()
	// The kernel's buffers fill, then the queue: WriteFrom stops receiving.
	var last int64 = -1
	for s := sent.Load(); s != last; s = sent.Load() {
		last = s
		quietFor(t, done, 50*time.Millisecond, "WriteFrom returned")
	}
	is.True(c.Stats().QueuedPeak <= high+size) // the high watermark plus one value
	cancel()
	<-done
	close(stop)
	<-fed
	is.True(errors.Is(err, context.Canceled))
	is.Equal(n, sent.Load()*size) // every value received was written whole
}

// WriteFramesFrom counts the bytes on the wire, headers included, and the
// frames read back as sent; a value the framing cannot write ends it.
func TestWriteFramesFrom(t *testing.T) {
	is := is.New(t)
	a, b, err := Pipe()
	is.NoErr(err)
	defer a.Abort()
	defer b.Abort()
	f := LengthPrefixed(LengthPrefix{Size: 2, Max: 100})
	in := make(chan []byte, 3)
	in <- []byte("one")
	in <- []byte("three")
	close(in)
	n, err := a.WriteFramesFrom(testCtx(t), f, in)
	is.NoErr(err)
	is.Equal(n, int64(2+3+2+5))
	for _, want := range []string{"one", "three"} {
		got, err := b.ReadFrame(testCtx(t), f)
		is.NoErr(err)
		is.Equal(string(got), want)
	}
	in = make(chan []byte, 2)
	in <- []byte("fine")
	in <- make([]byte, 101)
	n, err = a.WriteFramesFrom(testCtx(t), f, in)
	is.True(errors.Is(err, ErrFrameTooLarge))
	is.Equal(n, int64(2+4))
}

// An input that closed because ctx ended (an upstream Flow on the same ctx
// closes its C then) ends WriteFrom with ctx's error, not as a clean end,
// even with nothing queued and the closed input seen first.
func TestWriteFromInputClosedByCtx(t *testing.T) {
	is := is.New(t)
	c, _ := connPair(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	up := Map(ctx, make(chan []byte), 1, func(_ context.Context, v []byte) ([]byte, error) { return v, nil })
	cancel()
	is.True(errors.Is(up.Err(), context.Canceled)) // C is closed now
	n, err := c.WriteFrom(ctx, up.C)
	is.True(errors.Is(err, context.Canceled))
	is.Equal(n, int64(0))
}

// Once ctx has ended, WriteFrom and WriteFramesFrom take nothing more from in,
// even values that are ready: they stay in the channel.
func TestWriteFromEndedCtxTakesNothing(t *testing.T) {
	for _, frames := range []bool{false, true} {
		t.Run(fmt.Sprint("frames=", frames), func(t *testing.T) {
			is := is.New(t)
			c, _ := connPair(t)
			ctx, cancel := context.WithCancel(testCtx(t))
			cancel()
			in := make(chan []byte, 3)
			for _, v := range []string{"a", "b", "c"} {
				in <- []byte(v)
			}
			var n int64
			var err error
			if frames {
				n, err = c.WriteFramesFrom(ctx, LengthPrefixed(LengthPrefix{}), in)
			} else {
				n, err = c.WriteFrom(ctx, in)
			}
			is.True(errors.Is(err, context.Canceled))
			is.Equal(n, int64(0))
			is.Equal(len(in), 3)
		})
	}
}

// A value WriteFrom has received is queued even where another goroutine's
// Write pauses writing between WriteFrom's Drain and its write and ctx ends
// while it waits: neither left in the channel nor dropped, and counted.
func TestWriteFromKeepsReceivedValue(t *testing.T) {
	for _, frames := range []bool{false, true} {
		t.Run(fmt.Sprint("frames=", frames), func(t *testing.T) {
			is := is.New(t)
			c, peer := connPair(t)
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			in := make(chan []byte)
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			f := LengthPrefixed(LengthPrefix{})
			go func() {
				var r result
				if frames {
					r.n, r.err = c.WriteFramesFrom(ctx, f, in)
				} else {
					r.n, r.err = c.WriteFrom(ctx, in)
				}
				done <- r
			}()
			waitUntil(t, func() bool { return inGoroutine("recvOrDone", "writeFrom") }) // drained, waiting for a value
			big := make([]byte, 8<<20)                                                  // past the watermark and the kernel's buffers: paused
			_, err := c.Write(big)
			is.NoErr(err)
			value := []byte("VALUE")
			select {
			case in <- value:
			case <-time.After(testTimeout):
				t.Fatal("WriteFrom did not receive")
			}
			waitUntil(t, func() bool { return inGoroutine("admitLocked", "writeFrom") })
			cancel()
			r := recv(t, done)
			is.True(errors.Is(r.err, context.Canceled))
			want := int64(len(value))
			if frames {
				want += 4
			}
			is.Equal(r.n, want)
			closed := make(chan error, 1)
			go func() { closed <- c.Close() }() // flushes what is queued
			is.NoErr(peer.SetReadDeadline(time.Now().Add(testTimeout)))
			all, err := io.ReadAll(peer)
			is.NoErr(err)
			is.NoErr(recv(t, closed))
			is.Equal(len(all), len(big)+int(want))
			is.True(bytes.HasSuffix(all, value))
		})
	}
}

// A write error ends WriteFrom as it is; on a closed Conn it takes nothing
// from in.
func TestWriteFromClosed(t *testing.T) {
	is := is.New(t)
	c, _ := connPair(t)
	c.Close()
	in := make(chan []byte, 1)
	in <- []byte("late")
	n, err := c.WriteFrom(testCtx(t), in)
	is.True(errors.Is(err, net.ErrClosed))
	is.Equal(n, int64(0))
	is.Equal(len(in), 1)
}

// WriteFrom and WriteFramesFrom, waiting for a value that does not come, end
// as soon as the Conn closes (from another goroutine, or by a timeout) with
// the close's error, not when ctx ends.
func TestWriteFromEndsOnClose(t *testing.T) {
	t.Parallel()
	wantClosed := func(t *testing.T, err error) {
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("got %v, want an error matching net.ErrClosed", err)
		}
	}
	for _, tc := range []struct {
		name   string
		opts   []Option
		frames bool
		close  func(*Conn)
		want   func(*testing.T, error)
	}{
		{name: "Close", close: func(c *Conn) { c.Close() }, want: wantClosed},
		{name: "Abort", close: func(c *Conn) { c.Abort() }, want: wantClosed},
		{name: "Abort/frames", frames: true, close: func(c *Conn) { c.Abort() }, want: wantClosed},
		{
			name: "idle timeout", opts: []Option{WithIdleTimeout(idleFor)}, close: func(*Conn) {},
			want: func(t *testing.T, err error) { isTimeoutErr(t, err, ErrIdleTimeout) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := connPair(t, tc.opts...)
			in := make(chan []byte) // the feeder never sends
			done := make(chan error, 1)
			go func() {
				var err error
				if tc.frames {
					_, err = c.WriteFramesFrom(testCtx(t), LengthPrefixed(LengthPrefix{}), in)
				} else {
					_, err = c.WriteFrom(testCtx(t), in)
				}
				done <- err
			}()
			waitUntil(t, func() bool { return inGoroutine("recvOrDone", "writeFrom") })
			tc.close(c)
			tc.want(t, recv(t, done))
		})
	}
}

// With a Server handler's ctx, which ends with the Conn's close, WriteFrom
// reports the close, not context.Canceled.
func TestWriteFromHandlerCtxReportsClose(t *testing.T) {
	srvNoLeaks(t)
	ctx, c := srvHandlerCtx(t, testCtx(t))
	done := make(chan error, 1)
	go func() {
		_, err := c.WriteFrom(ctx, make(chan []byte))
		done <- err
	}()
	waitUntil(t, func() bool { return inGoroutine("recvOrDone", "writeFrom") })
	c.Abort()
	if err := recv(t, done); !errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the close's error", err)
	}
}

// End to end: lines from an endless source, through Map, into a sink that
// stalls. Every stage bounds what it holds, so the heap stays bounded and the
// source's writer blocks once the kernel's buffers are full: the slow
// consumer at the end slows the socket at the start.
func TestPipelineBackpressure(t *testing.T) {
	is := is.New(t)
	src, srcPeer := connPair(t)
	sink, _ := connPair(t) // the sink's peer never reads
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()

	// The source writes lines for as long as it can; a write that cannot
	// complete within its deadline means the kernel's buffers are full.
	blocked := make(chan struct{})
	go func() {
		line := bytes.Repeat([]byte("x"), 99)
		line = append(line, '\n')
		for {
			srcPeer.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := srcPeer.Write(line); err != nil {
				close(blocked)
				return
			}
		}
	}()

	lines := src.LineChan(ctx)
	upper := Map(ctx, lines.C, 4, func(_ context.Context, l []byte) ([]byte, error) {
		return append(bytes.ToUpper(l), '\n'), nil
	})
	written := make(chan error, 1)
	go func() {
		_, err := sink.WriteFrom(ctx, upper.C)
		written <- err
	}()

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	recv(t, blocked) // the source cannot write any more
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grown := int64(ms.HeapInuse) - int64(before)
	t.Logf("heap grew by %d KiB while the source blocked; sink queue peak %d bytes",
		grown>>10, sink.Stats().QueuedPeak)
	is.True(grown < 8<<20)                         // bounded: not the endless source's output
	is.True(sink.Stats().QueuedPeak <= 64<<10+100) // the sink's high watermark plus one value

	cancel()
	is.True(errors.Is(recv(t, written), context.Canceled))
	is.True(errors.Is(upper.Stop(), context.Canceled))
	is.True(errors.Is(lines.Stop(), context.Canceled))
}
