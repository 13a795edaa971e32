package sluice

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestNewServer(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	s, err := NewServer(ln, srvEcho)
	is.NoErr(err)
	is.Equal(s.Addrs()[0].String(), ln.Addr().String())
	c := srvDial(t, ln.Addr())
	is.Equal(srvRoundTrip(t, c, "sock="), "sock=")
	srvShutdown(t, s)
	_, err = ln.Accept()
	is.True(errors.Is(err, net.ErrClosed)) // the Server owned the listener
}

func TestHandlerContext(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	type key struct{}
	ctx := context.WithValue(testCtx(t), key{}, "from Listen")
	got := make(chan any, 1)
	s, err := Listen(ctx, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		got <- ctx.Value(key{})
		return nil
	})
	is.NoErr(err)
	defer srvShutdown(t, s)
	srvDial(t, s.Addrs()[0])
	is.Equal(recv(t, got), "from Listen")
}

func TestHandlerPanicIsLogged(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	logger, logs := srvLogger()
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		line, err := c.ReadLine(ctx)
		if err != nil {
			return err
		}
		if string(line) == "panic\n" {
			panic("boom")
		}
		_, err = c.Write(line)
		return err
	}, WithLogger(logger))

	bad := srvDial(t, s.Addrs()[0])
	io.WriteString(bad, "panic\n")
	_, err := bad.Read(make([]byte, 1))
	is.Equal(err, io.EOF) // the panic closed that connection

	good := srvDial(t, s.Addrs()[0])
	is.Equal(srvRoundTrip(t, good, "still serving"), "still serving")

	log := logs.String()
	is.True(strings.Contains(log, `msg="sluice: handler panic"`))
	is.True(strings.Contains(log, "panic=boom"))
	is.True(strings.Contains(log, "peer="+bad.LocalAddr().String()))
	is.True(strings.Contains(log, "server_test.go")) // the stack
}

func TestHandlerErrorIsLogged(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	logger, logs := srvLogger()
	returned := make(chan struct{}, 3)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		defer func() { returned <- struct{}{} }()
		line, err := c.ReadLine(ctx)
		if err != nil {
			return err // the peer left: logged at Debug
		}
		return fmt.Errorf("bad request %q", bytes.TrimSpace(line))
	}, WithLogger(logger))

	bad := srvDial(t, s.Addrs()[0])
	io.WriteString(bad, "nonsense\n")
	_, err := bad.Read(make([]byte, 1))
	is.Equal(err, io.EOF)
	quiet := srvDial(t, s.Addrs()[0])
	quiet.Close()
	reset := srvDial(t, s.Addrs()[0])
	reset.(*net.TCPConn).SetLinger(0) // Close sends a RST
	reset.Close()
	for range 3 {
		recv(t, returned)
	}
	srvShutdown(t, s) // every log line is written when WaitClosed returns

	log := logs.String()
	is.True(strings.Contains(log, `level=ERROR msg="sluice: handler error" peer=`+bad.LocalAddr().String()+` err="bad request`))
	is.True(strings.Contains(log, `level=DEBUG msg="sluice: handler error" peer=`+quiet.LocalAddr().String()+" err=EOF"))
	is.True(strings.Contains(log, `level=DEBUG msg="sluice: handler error" peer=`+reset.LocalAddr().String()))
	is.True(strings.Contains(log, "connection reset by peer"))
	is.Equal(strings.Count(log, "level=ERROR"), 1)
}

