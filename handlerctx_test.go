package sluice

import (
	"context"
	"errors"
	"io"
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
	if n := len(c.later.Load().afters); n != 2 { // the child's and fired's
		t.Fatalf("%d callbacks registered, want 2", n)
	}

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

// A context made from the handler's and cancelled before the close leaves
// nothing registered.
func TestHandlerCtxChildrenUnregister(t *testing.T) {
	srvNoLeaks(t)
	ctx, c := srvHandlerCtx(t, testCtx(t))
	cancels := make([]context.CancelFunc, 100)
	for i := range cancels {
		_, cancels[i] = context.WithCancel(ctx)
	}
	if n := len(c.later.Load().afters); n != len(cancels) {
		t.Fatalf("%d registered, want %d", n, len(cancels))
	}
	for _, cancel := range cancels {
		cancel()
	}
	if n := len(c.later.Load().afters); n != 0 {
		t.Fatalf("%d still registered after their cancel", n)
	}
	c.Abort()
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
