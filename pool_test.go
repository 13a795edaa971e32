package sluice

import (
	"sync"
	"testing"
	"unsafe"

	"github.com/matryer/is"
)

// A shelf holds shelfSlots buffers, hands each back once, and is empty
// after that.
func TestShelfTakesAndGives(t *testing.T) {
	is := is.New(t)
	var s shelf
	is.Equal(s.take(), (*byte)(nil)) // empty
	given := make(map[*byte]bool)
	for range shelfSlots {
		b := &make([]byte, minPooled)[0]
		is.True(s.give(b))
		given[b] = true
	}
	is.True(!s.give(&make([]byte, minPooled)[0])) // full
	for range shelfSlots {
		b := s.take()
		is.True(given[b]) // one of those given, and only once
		delete(given, b)
	}
	is.Equal(s.take(), (*byte)(nil))
}

// tryGet, which a woken read calls from deep in its stack, takes from the
// shelf only, never from the pool behind it, and never allocates; get
// takes from the shelf first, and put fills the shelf before the pool.
func TestTryGetLooksOnTheShelfOnly(t *testing.T) {
	is := is.New(t)
	var p bufPool
	is.Equal(p.tryGet(minPooled), []byte(nil)) // nothing anywhere
	bufs := make([][]byte, shelfSlots+1)
	for i := range bufs {
		bufs[i] = make([]byte, minPooled)
		p.put(bufs[i][:0]) // the last goes to the pool: the shelf is full
	}
	for i := range shelfSlots {
		b := p.tryGet(minPooled)
		is.Equal(len(b), minPooled)
		is.Equal(cap(b), minPooled)
		is.Equal(unsafe.SliceData(b), unsafe.SliceData(bufs[i])) // the shelf's, first given first taken
	}
	is.Equal(p.tryGet(minPooled), []byte(nil)) // the pool may hold one: tryGet does not look
	is.Equal(len(p.get(minPooled)), minPooled)

	// Sizes above maxShelvedShift have no shelf: tryGet has none to give.
	big := 2 << maxShelvedShift
	p.put(make([]byte, big))
	is.Equal(p.tryGet(big), []byte(nil))
	is.Equal(len(p.get(big)), big)
}

// Buffers go from goroutine to goroutine through a shelf with no buffer in
// two hands at once (the race detector watches each buffer's writes), and
// none lost.
func TestShelfShared(t *testing.T) {
	is := is.New(t)
	var s shelf
	for range shelfSlots / 2 {
		s.give(&make([]byte, 8)[0])
	}
	const workers, rounds = 4, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				b := s.take()
				if b == nil {
					continue
				}
				buf := unsafe.Slice(b, 8)
				for i := range buf {
					buf[i] = byte(w)
				}
				for i := range buf {
					if buf[i] != byte(w) {
						t.Errorf("buffer written by another goroutine while held")
						return
					}
				}
				if !s.give(b) {
					t.Errorf("no room for a buffer taken from the shelf")
					return
				}
			}
		}()
	}
	wg.Wait()
	n := 0
	for s.take() != nil {
		n++
	}
	is.Equal(n, shelfSlots/2) // every buffer back on the shelf
}
