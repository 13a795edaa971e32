package sluice

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
)

// The timeouts in these tests are far apart from the waits that must not
// trip them (a few times over), so that a loaded machine does not make them
// flaky; every wait is bounded.
const (
	idleFor = 300 * time.Millisecond
	dripGap = 50 * time.Millisecond
)

// isTimeoutErr checks what every timeout error must be: the sentinel, a
// deadline, and a net.Error whose Timeout is true.
func isTimeoutErr(t *testing.T, err, sentinel error) {
	t.Helper()
	var ne net.Error
	if !errors.Is(err, sentinel) || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want an error matching %v, os.ErrDeadlineExceeded and a net.Error timeout", err, sentinel)
	}
}

// A silent peer is dropped after the idle timeout, and not before: the
// blocked read and later reads and writes fail with ErrIdleTimeout, and the
// peer sees a reset.
func TestIdleTimeoutDropsSilentPeer(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	start := time.Now() // before the Conn, whose clock starts when it is made
	c, peer := connPair(t, WithIdleTimeout(idleFor))
	read := make(chan error, 1)
	go func() {
		_, err := c.ReadLine(context.Background())
		read <- err
	}()
	quietFor(t, read, idleFor/2, "the read ended before the idle timeout")
	err := recv(t, read)
	isTimeoutErr(t, err, ErrIdleTimeout)
	is.True(time.Since(start) >= idleFor)
	is.True(c.IsClosing())
	_, err = c.Write([]byte("late\n"))
	isTimeoutErr(t, err, ErrIdleTimeout)
	_, err = c.ReadLine(testCtx(t))
	isTimeoutErr(t, err, ErrIdleTimeout)
	peer.SetReadDeadline(time.Now().Add(testTimeout))
	_, err = io.ReadAll(peer)
	is.True(errors.Is(err, syscall.ECONNRESET)) // aborted, not closed
}

// Progress in either direction restarts the clock: a peer that sends a byte
// now and then is kept past the timeout, and so is a Conn streaming to a peer
// that reads.
func TestIdleTimeoutKeepsBusyConns(t *testing.T) {
	t.Parallel()
	t.Run("peer drips bytes", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		c, peer := connPair(t, WithIdleTimeout(idleFor))
		go func() {
			for i := 0; i < 20; i++ { // 1 s in all: three idle timeouts
				if _, err := peer.Write([]byte("x")); err != nil {
					return
				}
				time.Sleep(dripGap)
			}
			peer.Write([]byte("\n"))
		}()
		line, err := c.ReadLine(testCtx(t))
		is.NoErr(err)
		is.Equal(len(line), 21)
		is.True(!c.IsClosing())
	})
	t.Run("Conn streams to a reader", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		c, peer := connPair(t, WithIdleTimeout(idleFor))
		got := readAllAsync(peer)
		chunk := make([]byte, 1024)
		deadline := time.Now().Add(3 * idleFor)
		sent := 0
		for time.Now().Before(deadline) { // writes only: nothing is read
			n, err := c.Write(chunk)
			is.NoErr(err)
			sent += n
			is.NoErr(c.Drain(testCtx(t)))
			time.Sleep(dripGap / 5)
		}
		is.NoErr(c.Close())
		is.Equal(len(<-got), sent)
	})
	// One Write far larger than the kernel's buffers, to a peer that reads it
	// slowly but steadily: the clock follows the bytes the kernel takes, not
	// whole batches, through the socket's descriptor (TCP) and in pieces
	// where there is none (net.Pipe).
	for _, kind := range []string{"tcp", "pipe"} {
		t.Run("one large Write read slowly/"+kind, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			// Far larger than the kernel's buffers (64 KiB a side below), and
			// made before the Conn, whose idle clock starts with it: under
			// -race, making and queueing 8 MiB took up to 0.45 s on a loaded
			// machine, before the first byte could reach the kernel.
			const total, step = 2 << 20, 32 << 10
			data := make([]byte, total)
			var c *Conn
			var peer net.Conn
			if kind == "tcp" {
				c, peer = connPair(t, WithIdleTimeout(idleFor))
				// Small kernel buffers: once the last byte is handed over,
				// the peer reads the rest well within the timeout (with
				// loopback's autotuned megabytes it might not, and the Conn,
				// idle then, would be dropped as it should).
				is.NoErr(c.NetConn().(*net.TCPConn).SetWriteBuffer(64 << 10))
				is.NoErr(peer.(*net.TCPConn).SetReadBuffer(64 << 10))
			} else {
				a, b := net.Pipe()
				c, peer = NewConn(a, WithIdleTimeout(idleFor)), b
				t.Cleanup(func() { c.Abort(); peer.Close() })
			}
			got := make(chan int, 1)
			go func() { // a step every dripGap/5: 0.64 s in all, never idle for long
				peer.SetReadDeadline(time.Now().Add(testTimeout))
				buf := make([]byte, step)
				n := 0
				for n < total {
					k, err := io.ReadFull(peer, buf[:min(step, total-n)])
					n += k
					if err != nil {
						break
					}
					time.Sleep(dripGap / 5)
				}
				got <- n
			}()
			_, err := c.Write(data)
			is.NoErr(err)
			is.NoErr(c.Flush(testCtx(t))) // ErrIdleTimeout: the clock saw no progress
			is.Equal(recv(t, got), total)
			is.True(!c.IsClosing())
		})
	}
}

