package sluice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/matryer/is"
)

// After a known exchange the counts are exact: what was read and what was
// handed to the kernel, in plaintext under TLS.
func TestConnStatsExact(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := "plain"
		if secure {
			name = "TLS"
		}
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			a, b, err := Pipe()
			is.NoErr(err)
			defer a.Abort()
			defer b.Abort()
			if secure {
				done := make(chan error, 1)
				go func() { done <- b.StartTLS(ctx, serverTLS(), WithTLSServerSide(true)) }()
				is.NoErr(a.StartTLS(ctx, clientTLS(), WithServerName("localhost")))
				is.NoErr(recv(t, done))
				is.Equal(a.Stats(), ConnStats{}) // the handshake is not counted
			}
			request := bytes.Repeat([]byte("r"), 1000)
			request[999] = '\n'
			for range 10 {
				_, err := a.Write(request)
				is.NoErr(err)
			}
			is.NoErr(a.Flush(ctx))
			n := 0
			for line, err := range b.Lines(ctx) {
				is.NoErr(err)
				_, err = b.Writev(line[:10], []byte("\n"))
				is.NoErr(err)
				if n++; n == 10 {
					break
				}
			}
			is.NoErr(b.Flush(ctx))
			got, err := a.ReadExactly(ctx, 110)
			is.NoErr(err)
			is.Equal(len(got), 110)
			sa, sb := a.Stats(), b.Stats()
			is.Equal(sa.BytesWritten, int64(10000))
			is.Equal(sb.BytesRead, int64(10000))
			is.Equal(sb.BytesWritten, int64(110))
			is.Equal(sa.BytesRead, int64(110))
			is.True(sa.QueuedPeak >= 1000 && sa.QueuedPeak <= 10000)
		})
	}
}

// A Drain that waits counts, however it ends, with the time it waited.
func TestConnStatsDrainWaits(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t, WithWriteBufferLimits(4<<10, 1<<10))
	fillUntilBlocked(t, c) // the peer does not read: writing is paused
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	is.True(errors.Is(c.Drain(ctx), context.DeadlineExceeded))
	st := c.Stats()
	is.Equal(st.DrainWaits, int64(1))
	is.True(st.DrainWaited >= 20*time.Millisecond)
	drained := make(chan error, 1)
	go func() { drained <- c.Drain(testCtx(t)) }()
	waitUntil(t, func() bool { return c.Stats().DrainWaits == 2 }) // it waits
	go io.Copy(io.Discard, peer)                                   // now the peer reads: that Drain succeeds
	is.NoErr(recv(t, drained))
	is.Equal(c.Stats().DrainWaits, int64(2))
	is.NoErr(c.Drain(testCtx(t))) // not paused: no wait
	is.Equal(c.Stats().DrainWaits, int64(2))
}

// ServerStats: every count, with closed connections' bytes summed in.
func TestServerStats(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	release := make(chan struct{})
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		line, err := c.ReadLine(ctx)
		if err != nil {
			return err
		}
		switch string(line) {
		case "panic\n":
			panic("the handler panics")
		case "fail\n":
			return errors.New("the handler fails")
		case "hold\n":
			<-release
		}
		_, err = c.Write(line)
		return err
	}, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	addr := s.Addrs()[0]
	for _, line := range []string{"panic", "fail", "ok"} {
		c := srvDial(t, addr)
		c.Write([]byte(line + "\n"))
		io.ReadAll(c) // until the Server closes it
	}
	held := srvDial(t, addr)
	held.Write([]byte("hold\n"))
	gone := srvDial(t, addr)
	gone.Close() // the handler sees EOF: a peer going away, not an error
	waitUntil(t, func() bool { st := s.Stats(); return st.Accepted == 5 && st.Active == 1 })
	close(release)
	got, err := io.ReadAll(held)
	is.NoErr(err)
	is.Equal(string(got), "hold\n")
	waitUntil(t, func() bool { return s.Stats().Active == 0 })
	st := s.Stats()
	is.Equal(st, ServerStats{
		Accepted: 5, Active: 0, Errors: 1, Panics: 1,
		BytesRead:    int64(len("panic\nfail\nok\nhold\n")),
		BytesWritten: int64(len("ok\nhold\n")),
	})
}

// A handler that returns its own error is counted in Errors as it returns, in
// the step that takes it out of Active: not once its Conn's close has flushed,
// and also where a timeout then cuts that flush short.
func TestErrorsCountedAsHandlerReturns(t *testing.T) {
	for _, timeout := range []bool{false, true} {
		t.Run(fmt.Sprint("idle timeout during the flush=", timeout), func(t *testing.T) {
			srvNoLeaks(t)
			is := is.New(t)
			log, _ := srvLogger()
			returned := make(chan struct{})
			opts := []Option{WithLogger(log), WithCloseTimeout(5 * time.Second)}
			if timeout {
				opts = append(opts, WithIdleTimeout(300*time.Millisecond))
			}
			s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
				defer close(returned)
				if _, err := c.Write(bytes.Repeat([]byte("x"), 8<<20)); err != nil {
					return err
				}
				return errors.New("the handler fails") // before any timeout
			}, opts...)
			srvDial(t, s.Addrs()[0]) // never reads: the close's flush waits
			recv(t, returned)
			if timeout {
				waitUntil(t, func() bool { return s.Stats().TimedOut == 1 })
			} else {
				waitUntil(t, func() bool { return s.Stats().Active == 0 })
			}
			st := s.Stats()
			is.Equal(st.Active, 0)
			is.Equal(st.Errors, int64(1))
		})
	}
}

// BytesWritten counts bytes as the kernel takes them, also while a large
// batch is still being sent: the client has read 1 MiB, so Stats says so.
func TestBytesWrittenDuringLargeSend(t *testing.T) {
	for _, timeout := range []bool{false, true} {
		t.Run(fmt.Sprint("idle timeout=", timeout), func(t *testing.T) {
			srvNoLeaks(t)
			is := is.New(t)
			var opts []Option
			if timeout {
				opts = append(opts, WithIdleTimeout(time.Minute))
			}
			s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
				if _, err := c.Write(bytes.Repeat([]byte("x"), 16<<20)); err != nil {
					return err
				}
				return c.Drain(ctx)
			}, opts...)
			cl := srvDial(t, s.Addrs()[0])
			_, err := io.ReadFull(cl, make([]byte, 1<<20)) // the kernel has taken 1 MiB at least
			is.NoErr(err)
			waitUntil(t, func() bool { return s.Stats().BytesWritten >= 1<<20 })
			n, err := io.Copy(io.Discard, cl) // let the handler finish
			is.NoErr(err)
			is.Equal(n, int64(16<<20-1<<20))
		})
	}
}
