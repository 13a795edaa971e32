package sluice

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
)

// relayEnd is one side of a relay under test: the Conn given to Relay and the
// peer beyond it, a plain connection the test drives.
type relayEnd struct {
	c    *Conn
	peer net.Conn
}

// newRelayEnd returns a relayEnd of kind "tcp" (loopback TCP: the kernel may
// splice), "unix" (a Pipe) or "tls" (TCP with the Conn as the TLS server, its
// peer a crypto/tls client). Both are closed at cleanup.
func newRelayEnd(t *testing.T, kind string, opts ...Option) relayEnd {
	t.Helper()
	var e relayEnd
	switch kind {
	case "tcp":
		e.c, e.peer = connPair(t, opts...)
	case "unix":
		nc, peer, err := socketPair() // Pipe's, with the options on one end only
		if err != nil {
			t.Fatal(err)
		}
		e.c, e.peer = NewConn(nc, opts...), peer
		t.Cleanup(func() { e.c.Abort(); peer.Close() })
	case "tls":
		nc, raw := tcpPair(t)
		e.c = acceptedConn(nc, append([]Option{WithTLS(serverTLS())}, opts...)...)
		t.Cleanup(e.c.Abort)
		cfg := clientTLS()
		cfg.ServerName = "localhost"
		peer := tls.Client(raw, cfg)
		hs := make(chan error, 1)
		go func() { hs <- peer.HandshakeContext(testCtx(t)) }()
		if err := e.c.serverHandshake(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, hs); err != nil {
			t.Fatal(err)
		}
		e.peer = peer
	default:
		t.Fatalf("unknown kind %q", kind)
	}
	e.peer.SetDeadline(time.Now().Add(testTimeout))
	return e
}

// halfClose ends what peer sends: FIN, or TLS's close_notify.
func halfClose(peer net.Conn) error {
	return peer.(interface{ CloseWrite() error }).CloseWrite()
}

// resetPeer resets the TCP connection beneath peer.
func resetPeer(t *testing.T, peer net.Conn) {
	t.Helper()
	if tc, ok := peer.(*tls.Conn); ok {
		peer = tc.NetConn()
	}
	tc := peer.(*net.TCPConn)
	if err := tc.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	tc.Close()
}

// sendAndEnd writes p to peer and half-closes it, in a goroutine; the channel
// gets the first error.
func sendAndEnd(peer net.Conn, p []byte) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := peer.Write(p)
		if err == nil {
			err = halfClose(peer)
		}
		ch <- err
	}()
	return ch
}

// sendUntilFails writes to peer for as long as it can, and then sends the
// error that stopped it.
func sendUntilFails(peer net.Conn) <-chan error {
	ch := make(chan error, 1)
	go func() {
		p := make([]byte, 64<<10)
		for {
			if _, err := peer.Write(p); err != nil {
				ch <- err
				return
			}
		}
	}()
	return ch
}

type relayed struct {
	aToB, bToA int64
	err        error
}

// goRelay runs Relay in a goroutine; the channel gets its results.
func goRelay(ctx context.Context, a, b *Conn) <-chan relayed {
	ch := make(chan relayed, 1)
	go func() {
		aToB, bToA, err := Relay(ctx, a, b)
		ch <- relayed{aToB, bToA, err}
	}()
	return ch
}

// relaySteps records, through testHookRelayStep, how many bytes from each
// source went through its Reader and how many the kernel spliced.
type relaySteps struct {
	mu            sync.Mutex
	read, spliced map[*Conn]int64
}

func recordRelaySteps(t *testing.T) *relaySteps {
	s := &relaySteps{read: map[*Conn]int64{}, spliced: map[*Conn]int64{}}
	testHookRelayStep = func(src *Conn, n int64, spliced bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if spliced {
			s.spliced[src] += n
		} else {
			s.read[src] += n
		}
	}
	t.Cleanup(func() { testHookRelayStep = nil })
	return s
}

func (s *relaySteps) of(src *Conn) (read, spliced int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read[src], s.spliced[src]
}