// A peer that stops reading is dropped too, however much is queued: bytes
// stuck in the queue are no progress.
func TestIdleTimeoutDropsStuckWriter(t *testing.T) {
	t.Parallel()
	c, _ := connPair(t, WithIdleTimeout(idleFor), WithWriteBufferLimits(1<<20, 1<<10))
	chunk := make([]byte, 64<<10)
	var err error
	for err == nil {
		if _, err = c.Write(chunk); err == nil {
			err = c.Drain(testCtx(t))
		}
	}
	isTimeoutErr(t, err, ErrIdleTimeout)
}

// The message timeout bounds a message from its first byte to its last: a line
// dripped a byte at a time is cut, while a peer that is silent for longer than
// the timeout and then sends a whole line is served.
func TestMessageTimeout(t *testing.T) {
	t.Parallel()
	const limit = 200 * time.Millisecond
	reads := map[string]func(ctx context.Context, c *Conn) error{
		"ReadLine": func(ctx context.Context, c *Conn) error { _, err := c.ReadLine(ctx); return err },
		"Lines": func(ctx context.Context, c *Conn) error {
			for _, err := range c.Lines(ctx) {
				return err
			}
			return io.EOF
		},
		"LineChan": func(ctx context.Context, c *Conn) error {
			s := c.LineChan(ctx)
			defer s.Stop()
			if _, ok := <-s.C; ok {
				return nil
			}
			return s.Err()
		},
		"ReadFrame": func(ctx context.Context, c *Conn) error {
			_, err := c.ReadFrame(ctx, Delimited(0, []byte("\n")))
			return err
		},
		"ReadExactly": func(ctx context.Context, c *Conn) error { _, err := c.ReadExactly(ctx, 8); return err },
	}
	for name, read := range reads {
		t.Run(name+" dripped", func(t *testing.T) {
			t.Parallel()
			c, peer := connPair(t, WithMessageTimeout(limit))
			go func() {
				for i := 0; i < 20; i++ { // 1 s for 20 bytes: well past the limit
					if _, err := peer.Write([]byte("d")); err != nil {
						return
					}
					time.Sleep(dripGap)
				}
			}()
			isTimeoutErr(t, read(testCtx(t), c), ErrMessageTimeout)
			_, err := c.ReadLine(testCtx(t))
			isTimeoutErr(t, err, ErrMessageTimeout) // sticky
		})
		t.Run(name+" after silence", func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			c, peer := connPair(t, WithMessageTimeout(limit))
			go func() {
				time.Sleep(3 * limit) // silence is not a slow message
				peer.Write([]byte("a whole line\n"))
			}()
			is.NoErr(read(testCtx(t), c))
			is.True(!c.IsClosing())
		})
	}
	t.Run("many quick lines", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		// Each line takes under the limit though the stream lasts longer: the
		// clock starts anew for every message.
		c, peer := connPair(t, WithMessageTimeout(limit))
		go func() {
			for i := 0; i < 10; i++ {
				peer.Write([]byte("half"))
				time.Sleep(dripGap)
				peer.Write([]byte(" line\nhalf"))
				time.Sleep(dripGap)
				peer.Write([]byte(" line\n"))
			}
			peer.(*net.TCPConn).CloseWrite()
		}()
		n := 0
		for line, err := range c.Lines(testCtx(t)) {
			is.NoErr(err)
			is.Equal(string(line), "half line")
			n++
		}
		is.Equal(n, 20)
	})
}