// A handler that closes its own Conn (defer c.Close()) and returns an error of
// its own has failed: logged at Error and counted in Errors, as without the
// Close; an error that came of the close is not.
func TestHandlerErrorAfterOwnClose(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	logger, logs := srvLogger()
	returned := make(chan struct{}, 2)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		defer func() { returned <- struct{}{} }()
		defer c.Close()
		line, err := c.ReadLine(ctx)
		if err != nil {
			return err
		}
		if string(line) == "close\n" {
			c.Close()
			_, err := c.ReadLine(ctx)
			return fmt.Errorf("after close: %w", err) // came of the close
		}
		return errors.New("bad request")
	}, WithLogger(logger))
	for _, req := range []string{"nonsense\n", "close\n"} {
		nc := srvDial(t, s.Addrs()[0])
		io.WriteString(nc, req)
		recv(t, returned)
	}
	srvShutdown(t, s)
	is.Equal(s.Stats().Errors, int64(1))
	log := logs.String()
	is.True(strings.Contains(log, `level=ERROR msg="sluice: handler error"`) && strings.Contains(log, "bad request"))
	is.Equal(strings.Count(log, "level=ERROR"), 1)
	is.True(strings.Contains(log, `level=DEBUG msg="sluice: handler error"`) && strings.Contains(log, "after close"))
}

func TestConnOptionsReachAcceptedConns(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	type seen struct {
		accepted  bool
		high, low int
		err       error
	}
	got := make(chan seen, 1)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		_, err := c.ReadLine(ctx)
		got <- seen{c.accepted, c.queue().high, c.queue().low, err}
		return nil
	}, WithLimit(8), WithWriteBufferLimits(1000, 10))
	c := srvDial(t, s.Addrs()[0])
	io.WriteString(c, "longer than eight\n")
	v := recv(t, got)
	is.True(v.accepted)
	is.Equal(v.high, 1000)
	is.Equal(v.low, 10)
	var overrun *LimitOverrunError
	is.True(errors.As(v.err, &overrun))
}

func TestKeepAliveOnAcceptedConns(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	got := make(chan [3]int, 1)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		raw, err := c.NetConn().(syscall.Conn).SyscallConn()
		if err != nil {
			return err
		}
		var v [3]int
		raw.Control(func(fd uintptr) { v = keepAliveOf(fd) })
		got <- v
		return nil
	}, WithKeepAlive(net.KeepAliveConfig{Enable: true, Idle: 7 * time.Second, Interval: 3 * time.Second, Count: 4}))
	srvDial(t, s.Addrs()[0])
	is.Equal(recv(t, got), [3]int{7, 3, 4})
}

func TestCloseLeavesConnections(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	s := srvListen(t, "tcp", "127.0.0.1:0", srvEcho)
	addr := s.Addrs()[0]
	c := srvDial(t, addr)
	is.Equal(srvRoundTrip(t, c, "before"), "before")

	is.NoErr(s.Close())
	is.NoErr(s.Close()) // idempotent
	is.True(!s.IsServing())
	_, err := net.Dial("tcp", addr.String())
	is.True(errors.Is(err, errConnRefused))        // no longer accepting
	is.Equal(srvRoundTrip(t, c, "after"), "after") // the live one goes on

	short, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	is.Equal(s.WaitClosed(short), context.DeadlineExceeded) // its handler runs still
	c.Close()
	is.NoErr(s.WaitClosed(testCtx(t)))
}

func TestWaitClosedWaitsForEveryHandler(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	var returned atomic.Int32
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		defer returned.Add(1)
		started <- struct{}{}
		<-release // watches neither ctx nor c
		return nil
	})
	srvDial(t, s.Addrs()[0])
	srvDial(t, s.Addrs()[0])
	recv(t, started)
	recv(t, started)

	short, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	is.Equal(s.WaitClosed(short), context.DeadlineExceeded) // before Close it blocks
	is.NoErr(s.Close())
	short, cancel = context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	is.Equal(s.WaitClosed(short), context.DeadlineExceeded) // handlers still run

	waited := make(chan error, 2)
	for range 2 {
		go func() { waited <- s.WaitClosed(testCtx(t)) }()
	}
	close(release)
	is.NoErr(recv(t, waited))
	is.NoErr(recv(t, waited))
	is.Equal(returned.Load(), int32(2))
}

