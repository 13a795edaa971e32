package sluice

import (
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

// srvHandlerCtx starts a Server whose handler hands over its ctx and Conn, then
// waits for the ctx to end; it returns them.
func srvHandlerCtx(t *testing.T, listenCtx context.Context) (context.Context, *Conn) {
	t.Helper()
	type got struct {
		ctx context.Context
		c   *Conn
	}
	gots := make(chan got, 1)
	s, err := Listen(listenCtx, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		gots <- got{ctx, c}
		<-ctx.Done()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srvShutdown(t, s) })
	srvDial(t, s.Addrs()[0])
	g := recv(t, gots)
	return g.ctx, g.c
}

// A handler's ctx behaves as a context.WithCancel of Listen's ctx that the
// Conn's close cancels: values, no deadline, Err, Done, Cause, and contexts
// made from it, which register with it rather than start a goroutine each.
func TestHandlerCtxEndsWithClose(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	type key struct{}
	ctx, c := srvHandlerCtx(t, context.WithValue(testCtx(t), key{}, "v"))

	is.Equal(ctx.Value(key{}), "v")
	_, ok := ctx.Deadline()
	is.True(!ok) // Listen's ctx has a deadline, but the handler's outlives it
	is.NoErr(ctx.Err())
	select {
	case <-ctx.Done():
		t.Fatal("Done closed before the close")
	default:
	}

	child, cancelChild := context.WithTimeout(ctx, time.Hour)
	defer cancelChild()
	fired := make(chan struct{})
	context.AfterFunc(ctx, func() { close(fired) })
	stop := context.AfterFunc(ctx, func() { t.Error("a stopped AfterFunc ran") })
	is.True(stop())
	is.True(!stop())

	c.Abort()
	recv(t, ctx.Done())
	is.True(errors.Is(ctx.Err(), context.Canceled))
	is.True(errors.Is(context.Cause(ctx), context.Canceled))
	recv(t, child.Done())
	is.True(errors.Is(child.Err(), context.Canceled))
	recv(t, fired)

	// After the end: at once.
	late := make(chan struct{})
	is.True(!context.AfterFunc(ctx, func() { close(late) })())
	recv(t, late)
	grandchild, cancel := context.WithCancel(ctx)
	defer cancel()
	is.True(errors.Is(grandchild.Err(), context.Canceled))
}

// A handler's ctx that no one looked at before the close reports the end at
// its first use.
func TestHandlerCtxFirstUsedAfterClose(t *testing.T) {
	srvNoLeaks(t)
	ctxs := make(chan context.Context, 1)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		ctxs <- ctx
		return nil
	})
	nc := srvDial(t, s.Addrs()[0])
	ctx := recv(t, ctxs)
	if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) { // the Server closed it
		t.Fatalf("read: %v, want EOF", err)
	}
	recv(t, ctx.Done())
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("Err: %v", ctx.Err())
	}
}

// propagators counts the goroutines the context package starts for a new
// context whose parent it cannot register with.
func propagators() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "context.(*cancelCtx).propagateCancel.func")
}

