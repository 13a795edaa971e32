package sluice

import (
	"sync/atomic"
	"time"
)

// sweeper is a Server's backstop for the bytes its connections' Writes leave
// while an iterator loop's body runs (see writeQueue). The loop's next read
// sends them, or its end; but the Write may come from another goroutine while
// the body waits on something else, for as long as that takes. A timer per
// Conn would see to it, at a cost in memory and wake-ups that a busy server
// pays on every connection; the sweeper is one goroutine per Server that,
// from the first such Write on, looks at the Server's connections every
// loopBackstop, and starts the writer of any whose bytes were left before the
// last look and have not been taken since: they wait 200 ms at worst. A look
// that finds nothing left anywhere stops the looks until the next such Write.
// Once the Server closes, the sweeper starts the writer wherever bytes are
// left, and ends; Writes after that arm their Conn's own timer.
type sweeper struct {
	due     atomic.Bool   // a Write has left bytes in a loop since the last look
	ticking atomic.Bool   // the looks go on: no wake is needed
	stopped atomic.Bool   // the sweeper has ended: a Write arms its own timer
	wake    chan struct{} // restarts the looks: sent to by the Write that sets due while they have stopped
}

func newSweeper() sweeper { return sweeper{wake: make(chan struct{}, 1)} }

// note records that a Write left bytes while a loop runs, and reports whether
// the sweeper will see to them: false once it has ended.
func (sw *sweeper) note() bool {
	if sw.stopped.Load() {
		return false
	}
	// Most Writes find due set: no write to a shared word. The first
	// after each look sets it, and wakes the sweeper only where its looks
	// have stopped: a channel send, beneath a loop body's Write, would
	// overflow a 2 KiB stack (see Server.serveConn), and while the looks go
	// on it would do so for one handler per look. (Of this Write's store to
	// due and load of ticking, and run's store to ticking and load of due,
	// at least one sees the other's store: the sweeper looks again, or is
	// woken, or both.)
	if !sw.due.Load() && sw.due.CompareAndSwap(false, true) && !sw.ticking.Load() {
		select {
		case sw.wake <- struct{}{}:
		default: // a wake is pending already
		}
	}
	return true
}

// run is the sweeper's goroutine, started by the Server with its accept loops
// and owned by it as they are: it ends when stop is closed (the Server
// closes), after a last look that starts every writer with bytes left. conns
// lists the Server's live connections into the slice it is given.
func (sw *sweeper) run(stop <-chan struct{}, conns func([]*Conn) []*Conn) {
	t := time.NewTicker(loopBackstop)
	t.Stop() // looking starts with the first note
	var buf []*Conn
	for {
		select {
		case <-stop:
			// A Write that finds stopped set arms its own timer; one that
			// noted before has set forReader first, so this look sees its
			// bytes (see scheduleLocked).
			sw.stopped.Store(true)
			t.Stop()
			for _, c := range conns(buf[:0]) {
				c.sweep(true)
			}
			return
		case <-sw.wake:
			if !sw.ticking.Load() {
				t.Reset(loopBackstop)
				sw.ticking.Store(true)
			}
		case <-t.C:
			if !sw.due.Swap(false) {
				// Nothing left at the last look, nothing noted since: stop
				// until a Write sets due again (and wakes the sweeper), unless
				// one set it as the looks stopped, without a wake.
				sw.ticking.Store(false)
				if !sw.due.Load() {
					t.Stop()
					continue
				}
				sw.ticking.Store(true)
			}
			buf = conns(buf[:0])
			for _, c := range buf {
				if c.sweep(false) {
					sw.due.Store(true) // left since this look: look again next time
				}
			}
			clear(buf) // hold no Conn between looks
		}
	}
}