func TestCloseClientsFlushesAndCancels(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	payload := bytes.Repeat([]byte("x"), 1<<20)
	wrote := make(chan struct{}, 2)
	ctxErr := make(chan error, 2)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		if _, err := c.Write(payload); err != nil {
			return err
		}
		wrote <- struct{}{}
		<-ctx.Done()
		ctxErr <- ctx.Err()
		return ctx.Err()
	}, WithWriteBufferLimits(2<<20, 0))
	c := srvDial(t, s.Addrs()[0])
	recv(t, wrote)

	s.CloseClients()
	s.CloseClients() // idempotent
	is.Equal(recv(t, ctxErr), context.Canceled)
	got, err := io.ReadAll(c) // all that was queued, then EOF
	is.NoErr(err)
	is.Equal(len(got), len(payload))

	is.True(s.IsServing()) // asyncio's close_clients leaves the server serving
	c2 := srvDial(t, s.Addrs()[0])
	n, err := io.ReadFull(c2, make([]byte, 10))
	is.NoErr(err)
	is.Equal(n, 10)
}

func TestAbortClients(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	started := make(chan struct{})
	handlerErr := make(chan error, 1)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		close(started)
		_, err := c.ReadLine(context.Background()) // ends only when c does
		handlerErr <- err
		return err
	})
	c := srvDial(t, s.Addrs()[0])
	recv(t, started)
	s.AbortClients()
	s.AbortClients()
	is.True(errors.Is(recv(t, handlerErr), net.ErrClosed))
	_, err := c.Read(make([]byte, 1))
	is.True(err != nil) // EOF or reset
	is.True(s.IsServing())
}

// A handler whose read fails because its Conn is closing has done nothing
// wrong, even where it returns before the close has cancelled its ctx (a
// close wakes blocked reads first): it is neither counted in Errors nor
// logged as an error.
func TestHandlerEndedByCloseIsNoError(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	logger, logs := srvLogger()
	conns := make(chan *Conn, 1)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		conns <- c
		_, err := c.ReadLine(context.Background())
		return err
	}, WithLogger(logger))
	srvDial(t, s.Addrs()[0])
	c := recv(t, conns)
	// A close's first steps: the queue closed and the read woken, the ctx not
	// cancelled yet.
	is.True(c.queue().close(errClosed))
	c.rd.shutdown(errClosed)
	waitUntil(t, func() bool { return strings.Contains(logs.String(), "sluice: handler error") })
	c.Abort() // the rest of the close
	is.NoErr(s.Close())
	is.NoErr(s.WaitClosed(testCtx(t)))
	is.True(!strings.Contains(logs.String(), "level=ERROR")) // logged at Debug
	is.Equal(s.Stats().Errors, int64(0))
}

func TestServe(t *testing.T) {
	t.Run("ctx ends", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		s := srvListen(t, "tcp", "127.0.0.1:0", srvEcho, WithStartServing(false))
		ctx, cancel := context.WithCancel(testCtx(t))
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		c := srvDial(t, s.Addrs()[0])
		is.Equal(srvRoundTrip(t, c, "served"), "served") // Serve started serving
		cancel()
		is.Equal(recv(t, done), context.Canceled)
		is.True(!s.IsServing()) // and closed the server
		is.Equal(s.Serve(testCtx(t)), ErrServerClosed)
	})
	t.Run("Close", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		s := srvListen(t, "tcp", "127.0.0.1:0", srvEcho)
		done := make(chan error, 2)
		go func() { done <- s.Serve(testCtx(t)) }()
		go func() { done <- s.Serve(testCtx(t)) }()
		is.NoErr(s.Close())
		is.Equal(recv(t, done), ErrServerClosed)
		is.Equal(recv(t, done), ErrServerClosed)
	})
	t.Run("ctx already done", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		s := srvListen(t, "tcp", "127.0.0.1:0", srvEcho)
		ctx, cancel := context.WithCancel(testCtx(t))
		cancel()
		is.Equal(s.Serve(ctx), context.Canceled)
		is.True(!s.IsServing())
		is.Equal(s.Serve(ctx), ErrServerClosed) // closed wins over ctx
	})
}