// A Server's connection closed by a timeout cancels its handler's ctx and
// counts in TimedOut; the others go on.
func TestServerTimeouts(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	ended := make(chan error, 2)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		line, err := c.ReadLine(ctx)
		if err != nil {
			<-ctx.Done() // cancelled by the timeout that ended the read
			ended <- err
			return err
		}
		_, err = c.Write(line)
		return err
	}, WithIdleTimeout(idleFor), WithMessageTimeout(idleFor/2))
	srvDial(t, s.Addrs()[0])                        // silent: the idle timeout
	srvDial(t, s.Addrs()[0]).Write([]byte("slowl")) // a line that never ends: the message timeout
	errs := []error{recv(t, ended), recv(t, ended)}
	is.True(errors.Is(errs[0], ErrMessageTimeout) || errors.Is(errs[1], ErrMessageTimeout))
	is.True(errors.Is(errs[0], ErrIdleTimeout) || errors.Is(errs[1], ErrIdleTimeout))
	waitUntil(t, func() bool { return s.Stats().TimedOut == 2 })
	is.Equal(s.Stats().Errors, int64(0)) // a timeout is not the handler's error
	c := srvDial(t, s.Addrs()[0])
	is.Equal(srvRoundTrip(t, c, "still serving"), "still serving")
}

// A Conn whose handler has returned, closing it, while a peer that no longer
// reads holds up the flush of what it wrote, is ended by the idle timeout:
// Stats counts it in TimedOut.
func TestServerTimeoutDuringCloseFlush(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		_, err := c.Write(make([]byte, 32<<20)) // more than the kernel's buffers hold
		return err
	}, WithIdleTimeout(idleFor))
	srvDial(t, s.Addrs()[0]) // never reads
	waitUntil(t, func() bool { st := s.Stats(); return st.Accepted == 1 && st.Active == 0 && len(s.liveConns(nil)) == 0 })
	st := s.Stats()
	is.Equal(st.TimedOut, int64(1))
	is.Equal(st.Errors, int64(0))
}

// A handler that panics after a timeout ended its read counts in Panics as
// well as TimedOut: every panic is counted.
func TestServerPanicAfterTimeout(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		_, err := c.ReadLine(ctx) // ends with the idle timeout
		panic("unchecked: " + err.Error())
	}, WithIdleTimeout(idleFor/4), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	srvDial(t, s.Addrs()[0]) // silent
	waitUntil(t, func() bool { return s.Stats().Accepted == 1 && len(s.liveConns(nil)) == 0 })
	st := s.Stats()
	is.Equal(st.TimedOut, int64(1))
	is.Equal(st.Panics, int64(1))
	is.Equal(st.Errors, int64(0))
}

func TestTimeoutOptions(t *testing.T) {
	is := is.New(t)
	_, _, err := Pipe(WithIdleTimeout(-time.Second))
	is.True(err != nil)
	_, _, err = Pipe(WithMessageTimeout(-1))
	is.True(err != nil)
	a, b, err := Pipe(WithIdleTimeout(0), WithMessageTimeout(0)) // none
	is.NoErr(err)
	is.True(a.clock == nil) // nothing at all when the options are off
	a.Close()
	b.Close()
}

// A message's time runs from the read that brought its first byte: a write
// made since (a reply, a heartbeat), which restarts the idle clock, gives the
// rest of the message no more time.
func TestMessageTimeoutRunsFromArrival(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	const limit = 300 * time.Millisecond
	c, peer := connPair(t, WithMessageTimeout(limit))
	ctx := testCtx(t)
	_, err := peer.Write([]byte("a\nb"))
	is.NoErr(err)
	line, err := c.ReadLine(ctx) // "b" arrives with "a\n", in one read
	is.NoErr(err)
	is.Equal(string(line), "a\n")
	is.Equal(c.Buffered(), 1)
	<-time.After(limit + 100*time.Millisecond) // "b" is older than the limit
	_, err = c.Write([]byte("pong\n"))
	is.NoErr(err)
	is.NoErr(c.Flush(ctx))
	start := time.Now()
	_, err = c.ReadLine(ctx)
	isTimeoutErr(t, err, ErrMessageTimeout)
	// At once: not a limit after the write (the slack is for a loaded machine).
	is.True(time.Since(start) < limit/2)
}

// The message timeout bounds a message's rest only while a read waits for it:
// a read whose ctx ends leaves the Conn alone, however long the rest then
// waits unread in the kernel, and a read that waits for it again is bounded
// from the message's first byte still.
func TestMessageTimeoutOnlyWhileReadWaits(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	const limit = 200 * time.Millisecond
	c, peer := connPair(t, WithMessageTimeout(limit))
	read := func(d time.Duration) ([]byte, error) {
		ctx, cancel := context.WithTimeout(testCtx(t), d)
		defer cancel()
		return c.ReadLine(ctx)
	}
	_, err := peer.Write([]byte("a"))
	is.NoErr(err)
	_, err = read(limit / 4)
	is.Equal(err, context.DeadlineExceeded)
	_, err = peer.Write([]byte("\nb"))
	is.NoErr(err)
	<-time.After(2 * limit) // no read waits: the rest stays in the kernel
	line, err := read(testTimeout)
	is.NoErr(err)
	is.Equal(string(line), "a\n")
	// "b" arrived with "a\n"; a first read for its rest is cut short, a
	// second, past the limit, fails at once.
	_, err = read(limit / 4)
	is.Equal(err, context.DeadlineExceeded)
	<-time.After(limit)
	_, err = read(testTimeout)
	isTimeoutErr(t, err, ErrMessageTimeout)
}

