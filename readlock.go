package sluice

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// readLock is a Reader's lock: held for the length of a read or an iterator
// loop. Most reads only try it (a read under way elsewhere is
// ErrConcurrentRead), so trying and releasing it take one atomic instruction
// each, where sync.Mutex's TryLock and Unlock take a load, a compare-and-swap
// and an add: on the bench VM that is 19 ns against 28 ns per read, twice per
// frame for a ReadExactly header and payload. Read, which waits its turn as
// net.Conn's does, waits on a channel made when it first has to; but not for
// an iterator loop, which may run for good and whose body may be the very
// goroutine calling Read.
//
// A read that only takes what is buffered (ReadExactly's usual case) holds it
// briefly (lockTaking) and releases it with a release store instead of a swap:
// see unlockTaking.
type readLock struct {
	state atomic.Int32  // free, held, held with waiters in lock, held by a loop, or taking
	mu    sync.Mutex    // guards wake
	wake  chan struct{} // closed by unlock for the waiters in lock; nil while none wait
}

const (
	lockFree = iota
	lockHeld
	lockWaited
	lockLooped // held by an iterator loop: lock does not wait for it
	lockTaking // held by a read taking what is buffered: lock yields to it, it never waits
)

// tryLock takes the lock if it is free, and reports whether it did.
func (l *readLock) tryLock() bool { return l.state.CompareAndSwap(lockFree, lockHeld) }

// tryLockLoop takes the lock for an iterator loop if it is free, and reports
// whether it did.
func (l *readLock) tryLockLoop() bool { return l.state.CompareAndSwap(lockFree, lockLooped) }

// tryLockTaking takes the lock if it is free, for a read that expects to
// take what is buffered without waiting, and reports whether it did. The read
// then ends with unlockTaking, or, to read from the stream after all, calls
// holdTaking first and ends with unlock.
func (l *readLock) tryLockTaking() bool { return l.state.CompareAndSwap(lockFree, lockTaking) }

// holdTaking turns a hold taken with tryLockTaking into a full one, which
// lock waits for. No one else changes a taking hold's state.
func (l *readLock) holdTaking() { l.state.Store(lockHeld) }

// unlockTaking releases a hold taken with tryLockTaking. No one waits on such
// a hold to be woken (lock yields to it instead), so the release need not
// swap: storeRelease is, on amd64, a plain store, which x86 makes visible only
// after everything before it. The swap that Store and unlock compile to there
// waits for the stores before it to drain, the copy of the result among them:
// ~5% of a frame read with two ReadExactly calls on the bench VM.
func (l *readLock) unlockTaking() { storeRelease(&l.state, lockFree) }

// unlock releases the lock and wakes whoever waits in lock. It inlines: the
// wake is a call of its own.
func (l *readLock) unlock() {
	if l.state.Swap(lockFree) == lockWaited {
		l.wakeWaiters()
	}
}

// wakeWaiters wakes the goroutines waiting in lock.
func (l *readLock) wakeWaiters() {
	l.mu.Lock()
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
	l.mu.Unlock()
}

// lock takes the lock, waiting for it as long as it takes, unless an
// iterator loop holds it (then or when its turn comes): then it reports
// false. A waiter that gets it leaves the state at lockWaited, as there may
// be others: their turn comes at the next unlock.
func (l *readLock) lock() bool {
	if l.tryLock() {
		return true
	}
	for {
		if l.state.Load() == lockTaking {
			// Taken for a copy of what is buffered, released in a moment
			// and with no wake: let it finish.
			runtime.Gosched()
			continue
		}
		l.mu.Lock()
		if l.state.CompareAndSwap(lockFree, lockWaited) {
			l.mu.Unlock()
			return true
		}
		if l.state.Load() == lockLooped {
			l.mu.Unlock()
			return false
		}
		// Mark the lock as waited for; unlock then needs mu to wake us, so
		// the wake channel taken here cannot be closed before we hold it.
		if l.state.CompareAndSwap(lockHeld, lockWaited) || l.state.Load() == lockWaited {
			if l.wake == nil {
				l.wake = make(chan struct{})
			}
			wake := l.wake
			l.mu.Unlock()
			<-wake
			continue
		}
		l.mu.Unlock() // lockFree meanwhile: try again
	}
}