func TestStartServing(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	ran := make(chan struct{}, 1)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		ran <- struct{}{}
		return srvEcho(ctx, c)
	}, WithStartServing(false))
	is.True(!s.IsServing())
	c := srvDial(t, s.Addrs()[0]) // waits in the backlog
	quietFor(t, ran, 50*time.Millisecond, "a handler before StartServing")

	is.NoErr(s.StartServing())
	is.NoErr(s.StartServing()) // idempotent
	is.True(s.IsServing())
	recv(t, ran)
	is.Equal(srvRoundTrip(t, c, "queued"), "queued")

	is.NoErr(s.Close())
	is.Equal(s.StartServing(), ErrServerClosed)
	is.True(!s.IsServing())
}

func TestMaxConnsHoldsTheCount(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	var mu sync.Mutex
	active, peak := 0, 0
	started := make(chan string, 3)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		mu.Lock()
		active++
		peak = max(peak, active)
		mu.Unlock()
		defer func() { mu.Lock(); active--; mu.Unlock() }()
		name, err := c.ReadLine(ctx)
		if err != nil {
			return err
		}
		started <- strings.TrimSpace(string(name))
		_, err = c.ReadAll(ctx) // until the client leaves
		return err
	}, WithMaxConns(2))

	clients := map[string]net.Conn{}
	for _, name := range []string{"a", "b"} {
		clients[name] = srvDial(t, s.Addrs()[0])
		io.WriteString(clients[name], name+"\n")
		recv(t, started)
	}
	third := srvDial(t, s.Addrs()[0]) // connects into the backlog
	io.WriteString(third, "c\n")
	quietFor(t, started, 100*time.Millisecond, "a third handler at the cap")

	clients["a"].Close()
	is.Equal(recv(t, started), "c")
	mu.Lock()
	defer mu.Unlock()
	is.Equal(peak, 2)
}

func TestShutdown(t *testing.T) {
	t.Run("graceful", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		payload := bytes.Repeat([]byte("y"), 16<<20) // more than the kernel buffers
		wrote := make(chan struct{})
		s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
			if _, err := c.Write(payload); err != nil {
				return err
			}
			close(wrote)
			<-ctx.Done()
			return nil
		}, WithWriteBufferLimits(32<<20, 0))
		addr := s.Addrs()[0]
		c := srvDial(t, addr)
		recv(t, wrote)

		done := make(chan error, 1)
		go func() { done <- s.Shutdown(testCtx(t)) }()
		// Listeners first: while the client has not read, the flush holds
		// Shutdown, and no new connection is accepted.
		quietFor(t, done, 50*time.Millisecond, "Shutdown before the flush")
		_, err := net.Dial("tcp", addr.String())
		is.True(errors.Is(err, errConnRefused))
		got, err := io.ReadAll(c)
		is.NoErr(err)
		is.Equal(len(got), len(payload)) // nothing queued was lost
		is.NoErr(recv(t, done))
	})
	t.Run("ctx ends first", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		release := make(chan struct{})
		started := make(chan struct{})
		s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
			close(started)
			<-release // watches neither ctx nor c
			return nil
		})
		c := srvDial(t, s.Addrs()[0])
		recv(t, started)
		short, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
		defer cancel()
		is.Equal(s.Shutdown(short), context.DeadlineExceeded)
		_, err := c.Read(make([]byte, 1))
		is.True(err != nil) // aborted, though its handler runs on
		close(release)
		is.NoErr(s.WaitClosed(testCtx(t)))
	})
}

// flakyListener fails its first Accepts with EMFILE, as a process out of file
// descriptors would, and reports every call on calls.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
	calls    chan struct{}
}

func newFlakyListener(t *testing.T, failures int32) *flakyListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &flakyListener{Listener: ln, calls: make(chan struct{}, 100)}
	l.failures.Store(failures)
	return l
}