// WithMessageTimeout is a slowloris guard: once a frame's first byte has
// arrived, the rest must arrive within d. A frame announced over the maximum
// is skipped "as it arrives"; its rest must be bounded the same way, or a
// peer defeats the guard by announcing a huge frame and dripping its body.
func TestMessageTimeoutBoundsSkippedFrame(t *testing.T) {
	const limit = 200 * time.Millisecond
	for name, tc := range map[string]struct {
		f     Framing
		first []byte // the start of an oversized record
	}{
		"LengthPrefixed": {LengthPrefixed(LengthPrefix{Max: 64}), []byte{0x7f, 0xff, 0xff, 0xff, 'd'}},
		"Uvarint":        {Uvarint(64), []byte{0xff, 0xff, 0xff, 0x7f, 'd'}},
		"Delimited":      {Delimited(8, []byte("\n")), []byte("0123456789")},
		"Delimited CRLF": {Delimited(8, []byte("\r\n")), []byte("0123456789")},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, peer := connPair(t, WithMessageTimeout(limit))
			ctx := testCtx(t)
			if _, err := peer.Write(tc.first); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ReadFrame(ctx, tc.f); !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("first ReadFrame: %v, want ErrFrameTooLarge", err)
			}
			drip(t, peer) // the rest of the oversized frame
			// The frame's first byte came at the first read: its rest is due
			// within limit. Give it 8 times that.
			rctx, cancel := context.WithTimeout(ctx, 8*limit)
			defer cancel()
			start := time.Now()
			_, err := c.ReadFrame(rctx, tc.f)
			if !errors.Is(err, ErrMessageTimeout) {
				t.Fatalf("after %v of a dripped oversized frame: %v, want ErrMessageTimeout", time.Since(start).Round(time.Millisecond), err)
			}
		})
	}
}

// The same for a line over the limit in Lines: its rest is skipped through
// its newline as it arrives, and the message timeout must bound that too.
func TestMessageTimeoutBoundsSkippedLine(t *testing.T) {
	const limit = 200 * time.Millisecond
	c, peer := connPair(t, WithMessageTimeout(limit), WithLimit(8))
	ctx := testCtx(t)
	if _, err := peer.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	for _, err := range c.Lines(ctx) {
		if !errors.Is(err, ErrLimitOverrun) {
			t.Fatalf("first line: %v, want ErrLimitOverrun", err)
		}
		break
	}
	drip(t, peer)
	rctx, cancel := context.WithTimeout(ctx, 8*limit)
	defer cancel()
	start := time.Now()
	for _, err := range c.Lines(rctx) {
		if !errors.Is(err, ErrMessageTimeout) {
			t.Fatalf("after %v of a dripped overlong line: %v, want ErrMessageTimeout", time.Since(start).Round(time.Millisecond), err)
		}
		return
	}
	t.Fatal("Lines ended without an error")
}

// Control for the fix: an oversized frame whose body comes promptly is skipped
// without tripping the message timeout, and the next frame reads.
func TestMessageTimeoutSkipsPromptFrame(t *testing.T) {
	const limit = 200 * time.Millisecond
	c, peer := connPair(t, WithMessageTimeout(limit))
	ctx := testCtx(t)
	f := LengthPrefixed(LengthPrefix{Max: 64})
	go func() {
		peer.Write([]byte{0, 0x10, 0, 0})        // 1 MiB announced
		peer.Write(make([]byte, 1<<20))          // and sent at once
		peer.Write([]byte{0, 0, 0, 2, 'o', 'k'}) // then a valid frame
	}()
	if _, err := c.ReadFrame(ctx, f); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("first ReadFrame: %v", err)
	}
	got, err := c.ReadFrame(ctx, f)
	if err != nil || string(got) != "ok" {
		t.Fatalf("next frame: %q, %v", got, err)
	}
}

// drip writes a byte to peer every dripGap until the test ends.
func drip(t *testing.T, peer net.Conn) {
	stop, dripped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(dripped)
		tick := time.NewTicker(dripGap)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := peer.Write([]byte("d")); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-dripped })
}
