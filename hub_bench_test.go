package sluice

import (
	"bufio"
	"io"
	"sync"
	"testing"
)

const benchMembers = 100

// BenchmarkHubPublish publishes a 64-byte message to 100 members over socket
// pairs, beside the plain-Go broadcast a user would otherwise write (a
// buffered channel and a writer goroutine per member, a send that does not
// wait, one copy of the message shared by all). "reading": every member's peer
// reads as fast as it can; "full": no peer reads and every member's queue is at
// MaxQueued, so Publish only finds that out (the cost of a hub of stalled
// members). Copies that are not queued are reported as drops/op.
func BenchmarkHubPublish(b *testing.B) {
	msg := benchLines(1)[:64]
	for _, reading := range []bool{true, false} {
		name := map[bool]string{true: "reading", false: "full"}[reading]
		b.Run("sluice/"+name, func(b *testing.B) {
			limit := 1 << 20
			if !reading {
				limit = 4 << 10
			}
			h := NewHub(HubConfig{MaxQueued: limit})
			for _, peer := range benchPeers(b, reading) {
				h.Join(peer)
			}
			for full := 0; !reading && full < 1000; {
				// Fill the kernel's buffers, then every queue.
				if full++; h.Publish(msg) > 0 {
					full = 0
				}
			}
			before := h.Stats()
			b.SetBytes(int64(len(msg) * benchMembers))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				h.Publish(msg)
			}
			b.StopTimer()
			b.ReportMetric(float64(h.Stats().Dropped-before.Dropped)/float64(b.N), "drops/op")
		})
		b.Run("chan/"+name, func(b *testing.B) {
			depth := 1 << 20 / len(msg) // MaxQueued's worth
			if !reading {
				depth = 4 << 10 / len(msg)
			}
			bc := newChanBroadcast(benchPeers(b, reading), depth)
			defer bc.close()
			for full := 0; !reading && full < 1000; {
				// Fill the kernel's buffers, then every channel.
				if full++; bc.publish(msg) > 0 {
					full = 0
				}
			}
			drops := 0
			b.SetBytes(int64(len(msg) * benchMembers))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				drops += benchMembers - bc.publish(msg)
			}
			b.StopTimer()
			b.ReportMetric(float64(drops)/float64(b.N), "drops/op")
		})
	}
}

// benchPeers returns benchMembers Conns over socket pairs; if reading, a
// goroutine per pair reads everything from the other end. All are closed, and
// the goroutines ended, at cleanup.
func benchPeers(b *testing.B, reading bool) []*Conn {
	var wg sync.WaitGroup
	b.Cleanup(wg.Wait) // runs after the Aborts below: cleanups run last first
	conns := make([]*Conn, benchMembers)
	for i := range conns {
		c, peer, err := Pipe()
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
		b.Cleanup(func() { c.Abort(); peer.Abort() })
		if reading {
			wg.Add(1)
			go func() { // ends when the pair is closed at cleanup
				defer wg.Done()
				io.Copy(io.Discard, peer.NetConn())
			}()
		}
	}
	return conns
}

// chanBroadcast is the plain-Go baseline: a buffered channel per member, fed
// without waiting (a full channel misses the message) and drained onto the
// connection by the member's own goroutine, which writes what it finds in the
// channel through a bufio.Writer, one flush for all of it.
type chanBroadcast struct {
	mu    sync.RWMutex
	chs   []chan []byte
	conns []*Conn
	wg    sync.WaitGroup
}

func newChanBroadcast(conns []*Conn, depth int) *chanBroadcast {
	bc := &chanBroadcast{conns: conns}
	for _, c := range conns {
		ch := make(chan []byte, depth)
		bc.chs = append(bc.chs, ch)
		bc.wg.Add(1)
		go func(w *bufio.Writer) { // ends when ch is closed (close)
			defer bc.wg.Done()
			for m := range ch {
				w.Write(m)
				for len(ch) > 0 {
					w.Write(<-ch)
				}
				w.Flush()
			}
		}(bufio.NewWriterSize(c.NetConn(), 64<<10))
	}
	return bc
}

// publish copies p once and offers it to every member; it returns how many
// took it.
func (bc *chanBroadcast) publish(p []byte) int {
	m := append([]byte(nil), p...)
	n := 0
	bc.mu.RLock()
	defer bc.mu.RUnlock()
	for _, ch := range bc.chs {
		select {
		case ch <- m:
			n++
		default:
		}
	}
	return n
}

// close ends the writer goroutines: it aborts the connections, which ends a
// write that is blocked, and closes the channels.
func (bc *chanBroadcast) close() {
	for _, c := range bc.conns {
		c.Abort()
	}
	for _, ch := range bc.chs {
		close(ch)
	}
	bc.wg.Wait()
}