func (l *flakyListener) Accept() (net.Conn, error) {
	select {
	case l.calls <- struct{}{}:
	default:
	}
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errTooManyFiles)}
	}
	return l.Listener.Accept()
}

func TestAcceptErrorsBackOff(t *testing.T) {
	t.Run("then serves", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		flaky := newFlakyListener(t, 4)
		logger, logs := srvLogger()
		s, err := NewServer(flaky, srvEcho, WithLogger(logger))
		is.NoErr(err)
		defer srvShutdown(t, s)

		c := srvDial(t, flaky.Addr())
		is.Equal(srvRoundTrip(t, c, "after EMFILE"), "after EMFILE")
		log := logs.String()
		is.Equal(strings.Count(log, "sluice: accept error; retrying"), 4)
		is.True(strings.Contains(log, errTooManyFiles.Error()))
		for _, d := range []string{"delay=5ms", "delay=10ms", "delay=20ms", "delay=40ms"} {
			is.True(strings.Contains(log, d)) // doubling pauses, not a spin
		}
	})
	t.Run("Close ends the backoff", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		broken := newFlakyListener(t, 1<<30)
		logger, _ := srvLogger()
		s, err := NewServer(broken, srvEcho, WithLogger(logger))
		is.NoErr(err)
		for range 6 { // 5+10+20+40+80 ms of pauses
			recv(t, broken.calls)
		}
		is.NoErr(s.Close()) // the loop is in a 160 ms pause
		is.NoErr(s.WaitClosed(testCtx(t)))
		is.True(len(broken.calls) <= 1) // at most one more Accept: no spinning
	})
}

func TestLifecycleConcurrently(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	s := srvListen(t, "tcp", "127.0.0.1:0", srvEcho, WithStartServing(false))
	for range 4 {
		srvDial(t, s.Addrs()[0])
	}
	calls := []func() error{
		func() error { return s.StartServing() },
		func() error { s.IsServing(); s.Addrs(); return nil },
		func() error { s.CloseClients(); return nil },
		func() error { s.AbortClients(); return nil },
		s.Close,
		func() error { return s.Shutdown(testCtx(t)) },
		func() error { return s.WaitClosed(testCtx(t)) },
		func() error { return s.Serve(testCtx(t)) },
	}
	var wg sync.WaitGroup
	for range 3 {
		for _, call := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := call(); err != nil && err != ErrServerClosed {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	is.True(!s.IsServing())
}

// brokenListener fails every Accept with err.
type brokenListener struct {
	net.Listener
	err error
}

func (l *brokenListener) Accept() (net.Conn, error) { return nil, l.err }

// An accept error that is not temporary is not retried forever, as net/http's
// Serve does not: the Server closes, and Serve returns the error. A listener
// closed behind the Server's back is such an error.
func TestAcceptErrorEndsServe(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"unknown error", errors.New("sluice test: the listener is broken")},
		{"closed behind the Server's back", net.ErrClosed},
		{"EINVAL", &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EINVAL)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvNoLeaks(t)
			is := is.New(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			is.NoErr(err)
			logger, logs := srvLogger()
			s, err := NewServer(&brokenListener{ln, tc.err}, srvEcho, WithLogger(logger))
			is.NoErr(err)
			err = s.Serve(testCtx(t))
			is.True(errors.Is(err, tc.err))
			is.True(!s.IsServing())
			is.NoErr(s.WaitClosed(testCtx(t)))
			is.Equal(strings.Count(logs.String(), "sluice: accept error; retrying"), 0)
			is.True(strings.Contains(logs.String(), "sluice: accept failed; closing the server"))
		})
	}
}