// kernelSplices reports whether Relay splices between TCP connections here.
func kernelSplices(t *testing.T) bool {
	nc, _ := tcpPair(t)
	c := NewConn(nc)
	defer c.Abort()
	return newInbound(c.rd.sock) != nil
}

// passThrough sends msg from a's peer and checks that b's peer receives it:
// the relay runs.
func passThrough(t *testing.T, a, b relayEnd, msg string) {
	t.Helper()
	if _, err := a.peer.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(b.peer, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != msg {
		t.Fatalf("got %q, want %q", buf, msg)
	}
}

// blockedIn reports whether a goroutine waits for its socket to be writable
// in a function whose name contains fn.
func blockedIn(fn string) bool { return inGoroutine(fn, "waitWrite") }

func randomBytes(t *testing.T, n int) []byte {
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// Both directions at once, each in order, with a few MiB of random data, over
// the kernel path (TCP), the Reader path (Unix sockets) and with a TLS side,
// which cannot be half-closed and is closed at the end. Stats count exactly.
func TestRelayBothWays(t *testing.T) {
	for _, kinds := range [][2]string{{"tcp", "tcp"}, {"unix", "unix"}, {"tcp", "tls"}} {
		t.Run(kinds[0]+"-"+kinds[1], func(t *testing.T) {
			is := is.New(t)
			a, b := newRelayEnd(t, kinds[0]), newRelayEnd(t, kinds[1])
			toB, toA := randomBytes(t, 4<<20), randomBytes(t, 3<<20+17)
			relay := goRelay(testCtx(t), a.c, b.c)
			sentA, sentB := sendAndEnd(a.peer, toB), sendAndEnd(b.peer, toA)
			gotB, gotA := readAllAsync(b.peer), readAllAsync(a.peer)
			is.NoErr(recv(t, sentA))
			is.NoErr(recv(t, sentB))
			is.True(bytes.Equal(recv(t, gotB), toB))
			is.True(bytes.Equal(recv(t, gotA), toA))

			res := recv(t, relay)
			is.NoErr(res.err)
			is.Equal(res.aToB, int64(len(toB)))
			is.Equal(res.bToA, int64(len(toA)))
			sa, sb := a.c.Stats(), b.c.Stats()
			is.Equal(sa.BytesRead, int64(len(toB)))
			is.Equal(sb.BytesWritten, int64(len(toB)))
			is.Equal(sb.BytesRead, int64(len(toA)))
			is.Equal(sa.BytesWritten, int64(len(toA)))
			is.Equal(a.c.IsClosing(), kinds[0] == "tls") // left open, unless it cannot half-close
			is.Equal(b.c.IsClosing(), kinds[1] == "tls")
		})
	}
}

// Bytes buffered in either Conn before the call go first, through the
// Reader, and are counted; the rest follows in order, in the kernel.
func TestRelayBufferedFirst(t *testing.T) {
	is := is.New(t)
	steps := recordRelaySteps(t)
	ctx := testCtx(t)
	a, b := newRelayEnd(t, "tcp"), newRelayEnd(t, "tcp")
	bodies := map[*Conn][]byte{}
	buffered := map[*Conn]int{}
	for _, e := range []relayEnd{a, b} {
		// One write of a line and a body larger than the Reader's first buffer:
		// reading the line buffers part of the body and leaves the rest in the
		// kernel.
		body := randomBytes(t, 3000)
		_, err := e.peer.Write(append([]byte("head\n"), body...))
		is.NoErr(err)
		line, err := e.c.ReadLine(ctx)
		is.NoErr(err)
		is.Equal(string(line), "head\n")
		is.True(e.c.Buffered() > 0)
		bodies[e.c], buffered[e.c] = body, e.c.Buffered()
	}

	relay := goRelay(ctx, a.c, b.c)
	gotB, gotA := readAllAsync(b.peer), readAllAsync(a.peer)
	is.NoErr(halfClose(a.peer))
	is.NoErr(halfClose(b.peer))
	is.True(bytes.Equal(recv(t, gotB), bodies[a.c]))
	is.True(bytes.Equal(recv(t, gotA), bodies[b.c]))
	res := recv(t, relay)
	is.NoErr(res.err)
	is.Equal(res.aToB, int64(3000)) // the buffered bytes included
	is.Equal(res.bToA, int64(3000))

	splices := kernelSplices(t)
	for _, c := range []*Conn{a.c, b.c} {
		read, spliced := steps.of(c)
		if splices {
			is.Equal(read, int64(buffered[c])) // the buffered bytes, and no more, through the Reader
			is.Equal(spliced, int64(3000-buffered[c]))
		} else {
			is.Equal(read, int64(3000))
		}
		is.Equal(c.Stats().BytesRead, int64(5+3000))
	}
}

// The kernel moves the bytes where both Conns are plain TCP with nothing
// buffered, and never where one speaks TLS or is a Pipe.
func TestRelaySplicePath(t *testing.T) {
	splices := kernelSplices(t)
	for _, tc := range []struct {
		kinds  [2]string
		splice bool
	}{
		{[2]string{"tcp", "tcp"}, splices},
		{[2]string{"tcp", "tls"}, false},
		{[2]string{"tls", "tcp"}, false},
		{[2]string{"unix", "unix"}, false},
	} {
		t.Run(tc.kinds[0]+"-"+tc.kinds[1], func(t *testing.T) {
			is := is.New(t)
			steps := recordRelaySteps(t)
			a, b := newRelayEnd(t, tc.kinds[0]), newRelayEnd(t, tc.kinds[1])
			toB, toA := randomBytes(t, 256<<10), []byte("reply")
			relay := goRelay(testCtx(t), a.c, b.c)
			sendAndEnd(a.peer, toB)
			sendAndEnd(b.peer, toA)
			gotB, gotA := readAllAsync(b.peer), readAllAsync(a.peer)
			is.True(bytes.Equal(recv(t, gotB), toB))
			is.True(bytes.Equal(recv(t, gotA), toA))
			is.NoErr(recv(t, relay).err)

			for c, n := range map[*Conn]int64{a.c: int64(len(toB)), b.c: int64(len(toA))} {
				read, spliced := steps.of(c)
				if tc.splice {
					is.Equal(read, int64(0))
					is.Equal(spliced, n)
				} else {
					is.Equal(read, n)
					is.Equal(spliced, int64(0))
				}
			}
			if tc.splice {
				is.Equal(b.c.Stats().QueuedPeak, 0) // past the queues altogether
			}
		})
	}
}

// When one side's input ends, the other side gets EOF after everything
// relayed, and the opposite direction goes on; Relay returns nil once both
// have ended and leaves both Conns open.
func TestRelayHalfClose(t *testing.T) {
	for _, kind := range []string{"tcp", "unix"} {
		t.Run(kind, func(t *testing.T) {
			is := is.New(t)
			a, b := newRelayEnd(t, kind), newRelayEnd(t, kind)
			relay := goRelay(testCtx(t), a.c, b.c)

			_, err := a.peer.Write([]byte("request"))
			is.NoErr(err)
			is.NoErr(halfClose(a.peer))
			got, err := io.ReadAll(b.peer) // ends at the EOF passed on
			is.NoErr(err)
			is.Equal(string(got), "request")

			_, err = b.peer.Write([]byte("response, after the half-close"))
			is.NoErr(err)
			is.NoErr(halfClose(b.peer))
			got, err = io.ReadAll(a.peer)
			is.NoErr(err)
			is.Equal(string(got), "response, after the half-close")

			res := recv(t, relay)
			is.NoErr(res.err)
			is.Equal(res.aToB, int64(7))
			is.Equal(res.bToA, int64(30))
			is.True(!a.c.IsClosing())
			is.True(!b.c.IsClosing())
		})
	}
}

// A destination that cannot write EOF (TLS) gets none while the other
// direction goes on, and is closed once both are done.
func TestRelayTLSClosedAtEnd(t *testing.T) {
	is := is.New(t)
	a, b := newRelayEnd(t, "tcp"), newRelayEnd(t, "tls")
	relay := goRelay(testCtx(t), a.c, b.c)

	_, err := a.peer.Write([]byte("ping"))
	is.NoErr(err)
	is.NoErr(halfClose(a.peer))
	buf := make([]byte, 4)
	_, err = io.ReadFull(b.peer, buf)
	is.NoErr(err)
	is.Equal(string(buf), "ping")
	ended := make(chan error, 1)
	go func() {
		_, err := b.peer.Read(buf)
		ended <- err
	}()
	quietFor(t, ended, 100*time.Millisecond, "EOF on the TLS side before the other direction ended")

	_, err = b.peer.Write([]byte("pong"))
	is.NoErr(err)
	is.NoErr(halfClose(b.peer)) // close_notify: b's input ends
	got, err := io.ReadAll(a.peer)
	is.NoErr(err)
	is.Equal(string(got), "pong")
	is.Equal(recv(t, ended), io.EOF) // b closed: its close_notify
	res := recv(t, relay)
	is.NoErr(res.err)
	is.True(b.c.IsClosing())
	is.True(!a.c.IsClosing())
}

// A reset on one side aborts both Conns, so the other side's peer sees a
// reset too, whichever path the bytes took.
func TestRelayResetPassedOn(t *testing.T) {
	for _, kinds := range [][2]string{{"tcp", "tcp"}, {"tls", "tcp"}} {
		t.Run(kinds[0]+"-"+kinds[1], func(t *testing.T) {
			is := is.New(t)
			a, b := newRelayEnd(t, kinds[0]), newRelayEnd(t, kinds[1])
			relay := goRelay(testCtx(t), a.c, b.c)
			passThrough(t, a, b, "x")

			resetPeer(t, a.peer)
			_, err := b.peer.Read(make([]byte, 1))
			is.True(errors.Is(err, syscall.ECONNRESET)) // not a clean EOF
			res := recv(t, relay)
			is.True(errors.Is(res.err, syscall.ECONNRESET))
			is.True(a.c.IsClosing())
			is.True(b.c.IsClosing())
		})
	}
}

// ctx's end aborts both Conns, whether the relay is idle or blocked by a
// consumer that does not read, and Relay returns ctx.Err().
func TestRelayCancel(t *testing.T) {
	for _, kinds := range [][2]string{{"tcp", "tcp"}, {"unix", "unix"}, {"tcp", "tls"}} {
		for _, blocked := range []bool{false, true} {
			name := kinds[0] + "-" + kinds[1] + map[bool]string{false: "/idle", true: "/blocked"}[blocked]
			t.Run(name, func(t *testing.T) {
				is := is.New(t)
				a, b := newRelayEnd(t, kinds[0]), newRelayEnd(t, kinds[1])
				ctx, cancel := context.WithCancel(testCtx(t))
				defer cancel()
				relay := goRelay(ctx, a.c, b.c)
				passThrough(t, a, b, "x")
				if blocked {
					// b's peer reads no more: the relay fills the kernel's
					// buffers and then waits on b.
					writing := sendUntilFails(a.peer)
					// Waiting in Drain on the Reader path, in splice(2) on the
					// kernel's.
					waitUntil(t, func() bool { return b.c.Stats().DrainWaits > 0 || blockedIn("splicePump") })
					cancel()
					is.True(isReset(recv(t, writing))) // a's peer's writes fail with the reset
				}

				cancel()
				res := recv(t, relay)
				is.Equal(res.err, context.Canceled)
				is.True(a.c.IsClosing())
				is.True(b.c.IsClosing())
				if kinds[0] == "tcp" && !blocked {
					_, err := io.Copy(io.Discard, a.peer)
					is.True(errors.Is(err, syscall.ECONNRESET))
				}
			})
		}
	}
}

// A slow consumer holds the relay to the destination's write queue: it never
// holds more than the high watermark plus one chunk.
func TestRelayBoundedMemory(t *testing.T) {
	const high, low = 16 << 10, 4 << 10
	for _, kinds := range [][2]string{{"unix", "unix"}, {"tcp", "tls"}} {
		t.Run(kinds[0]+"-"+kinds[1], func(t *testing.T) {
			is := is.New(t)
			a := newRelayEnd(t, kinds[0])
			b := newRelayEnd(t, kinds[1], WithWriteBufferLimits(high, low))
			data := randomBytes(t, 8<<20)
			relay := goRelay(testCtx(t), a.c, b.c)
			sent := sendAndEnd(a.peer, data)

			// b's peer reads nothing until the relay has had to wait in Drain.
			waitUntil(t, func() bool { return b.c.Stats().DrainWaits > 0 })
			is.True(b.c.WriteBufferSize() <= high+relayChunk)
			got := readAllAsync(b.peer)
			is.NoErr(halfClose(b.peer)) // a TLS b is closed, so its peer sees EOF, once both directions end
			is.NoErr(recv(t, sent))
			is.True(bytes.Equal(recv(t, got), data))
			is.NoErr(recv(t, relay).err)
			peak := b.c.Stats().QueuedPeak
			is.True(peak > high)                // the queue was used to its watermark,
			is.True(peak <= high+relayChunk)    // and no further than one chunk past it
			is.Equal(a.c.Stats().QueuedPeak, 0) // nothing came the other way
		})
	}
}

// WithIdleTimeout on both Conns: a relay that trickles for several timeouts
// stays up (each write(2) counts as progress), and one with no traffic is
// aborted with ErrIdleTimeout, the reset passed on.
func TestRelayIdleTimeout(t *testing.T) {
	slow(t)
	const idle = 200 * time.Millisecond
	for _, kind := range []string{"tcp", "unix"} {
		t.Run(kind+"/trickle", func(t *testing.T) {
			is := is.New(t)
			a, b := newRelayEnd(t, kind, WithIdleTimeout(idle)), newRelayEnd(t, kind, WithIdleTimeout(idle))
			relay := goRelay(testCtx(t), a.c, b.c)
			got := readAllAsync(b.peer)
			tick := time.NewTicker(idle / 10)
			defer tick.Stop()
			sent := 0
			for start := time.Now(); time.Since(start) < 5*idle; {
				<-tick.C
				n, err := a.peer.Write([]byte("0123456789"))
				is.NoErr(err)
				sent += n
			}
			is.NoErr(halfClose(a.peer))
			is.NoErr(halfClose(b.peer))
			is.Equal(len(recv(t, got)), sent)
			res := recv(t, relay)
			is.NoErr(res.err) // not ErrIdleTimeout
			is.Equal(res.aToB, int64(sent))
			is.True(!a.c.IsClosing())
		})
		t.Run(kind+"/quiet", func(t *testing.T) {
			is := is.New(t)
			a, b := newRelayEnd(t, kind, WithIdleTimeout(idle)), newRelayEnd(t, kind)
			res := recv(t, goRelay(testCtx(t), a.c, b.c))
			is.True(errors.Is(res.err, ErrIdleTimeout))
			is.True(b.c.IsClosing())
			if kind == "tcp" {
				_, err := b.peer.Read(make([]byte, 1))
				is.True(errors.Is(err, syscall.ECONNRESET))
			}
		})
	}
}

// A relay between TCP Conns, one with WithIdleTimeout, into a peer that reads
// slowly but all along: bytes reach the kernel all the time, so the timeout
// does not fire, though a splice step of what has arrived would take longer
// than it (such relays copy: see newSplicer).
func TestRelayIdleTimeoutSlowReader(t *testing.T) {
	slow(t)
	for _, timed := range []string{"src", "dst"} {
		t.Run("timeout on "+timed, func(t *testing.T) {
			is := is.New(t)
			// The peer reads 32 KiB every 20 ms (1.6 MB/s): a splice step of
			// what has arrived (up to 1 MiB) would take far longer than idle,
			// while the writer, woken by the kernel once about two reads have
			// freed room, waits ~40 ms at a time, 10 times less: room enough
			// for a reader goroutine held up by a loaded machine (stalls of
			// 0.1-0.23 s seen under -race on 2 cores).
			const idle = 400 * time.Millisecond
			data := randomBytes(t, 2<<20) // before the Conns: their clocks start with them
			var aOpts, bOpts []Option
			if timed == "dst" {
				bOpts = append(bOpts, WithIdleTimeout(idle))
			} else {
				aOpts = append(aOpts, WithIdleTimeout(idle))
			}
			a, b := newRelayEnd(t, "tcp", aOpts...), newRelayEnd(t, "tcp", bOpts...)
			// Small buffers between b and its peer: the peer's pace is the relay's.
			is.NoErr(b.c.NetConn().(*net.TCPConn).SetWriteBuffer(64 << 10))
			is.NoErr(b.peer.(*net.TCPConn).SetReadBuffer(64 << 10))
			relay := goRelay(testCtx(t), a.c, b.c)
			sent := sendAndEnd(a.peer, data)
			got := make(chan []byte, 1)
			go func() { // 32 KiB every 20 ms: never near idle for 400 ms
				var out bytes.Buffer
				buf := make([]byte, 32<<10)
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					n, err := b.peer.Read(buf)
					out.Write(buf[:n])
					if err != nil {
						break
					}
					<-tick.C
				}
				got <- out.Bytes()
			}()
			is.NoErr(recv(t, sent))
			rcvd := recv(t, got)
			halfClose(b.peer) // fails where a timeout reset the connection: see res.err
			res := recv(t, relay)
			is.NoErr(res.err) // not ErrIdleTimeout
			is.True(bytes.Equal(rcvd, data))
		})
	}
}

// A timeout that closes one Conn is one failure: Relay returns it once, not
// joined with itself because both directions met the closed Conn.
func TestRelayTimeoutReportedOnce(t *testing.T) {
	is := is.New(t)
	a, b := newRelayEnd(t, "unix", WithIdleTimeout(200*time.Millisecond)), newRelayEnd(t, "unix")
	relay := goRelay(testCtx(t), a.c, b.c)
	// a's peer neither reads nor sends while b's sends more than the kernel
	// and a's queue hold: a→b waits to read a, b→a to write to a.
	sent := sendAndEnd(b.peer, make([]byte, 8<<20))
	res := recv(t, relay)
	is.True(errors.Is(res.err, ErrIdleTimeout))
	is.Equal(strings.Count(res.err.Error(), ErrIdleTimeout.Error()), 1)
	b.peer.Close()
	recv(t, sent)
}

// Writes by other goroutines to a destination stay whole and land between
// relayed chunks, on both paths.
func TestRelayConcurrentWriter(t *testing.T) {
	for _, kind := range []string{"tcp", "unix"} {
		t.Run(kind, func(t *testing.T) {
			is := is.New(t)
			a, b := newRelayEnd(t, kind), newRelayEnd(t, kind)
			relay := goRelay(testCtx(t), a.c, b.c)
			got := readAllAsync(b.peer)

			stop := make(chan struct{})
			streamed := make(chan error, 1)
			go func() {
				p := bytes.Repeat([]byte("x"), 3000)
				for {
					select {
					case <-stop:
						streamed <- halfClose(a.peer)
						return
					default:
					}
					if _, err := a.peer.Write(p); err != nil {
						streamed <- err
						return
					}
				}
			}()
			const msgs = 300
			for i := range msgs {
				_, err := b.c.Write([]byte(fmt.Sprintf("<%04d>", i)))
				is.NoErr(err)
			}
			close(stop)
			is.NoErr(recv(t, streamed))
			is.NoErr(halfClose(b.peer))
			res := recv(t, relay)
			is.NoErr(res.err)

			out := recv(t, got)
			found := regexp.MustCompile(`<(\d{4})>`).FindAllSubmatch(out, -1)
			is.Equal(len(found), msgs) // every message whole,
			for i, m := range found {
				is.Equal(string(m[1]), fmt.Sprintf("%04d", i)) // in order
			}
			rest := regexp.MustCompile(`<\d{4}>`).ReplaceAll(out, nil)
			is.Equal(len(bytes.Trim(rest, "x")), 0) // and nothing else split
			is.Equal(int64(len(rest)), res.aToB)
			is.Equal(b.c.Stats().BytesWritten, res.aToB+msgs*6)
		})
	}
}

// Relay takes both Conns' reads: one under way elsewhere makes it fail at
// once, touching neither Conn, and reads during a relay fail.
func TestRelayConcurrentRead(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	a, b := newRelayEnd(t, "tcp"), newRelayEnd(t, "tcp")
	reading := make(chan error, 1)
	go func() {
		_, err := b.c.ReadLine(ctx)
		reading <- err
	}()
	waitUntil(t, func() bool { return b.c.reads.has(readerWaiting) }) // ReadLine holds b's reads
	for _, pair := range [][2]*Conn{{a.c, b.c}, {b.c, a.c}} {
		_, _, err := Relay(ctx, pair[0], pair[1])
		is.Equal(err, ErrConcurrentRead)
	}
	is.True(a.c.rd.mu.tryLock()) // let go of
	a.c.rd.mu.unlock()
	is.True(!a.c.IsClosing())
	is.True(!b.c.IsClosing())
	_, err := b.peer.Write([]byte("line\n"))
	is.NoErr(err)
	is.NoErr(recv(t, reading))

	relay := goRelay(ctx, a.c, b.c)
	passThrough(t, a, b, "x")
	_, err = b.c.ReadLine(ctx)
	is.Equal(err, ErrConcurrentRead)
	is.NoErr(halfClose(a.peer))
	is.NoErr(halfClose(b.peer))
	is.NoErr(recv(t, relay).err)
}

// A Conn closed before the call is a failure: the other is aborted.
func TestRelayClosedConn(t *testing.T) {
	is := is.New(t)
	a, b := newRelayEnd(t, "tcp"), newRelayEnd(t, "tcp")
	is.NoErr(a.c.Close())
	_, _, err := Relay(testCtx(t), a.c, b.c)
	is.True(errors.Is(err, net.ErrClosed))
	is.True(b.c.IsClosing())
}

// A read context of an earlier call, ending during the relay, does not cut
// the relay short.
func TestRelayOutlivesEarlierReadContext(t *testing.T) {
	is := is.New(t)
	a, b := newRelayEnd(t, "tcp"), newRelayEnd(t, "tcp")
	readCtx, cancel := context.WithCancel(testCtx(t))
	_, err := a.peer.Write([]byte("hello\n"))
	is.NoErr(err)
	_, err = a.c.ReadLine(readCtx) // leaves its context watched
	is.NoErr(err)

	relay := goRelay(testCtx(t), a.c, b.c)
	cancel()
	passThrough(t, a, b, "one")
	passThrough(t, a, b, "two")
	is.NoErr(halfClose(a.peer))
	is.NoErr(halfClose(b.peer))
	is.NoErr(recv(t, relay).err)
}

// The rules for what Relay reports: the first failure; a later one only if
// the abort cannot have caused it; nothing but ctx.Err() once ctx has ended;
// nothing once both directions are done.
func TestRelayFailureRules(t *testing.T) {
	errA, errB := errors.New("a failed"), errors.New("b failed")
	closedErr := fmt.Errorf("read: %w", net.ErrClosed)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		finished bool
		fails    []error
		want     []error // matched by the result; nil: no error
		aborted  bool
	}{
		{"first", context.Background(), false, []error{errA}, []error{errA}, true},
		{"own abort not reported", context.Background(), false, []error{errA, closedErr}, []error{errA}, true},
		{"independent failure joined", context.Background(), false, []error{errA, errB}, []error{errA, errB}, true},
		{"ctx first", canceled, false, []error{context.Canceled, errB}, []error{context.Canceled}, true},
		{"ctx after a failure", canceled, false, []error{errA, context.Canceled}, []error{errA}, true},
		{"after the end", context.Background(), true, []error{errA}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			a, b := newRelayEnd(t, "unix"), newRelayEnd(t, "unix")
			rl := &relay{ctx: tc.ctx, a: a.c, b: b.c, finished: tc.finished}
			for _, err := range tc.fails {
				rl.fail(err)
			}
			err := rl.finish()
			is.Equal(err == nil, tc.want == nil)
			for _, w := range tc.want {
				is.True(errors.Is(err, w))
			}
			if len(tc.want) == 1 {
				is.Equal(err, tc.want[0]) // not joined
			}
			is.Equal(a.c.IsClosing(), tc.aborted)
			is.Equal(b.c.IsClosing(), tc.aborted)
		})
	}
}

