package sluice

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// handlerCtx is the ctx a Server gives a Conn's handler: the Conn itself, seen
// as a context.Context. It ends, with context.Canceled, as soon as the Conn
// starts closing (see Handler); it has no deadline, and its values are those of
// the ctx given to Listen. context.Cause reports context.Canceled.
//
// It is not a context.WithCancel of that ctx made for every connection: that is
// 96 B more per connection, for a value most handlers only pass to their Conn's
// reads, which need not watch it (its end comes with the close the read reports
// anyway). An interface holding it holds the Conn's pointer and allocates
// nothing. The context.WithCancel is made when first needed (inner): for Done,
// and for the contexts made from this one, which the context package then
// registers with it as with any cancelable parent, with no goroutine each,
// through values (WithValue) too.
type handlerCtx struct{ c *Conn }

// Deadline reports none: the ctx given to Listen loses its deadline with its
// cancellation (context.WithoutCancel).
func (h handlerCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done returns a channel closed once the Conn has started closing.
func (h handlerCtx) Done() <-chan struct{} { return h.c.closingDone() }

// Err returns context.Canceled once the Conn has started closing, else nil.
// Done's channel is closed by the time Err reports the end.
func (h handlerCtx) Err() error {
	if !h.c.rd.closed.Load() {
		return nil
	}
	if l := h.c.later.Load(); l != nil {
		l.endCtx() // where the close has not reached it yet
	}
	return context.Canceled
}

// Value returns the value the ctx given to Listen has for key. The context
// package looks for the cancelable context a new one's parent ends with by
// asking for its own key, an *int: that key is answered by inner, so that the
// lookup finds it.
func (h handlerCtx) Value(key any) any {
	if _, ok := key.(*int); ok {
		return h.c.innerCtx().Value(key)
	}
	return h.c.cfg.base.Value(key)
}

// String names the context, for %v.
func (h handlerCtx) String() string { return "sluice handler context" }

// connLater is what only some Conns come to need, made by the first use and
// never replaced (Conn.later): the handler ctx's context.WithCancel (which
// also tells WriteFrom of the close), WaitClosed's channel and the TLS state.
// A Conn without it is 32 B smaller, and a Server's many quiet connections
// are the point.
type connLater struct {
	tls atomic.Pointer[tlsState] // the TLS layer, once the handshake is done (tls.go)

	closed chan struct{} // closed once the Conn has ended; made by the first WaitClosed, guarded by the queue's mu

	// The handler ctx's end.
	inner  atomic.Value       // of context.Context: the handler ctx's WithCancel, made on first use under mu
	mu     sync.Mutex         // guards the fields below and the making of inner
	cancel context.CancelFunc // inner's
	ended  bool               // endCtx has run
}

// laterState returns the Conn's connLater, making it on first use. Where two
// goroutines make one at once, the first one stored wins.
func (c *Conn) laterState() *connLater {
	if l := c.later.Load(); l != nil {
		return l
	}
	l := new(connLater)
	if !c.later.CompareAndSwap(nil, l) {
		return c.later.Load()
	}
	return l
}

// innerCtx returns the handler ctx's context.WithCancel (of Listen's ctx, or
// of context.Background for a Conn no Server made: cfg.base), making it on
// first use: cancelled at once where the Conn is closing already. closing
// stores rd.closed before it looks for a connLater to end, and this looks at
// rd.closed after one is stored: one of the two cancels it.
func (c *Conn) innerCtx() context.Context {
	l := c.laterState()
	if ctx, ok := l.inner.Load().(context.Context); ok {
		return ctx
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ctx, ok := l.inner.Load().(context.Context); ok {
		return ctx
	}
	ctx, cancel := context.WithCancel(c.cfg.base)
	l.cancel = cancel
	if l.ended || c.rd.closed.Load() {
		l.ended = true
		cancel()
	}
	l.inner.Store(ctx)
	return ctx
}

// closingDone returns a channel closed once the Conn starts closing, for any
// Conn: inner's Done, which is the handler ctx's Done and what WriteFrom
// watches.
func (c *Conn) closingDone() <-chan struct{} { return c.innerCtx().Done() }

// endCtx ends the handler ctx: it cancels inner, if made. Only its first call
// does anything; every call returns once inner is cancelled. The Conn must be
// closing (rd.closed set), so that Err reports the end that Done shows.
func (l *connLater) endCtx() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	l.ended = true
	if l.cancel != nil {
		l.cancel() // its children run no code of ours: no lock is taken under mu
	}
}
