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
// pays on every connection; the sweeper is one goroutine per Server that
// looks, every loopBackstop while some Write has left bytes so, at the
// Server's connections, and starts the writer of any whose bytes were left
// before the last look and have not been taken since. So they wait 200 ms at
// worst. Once the Server closes, the sweeper starts the writer wherever bytes
// are left, and ends; Writes after that arm their Conn's own timer.
type sweeper struct {
	due     atomic.Bool // a Write has left bytes in a loop since the last look
	stopped atomic.Bool // the sweeper has ended: a Write arms its own timer
}

// note records that a Write left bytes while a loop runs, and reports whether
// the sweeper will see to them: false once it has ended.
func (sw *sweeper) note() bool {
	if sw.stopped.Load() {
		return false
	}
	if !sw.due.Load() { // most Writes find it set: no write to a shared word
		sw.due.Store(true)
	}
	return true
}

// run is the sweeper's goroutine, started by the Server with its accept loops
// and owned by it as they are: it ends when stop is closed (the Server
// closes), after a last look that starts every writer with bytes left. conns
// lists the Server's live connections into the slice it is given.
func (sw *sweeper) run(stop <-chan struct{}, conns func([]*Conn) []*Conn) {
	t := time.NewTicker(loopBackstop)
	defer t.Stop()
	var buf []*Conn
	for {
		select {
		case <-stop:
			// A Write that finds stopped set arms its own timer; one that
			// noted before this look has set forReader first, so the look
			// below sees its bytes (see scheduleLocked).
			sw.stopped.Store(true)
			buf = conns(buf[:0])
			for _, c := range buf {
				c.sweep(true)
			}
			return
		case <-t.C:
			if !sw.due.Swap(false) {
				continue
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