// A handler's ctx is cancelled as soon as its Conn is closed by anyone: a
// handler blocked in ReadLine(ctx) returns during CloseClients even while the
// flush is stuck, and one waiting on ctx.Done() returns when another goroutine
// aborts its Conn.
func TestHandlerContextFollowsConn(t *testing.T) {
	t.Run("CloseClients while the flush is stuck", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		returned := make(chan error, 1)
		queued := make(chan struct{}, 1)
		s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
			c.Write(bytes.Repeat([]byte("q"), 8<<20)) // far more than the socket buffers hold
			queued <- struct{}{}
			_, err := c.ReadLine(ctx)
			returned <- err
			return err
		})
		srvDial(t, s.Addrs()[0]) // never reads
		recv(t, queued)
		s.CloseClients() // its flush waits up to the 30 s close timeout
		is.True(errors.Is(recv(t, returned), net.ErrClosed))
		s.AbortClients()
	})
	t.Run("Abort by another goroutine", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		conns := make(chan *Conn, 1)
		returned := make(chan error, 1)
		s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
			conns <- c
			<-ctx.Done()
			returned <- ctx.Err()
			return nil
		})
		srvDial(t, s.Addrs()[0])
		recv(t, conns).Abort()
		is.True(errors.Is(recv(t, returned), context.Canceled))
	})
}

// A failed TLS handshake is logged at Info with the peer and the reason; a
// peer that just goes away stays at Debug.
func TestTLSHandshakeFailureIsLogged(t *testing.T) {
	is := is.New(t)
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := Listen(testCtx(t), "tcp", "127.0.0.1:0", func(context.Context, *Conn) error { return nil },
		WithTLS(serverTLS()), WithLogger(logger))
	is.NoErr(err)
	nc, err := net.Dial("tcp", srv.Addrs()[0].String())
	is.NoErr(err)
	nc.Write([]byte("GET / HTTP/1.0\r\n\r\n")) // not TLS
	io.Copy(io.Discard, nc)
	nc.Close()
	gone, err := net.Dial("tcp", srv.Addrs()[0].String())
	is.NoErr(err)
	gone.Close() // went away: Debug
	is.NoErr(srv.Shutdown(testCtx(t)))
	out := logs.String()
	is.True(strings.Contains(out, "level=INFO"))
	is.True(strings.Contains(out, "TLS handshake"))
	is.True(strings.Contains(out, nc.LocalAddr().String()))
	if n := strings.Count(out, "msg=\"sluice: TLS handshake failed\""); n != 1 { // the peer that went away is not logged at Info
		t.Fatalf("%d handshake failures logged at Info:\n%s", n, out)
	}
}

// A Write from another goroutine while a handler's loop body waits on
// something else goes out through the Server's sweeper, with no timer of the
// Conn's own; when the Server closes, the sweeper's last look sends what is
// left, and later Writes arm the Conn's own timer.
func TestServerSweepsLoopWrites(t *testing.T) {
	is := is.New(t)
	conns := make(chan *Conn, 1)
	release := make(chan struct{})
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		for _, err := range c.Lines(ctx) {
			if err == nil {
				conns <- c
				<-release // the body waits on something else
			}
			return err
		}
		return nil
	})
	defer close(release) // before the cleanup's Shutdown
	peer := srvDial(t, s.Addrs()[0])
	_, err := peer.Write([]byte("go\n"))
	is.NoErr(err)
	c := recv(t, conns)
	rd := bufio.NewReader(peer)
	timer := func() *time.Timer {
		q := c.wq.Load()
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.timer
	}
	for _, step := range []string{"swept", "at close", "after close"} {
		if step == "after close" {
			// The writer the last look started has ended (the queue is
			// empty): a Write now is the Conn's own to schedule.
			ended := make(chan struct{})
			go func() { c.wq.Load().wg.Wait(); close(ended) }()
			recv(t, ended)
		}
		_, err = c.Write([]byte(step + "\n")) // another goroutine writes
		is.NoErr(err)
		if step == "at close" {
			is.NoErr(s.Close()) // the sweeper ends with a last look
		}
		line, err := rd.ReadString('\n') // bounded by srvDial's deadline
		is.NoErr(err)
		is.Equal(line, step+"\n")
		is.Equal(timer() != nil, step == "after close") // the Conn's own timer only once the sweeper has ended
	}
}
