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
// It is not a context.WithCancel of that ctx because that is 96 B more per
// connection, for a value most handlers only pass to their Conn's reads, which
// need not watch it: its end comes with the close the read reports anyway. An
// interface holding it holds the Conn's pointer and allocates nothing. Its Done
// channel is made by the first call to Done; a context made from it (WithCancel,
// WithTimeout, AfterFunc) registers through its AfterFunc method, which the
// context package looks for, so it costs no goroutine.
type handlerCtx struct{ c *Conn }

// Deadline reports none: the ctx given to Listen loses its deadline with its
// cancellation (context.WithoutCancel).
func (h handlerCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done returns a channel closed once the Conn has started closing.
func (h handlerCtx) Done() <-chan struct{} { return h.c.laterState().ctxDone() }

// Err returns context.Canceled once the Conn has started closing, else nil.
// Done's channel is closed before Err reports the end.
func (h handlerCtx) Err() error {
	if !h.c.rd.closed.Load() {
		return nil
	}
	if l := h.c.later.Load(); l != nil {
		l.endCtx() // where the close has not reached it yet
	}
	return context.Canceled
}

// Value returns the value the ctx given to Listen has for key.
func (h handlerCtx) Value(key any) any { return h.c.cfg.base.Value(key) }

// AfterFunc arranges to call f in its own goroutine once the Conn starts
// closing, as context.AfterFunc does; stop removes that and reports whether it
// did so before f was started. The context package calls it for the contexts
// made from this one.
func (h handlerCtx) AfterFunc(f func()) (stop func() bool) { return h.c.laterState().afterFunc(f) }

// String names the context, for %v.
func (h handlerCtx) String() string { return "sluice handler context" }

// connLater is what only some Conns come to need, made by the first use and
// never replaced (Conn.later): the handler ctx's Done channel and AfterFunc
// callbacks, WaitClosed's channel and the TLS state. A Conn without it is 32 B
// smaller, and a Server's many quiet connections are the point.
type connLater struct {
	tls atomic.Pointer[tlsState] // the TLS layer, once the handshake is done (tls.go)

	closed chan struct{} // closed once the Conn has ended; made by the first WaitClosed, guarded by the queue's mu

	// The handler ctx's end.
	done   atomic.Value // of chan struct{}: Done's, made on first use under mu
	mu     sync.Mutex   // guards the fields below and the making of done
	ended  bool         // endCtx has run
	afters map[*func()]struct{}
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
	// closing stores rd.closed before it looks for a connLater, and this
	// looks at rd.closed after storing one: one of the two ends it.
	if c.rd.closed.Load() {
		l.endCtx()
	}
	return l
}

// ctxDone returns the handler ctx's Done channel, made on first use (closed
// already where the ctx has ended).
func (l *connLater) ctxDone() <-chan struct{} {
	if d, ok := l.done.Load().(chan struct{}); ok {
		return d
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if d, ok := l.done.Load().(chan struct{}); ok {
		return d
	}
	d := make(chan struct{})
	if l.ended {
		close(d)
	}
	l.done.Store(d)
	return d
}

// afterFunc is handlerCtx.AfterFunc.
func (l *connLater) afterFunc(f func()) func() bool {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	key := &f
	if l.afters == nil {
		l.afters = make(map[*func()]struct{})
	}
	l.afters[key] = struct{}{}
	l.mu.Unlock()
	return func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		_, ok := l.afters[key]
		delete(l.afters, key)
		return ok
	}
}

// endCtx ends the handler ctx: it closes Done's channel and starts the
// AfterFunc callbacks. Only its first call does anything.
func (l *connLater) endCtx() {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return
	}
	l.ended = true
	if d, ok := l.done.Load().(chan struct{}); ok {
		close(d)
	}
	afters := l.afters
	l.afters = nil
	l.mu.Unlock()
	for f := range afters {
		go (*f)()
	}
}
