package sluice

import (
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// timeoutError is the error of a Conn closed by WithIdleTimeout or
// WithMessageTimeout: a net.Error whose Timeout is true, matching
// os.ErrDeadlineExceeded.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string { return e.msg }

// Timeout reports true: the error is a timeout (net.Error).
func (e *timeoutError) Timeout() bool { return true }

// Temporary reports true, as os.ErrDeadlineExceeded does (net.Error).
func (e *timeoutError) Temporary() bool { return true }

// Is reports whether target is os.ErrDeadlineExceeded.
func (e *timeoutError) Is(target error) bool { return target == os.ErrDeadlineExceeded }

// activity is a Conn's clock for WithIdleTimeout and WithMessageTimeout: one
// timer per Conn, re-armed lazily. Progress only records the time (an atomic
// store per read or send from the socket, never per line); the timer, set for
// the earliest deadline it knows of, finds out when it fires whether that
// deadline still holds, and if not sets itself for the one that does.
type activity struct {
	idle, message time.Duration
	conn          *Conn        // the Conn it aborts with the timeout's error
	start         time.Time    // the times below are nanoseconds since start, on the monotonic clock
	last          atomic.Int64 // when a byte was last read or handed to the kernel

	mu       sync.Mutex // guards the fields below
	timer    *time.Timer
	due      int64 // when the timer fires; 0 while it is not set
	msg      int64 // the stream offset of the message whose rest is awaited, or -1
	msgSince int64 // when that message's first byte arrived (the read that brought it)
	lastRead int64 // when a read last brought bytes; writes do not move it
	inMsg    bool  // a read is waiting for the rest of msg now
	stopped  bool
	fired    bool // a timeout passed and aborted the Conn
}

// newActivity returns the clock for cfg's timeouts, which aborts c when one
// passes, or nil when neither is set: then the Conn pays nothing. The clock
// runs once begin is called.
func newActivity(cfg *config, c *Conn) *activity {
	if cfg.idleTimeout <= 0 && cfg.messageTimeout <= 0 {
		return nil
	}
	return &activity{idle: cfg.idleTimeout, message: cfg.messageTimeout, conn: c, start: time.Now(), msg: -1}
}

// begin starts the idle timeout. Call it once the Conn is fully made: from
// then on the timer may fire, and the abort runs on the timer's goroutine.
func (a *activity) begin() {
	if a.idle > 0 {
		a.mu.Lock()
		a.armLocked(int64(a.idle))
		a.mu.Unlock()
	}
}

func (a *activity) now() int64 { return int64(time.Since(a.start)) }

// timedOut reports whether a timeout aborted the Conn: also where it was
// closing already, a Close's flush cut short, which its close reason does not
// say. A nil clock (no timeouts) reports false.
func (a *activity) timedOut() bool {
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fired
}

// touch records progress: a byte read or handed to the kernel.
func (a *activity) touch() { a.last.Store(a.now()) }

// read records a read that brought bytes: progress, and the end of a wait.
func (a *activity) read() {
	now := a.now()
	a.last.Store(now)
	if a.message > 0 {
		a.mu.Lock()
		a.inMsg = false
		a.lastRead = now
		a.mu.Unlock()
	}
}

// waitCut records that a read's wait ended with no bytes (its ctx ended, a
// deadline passed): the message timeout bounds a message's rest only while a
// read waits for it, and the bytes may be in the kernel already, unread. A
// read that waits for the same message again is bounded from its first byte
// still.
func (a *activity) waitCut() {
	if a.message > 0 {
		a.mu.Lock()
		a.inMsg = false
		a.mu.Unlock()
	}
}

// waiting records that a read is about to wait for data: for the rest of the
// message at offset msg, or (msg < 0) for a message's first byte, which the
// message timeout does not bound.
func (a *activity) waiting(msg int64) {
	if a.message <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if msg < 0 {
		a.inMsg = false
		return
	}
	if msg != a.msg {
		// The message's first byte came with the last read: a write since
		// (which moves last) does not give its rest more time.
		a.msg, a.msgSince = msg, a.lastRead
	}
	a.inMsg = true
	a.armLocked(a.msgSince + int64(a.message))
}

// armLocked makes the timer fire by due, unless it fires sooner already.
func (a *activity) armLocked(due int64) {
	if a.stopped || (a.due != 0 && a.due <= due) {
		return
	}
	a.due = due
	d := time.Duration(due - a.now())
	if a.timer == nil {
		a.timer = time.AfterFunc(d, a.check)
	} else {
		a.timer.Reset(d)
	}
}

// check runs when the timer fires: it closes the Conn if a deadline has passed,
// and otherwise sets the timer for the next one.
func (a *activity) check() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.due = 0
	now := a.now()
	var next int64
	var err error
	if a.idle > 0 {
		if due := a.last.Load() + int64(a.idle); now >= due {
			err = ErrIdleTimeout
		} else {
			next = due
		}
	}
	if err == nil && a.message > 0 && a.inMsg {
		if due := a.msgSince + int64(a.message); now >= due {
			err = ErrMessageTimeout
		} else if next == 0 || due < next {
			next = due
		}
	}
	if err != nil {
		a.stopped, a.fired = true, true
		a.mu.Unlock()
		a.conn.abort(err)
		return
	}
	if next != 0 {
		a.armLocked(next)
	}
	a.mu.Unlock()
}

// stop ends the clock: the Conn is closing.
func (a *activity) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	if a.timer != nil {
		a.timer.Stop()
	}
}
