package sluice

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
)

// tryLock fails while the lock is held and succeeds once it is released.
func TestReadLockTry(t *testing.T) {
	is := is.New(t)
	var l readLock
	is.True(l.tryLock())
	is.True(!l.tryLock())
	l.unlock()
	is.True(l.tryLock())
	l.unlock()
}

// lock waits while the lock is held, by tryLock or by lock, and gets it once
// released; many goroutines taking turns each get it alone, and every one
// of them gets it, taking holds among them: no wakeup is lost. The race
// detector checks that the counter is only ever touched by one holder at a
// time.
func TestReadLockTurns(t *testing.T) {
	is := is.New(t)
	var l readLock
	is.True(l.tryLock())
	got := lockAndRelease(&l)
	quietFor(t, got, 10*time.Millisecond, "lock() returning while the lock was held")
	l.unlock()
	recv(t, got)

	const goroutines, turns = 8, 2000
	var wg sync.WaitGroup
	count := 0
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range turns {
				switch (g + i) % 4 {
				case 0:
					l.lock()
				case 1:
					for !l.tryLock() {
						l.lock() // as a waiter, then release and try again
						l.unlock()
					}
				case 2:
					for !l.tryLockTaking() {
						runtime.Gosched()
					}
					count++
					l.unlockTaking()
					continue
				default:
					for !l.tryLockTaking() {
						runtime.Gosched()
					}
					l.holdTaking() // a taking read that must wait after all
				}
				count++
				l.unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	recv(t, done)
	is.Equal(count, goroutines*turns)
	is.True(l.tryLock()) // free at the end
}

// An iterator loop's hold is a hold for tryLock, but lock does not wait for
// it, neither when it finds it nor when a loop takes the lock while it waits.
func TestReadLockLooped(t *testing.T) {
	is := is.New(t)
	var l readLock
	is.True(l.tryLockLoop())
	is.True(!l.tryLock())
	is.True(!l.tryLockLoop())
	is.True(!l.lock())
	l.unlock()

	is.True(l.tryLock())
	got := make(chan bool, 1)
	go func() { got <- l.lock() }()
	waitUntil(t, func() bool { return l.state.Load() == lockWaited })
	// unlock, with a loop taking the lock before the waiter is woken.
	is.Equal(l.state.Swap(lockFree), int32(lockWaited))
	is.True(l.tryLockLoop())
	l.wakeWaiters()
	is.True(!recv(t, got))
	l.unlock()
	is.True(l.tryLock())
}

// A taking hold (tryLockTaking) is a hold for tryLock and for another taking
// read; lock yields to it rather than waiting to be woken, which its release
// never does, and gets the lock once it is released, or waits, to be woken,
// once holdTaking has made it a full hold (TestReadLockTurns mixes them).
func TestReadLockTaking(t *testing.T) {
	is := is.New(t)
	var l readLock
	is.True(l.tryLockTaking())
	is.True(!l.tryLock())
	is.True(!l.tryLockTaking())
	is.True(!l.tryLockLoop())
	got := lockAndRelease(&l)
	quietFor(t, got, 10*time.Millisecond, "lock() returning during a taking hold")
	l.unlockTaking()
	recv(t, got)

	is.True(l.tryLockTaking())
	l.holdTaking()
	got = lockAndRelease(&l)
	waitUntil(t, func() bool { return l.state.Load() == lockWaited })
	l.unlock()
	recv(t, got)
}

// lockAndRelease takes l with lock in a goroutine of its own, closes the
// returned channel once it has it, and releases it.
func lockAndRelease(l *readLock) <-chan struct{} {
	got := make(chan struct{})
	go func() {
		l.lock()
		close(got)
		l.unlock()
	}()
	return got
}