// Contexts made from the handler's, directly or through a value, register
// with it, as with a context.WithCancel: no goroutine each, while the Conn is
// open, before or after the handler's first use of Done. A read with a value
// context holds none either.
func TestHandlerCtxChildrenCostNoGoroutine(t *testing.T) {
	srvNoLeaks(t)
	type key struct{}
	const n = 100
	type counts struct {
		n, stacks int
		c         *Conn
	}
	got := make(chan counts, 1)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		vctx := context.WithValue(ctx, key{}, "request 1")
		before := runtime.NumGoroutine()
		var cancels []context.CancelFunc
		for i := range n {
			parent := ctx
			if i%2 == 1 {
				parent = vctx
			}
			_, cancel := context.WithTimeout(parent, time.Hour)
			cancels = append(cancels, cancel)
			cancels = append(cancels, cancelOf(context.AfterFunc(parent, func() {})))
		}
		got <- counts{runtime.NumGoroutine() - before, propagators(), c}
		for _, cancel := range cancels {
			cancel()
		}
		_, err := c.ReadLine(vctx)
		return err
	})
	srvDial(t, s.Addrs()[0])
	g := recv(t, got)
	if g.n >= n/2 || g.stacks != 0 {
		t.Fatalf("%d more goroutines, %d of the context package's, for %d contexts made from the handler's", g.n, g.stacks, 2*n)
	}
	for deadline := time.Now().Add(testTimeout); !g.c.reads.has(readerWaiting); {
		if time.Now().After(deadline) {
			t.Fatal("ReadLine(vctx) did not wait")
		}
		runtime.Gosched()
	}
	if k := propagators(); k != 0 {
		t.Fatalf("%d of the context package's goroutines while ReadLine(vctx) waits", k)
	}
}

// cancelOf adapts an AfterFunc's stop to a CancelFunc.
func cancelOf(stop func() bool) context.CancelFunc { return func() { stop() } }

// A Close and an Abort at once: the handler ctx's Done never shows an end
// that its Err does not report, and contexts made from it end cleanly (the
// context package panics on a parent that is done with a nil Err).
func TestHandlerCtxCloseAbortRace(t *testing.T) {
	srvNoLeaks(t)
	for range 50 {
		ctx, c := srvHandlerCtx(t, testCtx(t))
		child, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); c.Close() }()
		go func() { defer wg.Done(); c.Abort() }()
		recv(t, child.Done())
		if !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) {
			t.Fatalf("Err %v, child's %v", ctx.Err(), child.Err())
		}
		wg.Wait()
		cancel()
	}
}

// The loser of q.close (an Abort while a Close has begun but not yet marked
// the Reader closed) leaves the ctx to the Close: Done does not close before
// Err can report it.
func TestHandlerCtxLoserLeavesEnd(t *testing.T) {
	srvNoLeaks(t)
	ctx, c := srvHandlerCtx(t, testCtx(t))
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	c.queue().close(errClosed) // a Close's first step, its rd.shutdown still to come
	c.Abort()
	select {
	case <-child.Done():
		t.Fatal("the ctx ended before the Reader was marked closed")
	default:
	}
	if ctx.Err() != nil {
		t.Fatalf("Err %v before the close is marked", ctx.Err())
	}
	c.rd.shutdown(errClosed) // the Close goes on
	c.closing()
	recv(t, child.Done())
	recv(t, ctx.Done())
}

// Done, Err and AfterFunc from many goroutines while the Conn closes: every
// Done channel closes, every callback runs once unless its stop said it would
// not, and an Err that reports the end comes after Done's channel closed.
func TestHandlerCtxConcurrentClose(t *testing.T) {
	srvNoLeaks(t)
	for range 20 {
		ctx, c := srvHandlerCtx(t, testCtx(t))
		const n = 8
		var runs [n]atomic.Int32
		var stopped [n]bool
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				done := ctx.Done()
				ran := make(chan struct{}, 1)
				stop := context.AfterFunc(ctx, func() {
					runs[g].Add(1)
					ran <- struct{}{}
				})
				if ctx.Err() != nil {
					select {
					case <-done:
					default:
						t.Error("Err reported the end before Done's channel closed")
					}
				}
				if g%2 == 0 {
					stopped[g] = stop()
				}
				recv(t, done)
				if !stopped[g] {
					recv(t, ran)
				}
			}()
		}
		close(start)
		c.Abort()
		wg.Wait()
		for g := range n {
			if want := int32(1); stopped[g] {
				want = 0
				if got := runs[g].Load(); got != want {
					t.Errorf("callback %d ran %d times, want %d", g, got, want)
				}
			} else if got := runs[g].Load(); got != want {
				t.Errorf("callback %d ran %d times, want %d", g, got, want)
			}
		}
	}
}