// relayWaitsOnDestination reports whether a Relay direction is blocked on its
// destination: in the write queue's wait (Write or Drain) or in splice(2)
// waiting for the destination to take bytes.
func relayWaitsOnDestination() bool {
	return inGoroutine("(*relay).pump", "(*writeQueue).waitLocked") ||
		inGoroutine("(*relay).pump", "splicePump", "waitWrite")
}

// Close or Abort by another goroutine ends a relay as a failure (Relay's
// doc), also where neither direction waits on the Conn closed: a's peer
// streams into a, b's peer neither reads nor writes, so a->b waits on b (its
// queue, or splice(2)) and b->a for b's input. Closing a must end the relay.
func TestRelayEndsWhenAnotherGoroutineClosesSource(t *testing.T) {
	for _, kind := range []string{"tcp", "unix"} {
		for _, how := range []string{"Close", "Abort"} {
			t.Run(kind+"/"+how, func(t *testing.T) {
				is := is.New(t)
				a, b := newRelayEnd(t, kind, WithCloseTimeout(time.Second)), newRelayEnd(t, kind)
				ctx, cancel := context.WithCancel(testCtx(t))
				defer cancel()
				relay := goRelay(ctx, a.c, b.c)
				writing := sendUntilFails(a.peer)
				waitUntil(t, relayWaitsOnDestination)
				if how == "Close" {
					a.c.Close()
				} else {
					a.c.Abort()
				}
				select {
				case res := <-relay:
					is.True(errors.Is(res.err, net.ErrClosed))
				case <-time.After(2 * time.Second):
					cancel() // only the relay's ctx ends it
					recv(t, relay)
					t.Error("Relay still runs 2 s after another goroutine closed a")
				}
				recv(t, writing)
			})
		}
	}
}

