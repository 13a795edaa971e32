package sluice

import (
	"testing"

	"github.com/matryer/is"
)

// The first Write after each look notes it (due); it wakes the sweeper only
// where its looks have stopped. A wake while they go on would be a channel
// send from beneath a loop body's Write on every look: enough stack to grow a
// handler's 2 KiB (see Server.serveConn).
func TestSweeperNoteWakesOnlyWhenStopped(t *testing.T) {
	is := is.New(t)
	woken := func(sw *sweeper) bool {
		select {
		case <-sw.wake:
			return true
		default:
			return false
		}
	}

	sw := newSweeper() // the looks have stopped
	is.True(sw.note())
	is.True(sw.due.Load())
	is.True(woken(&sw))
	is.True(sw.note())   // due set already: no second wake
	is.True(!woken(&sw)) //

	sw = newSweeper()
	sw.ticking.Store(true) // the looks go on
	is.True(sw.note())
	is.True(sw.due.Load()) // the next look sees it
	is.True(!woken(&sw))

	sw.stopped.Store(true) // the sweeper has ended: the Write arms its own timer
	is.True(!sw.note())
}