// A Server handler relaying with its own ctx, which ends with its Conn's
// close: a close by a timeout or another goroutine is reported as the close
// (ErrIdleTimeout, net.ErrClosed), not as the ctx's end that follows it.
func TestRelayWithHandlerCtxReportsClose(t *testing.T) {
	for _, how := range []string{"idle timeout", "Close", "Abort"} {
		t.Run(how, func(t *testing.T) {
			srvNoLeaks(t)
			var opts []Option
			if how == "idle timeout" {
				opts = append(opts, WithIdleTimeout(50*time.Millisecond))
			}
			conns := make(chan *Conn, 1)
			errs := make(chan error, 1)
			s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
				backend, _ := connPair(t)
				conns <- c
				_, _, err := Relay(ctx, c, backend)
				errs <- err
				return err
			}, opts...)
			srvDial(t, s.Addrs()[0])
			c := recv(t, conns)
			want := ErrIdleTimeout
			if how != "idle timeout" {
				want = net.ErrClosed
				waitUntil(t, func() bool { return inGoroutine("(*relay).pump") })
				if how == "Close" {
					c.Close()
				} else {
					c.Abort()
				}
			}
			if err := recv(t, errs); !errors.Is(err, want) {
				t.Fatalf("Relay: %v, want %v", err, want)
			}
		})
	}
}
