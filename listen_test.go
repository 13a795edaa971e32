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
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// logBuffer collects what a Server logs, for a test to read while handlers may
// still be logging.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// srvLogger returns a Debug-level text logger into a buffer the test can read.
func srvLogger() (*slog.Logger, *logBuffer) {
	buf := new(logBuffer)
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// srvNoLeaks fails the test if it leaves a goroutine behind. Call it first, so
// that its check runs after every other cleanup.
func srvNoLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// srvEcho echoes every line back.
func srvEcho(ctx context.Context, c *Conn) error {
	for line, err := range c.Lines(ctx) {
		if err != nil {
			return err
		}
		if _, err := c.Writev(line, []byte{'\n'}); err != nil {
			return err
		}
	}
	return nil
}

// srvListen starts a server on a loopback port, shut down at cleanup.
func srvListen(t *testing.T, network, address string, h Handler, opts ...Option) *Server {
	t.Helper()
	s, err := Listen(testCtx(t), network, address, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srvShutdown(t, s) })
	return s
}

func srvShutdown(t *testing.T, s *Server) {
	t.Helper()
	if err := s.Shutdown(testCtx(t)); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Errorf("shutdown: %v", err)
	}
	if err := s.WaitClosed(testCtx(t)); err != nil {
		t.Errorf("wait closed: %v", err)
	}
}

// srvDial connects to addr, closing the connection at cleanup.
func srvDial(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(addr.Network(), addr.String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	return c
}

// srvRoundTrip sends a line on c and returns the line that comes back.
func srvRoundTrip(t *testing.T, c net.Conn, line string) string {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("round trip %q: %v", line, err)
	}
	return strings.TrimSuffix(got, "\n")
}

// srvTempSocket returns a Unix socket path in a fresh short directory.
func srvTempSocket(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

func srvNeedIPv6(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
}

// waitFor receives from ch, failing the test after testTimeout.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// quietFor checks that nothing arrives on ch for d: a bounded wait for
// something that must not happen.
func quietFor[T any](t *testing.T, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s happened", what)
	case <-time.After(d):
	}
}

func TestListenNetworks(t *testing.T) {
	tests := []struct {
		name, network, address string
		ipv6                   bool
	}{
		{"tcp", "tcp", "127.0.0.1:0", false},
		{"tcp4", "tcp4", "127.0.0.1:0", false},
		{"tcp6", "tcp6", "[::1]:0", true},
		{"tcp host name", "tcp4", "localhost:0", false},
		{"unix", "unix", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srvNoLeaks(t)
			is := is.New(t)
			if tt.ipv6 {
				srvNeedIPv6(t)
			}
			if tt.network == "unix" {
				tt.address = srvTempSocket(t)
			}
			s := srvListen(t, tt.network, tt.address, srvEcho)
			is.True(s.IsServing())
			addrs := s.Addrs()
			is.Equal(len(addrs), 1)
			if tt.network == "unix" {
				is.Equal(addrs[0].String(), tt.address)
			} else {
				is.True(addrs[0].(*net.TCPAddr).Port != 0) // port 0 resolved
			}
			c := srvDial(t, addrs[0])
			is.Equal(srvRoundTrip(t, c, "hello "+tt.name), "hello "+tt.name)
		})
	}
}

func TestListenEveryInterface(t *testing.T) {
	srvNoLeaks(t)
	srvNeedIPv6(t)
	is := is.New(t)
	s := srvListen(t, "tcp", ":0", srvEcho)
	addrs := s.Addrs()
	is.Equal(len(addrs), 2) // one socket per family, as asyncio
	v4, v6 := addrs[0].(*net.TCPAddr), addrs[1].(*net.TCPAddr)
	is.True(v4.IP.Equal(net.IPv4zero))
	is.True(v6.IP.Equal(net.IPv6unspecified))
	is.True(v4.Port != 0)
	is.Equal(v4.Port, v6.Port) // port 0: both on the port the first got
	for _, host := range []string{"127.0.0.1", "::1"} {
		c := srvDial(t, &net.TCPAddr{IP: net.ParseIP(host), Port: v4.Port})
		is.Equal(srvRoundTrip(t, c, "via "+host), "via "+host)
	}

	t.Run("tcp4 only", func(t *testing.T) {
		is := is.New(t)
		s := srvListen(t, "tcp4", ":0", srvEcho)
		is.Equal(len(s.Addrs()), 1)
		is.True(s.Addrs()[0].(*net.TCPAddr).IP.To4() != nil)
	})
}

func TestListenErrors(t *testing.T) {
	srvNoLeaks(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name, network, address string
		h                      Handler
		opts                   []Option
		is                     error
	}{
		{"unknown network", "udp", "127.0.0.1:0", srvEcho, nil, nil},
		{"nil handler", "tcp", "127.0.0.1:0", nil, nil, nil},
		{"bad option", "tcp", "127.0.0.1:0", srvEcho, []Option{WithBacklog(0)}, nil},
		{"no port", "tcp", "127.0.0.1", srvEcho, nil, nil},
		{"address in use", "tcp", taken.Addr().String(), srvEcho, nil, syscall.EADDRINUSE},
		{"wrong family", "tcp6", "127.0.0.1:0", srvEcho, nil, nil},
		{"empty unix path", "unix", "", srvEcho, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			s, err := Listen(testCtx(t), tt.network, tt.address, tt.h, tt.opts...)
			is.True(err != nil)
			is.True(s == nil)
			is.True(strings.HasPrefix(err.Error(), "sluice: ") || strings.HasPrefix(err.Error(), "listen "))
			if tt.is != nil {
				is.True(errors.Is(err, tt.is))
			}
		})
	}
	t.Run("NewServer", func(t *testing.T) {
		is := is.New(t)
		_, err := NewServer(nil, srvEcho)
		is.True(err != nil)
		_, err = NewServer(taken, nil)
		is.True(err != nil)
		_, err = NewServer(taken, srvEcho, WithMaxConns(-1))
		is.True(err != nil)
	})
}

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
	is.Equal(waitFor(t, got, "handler"), "from Listen")
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
	is.True(strings.Contains(log, "listen_test.go")) // the stack
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
	for i := range 3 {
		waitFor(t, returned, fmt.Sprint("handler ", i))
	}
	srvShutdown(t, s) // every log line is written when WaitClosed returns

	log := logs.String()
	is.True(strings.Contains(log, `level=ERROR msg="sluice: handler error" peer=`+bad.LocalAddr().String()+` err="bad request`))
	is.True(strings.Contains(log, `level=DEBUG msg="sluice: handler error" peer=`+quiet.LocalAddr().String()+" err=EOF"))
	is.True(strings.Contains(log, `level=DEBUG msg="sluice: handler error" peer=`+reset.LocalAddr().String()))
	is.True(strings.Contains(log, "connection reset by peer"))
	is.Equal(strings.Count(log, "level=ERROR"), 1)
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
		got <- seen{c.accepted, c.q.high, c.q.low, err}
		return nil
	}, WithLimit(8), WithWriteBufferLimits(1000, 10))
	c := srvDial(t, s.Addrs()[0])
	io.WriteString(c, "longer than eight\n")
	v := waitFor(t, got, "handler")
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
		raw.Control(func(fd uintptr) {
			v[0], _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
			v[1], _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
			v[2], _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
		})
		got <- v
		return nil
	}, WithKeepAlive(net.KeepAliveConfig{Enable: true, Idle: 7 * time.Second, Interval: 3 * time.Second, Count: 4}))
	srvDial(t, s.Addrs()[0])
	is.Equal(waitFor(t, got, "handler"), [3]int{7, 3, 4})
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
	is.True(errors.Is(err, syscall.ECONNREFUSED))  // no longer accepting
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
	waitFor(t, started, "first handler")
	waitFor(t, started, "second handler")

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
	is.NoErr(waitFor(t, waited, "WaitClosed"))
	is.NoErr(waitFor(t, waited, "WaitClosed"))
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
	waitFor(t, wrote, "handler's write")

	s.CloseClients()
	s.CloseClients() // idempotent
	is.Equal(waitFor(t, ctxErr, "handler's ctx"), context.Canceled)
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
	waitFor(t, started, "handler")
	s.AbortClients()
	s.AbortClients()
	is.True(errors.Is(waitFor(t, handlerErr, "handler"), net.ErrClosed))
	_, err := c.Read(make([]byte, 1))
	is.True(err != nil) // EOF or reset
	is.True(s.IsServing())
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
		is.Equal(waitFor(t, done, "Serve"), context.Canceled)
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
		is.Equal(waitFor(t, done, "Serve"), ErrServerClosed)
		is.Equal(waitFor(t, done, "Serve"), ErrServerClosed)
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
	waitFor(t, ran, "handler")
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
		waitFor(t, started, "handler "+name)
	}
	third := srvDial(t, s.Addrs()[0]) // connects into the backlog
	io.WriteString(third, "c\n")
	quietFor(t, started, 100*time.Millisecond, "a third handler at the cap")

	clients["a"].Close()
	is.Equal(waitFor(t, started, "third handler"), "c")
	mu.Lock()
	defer mu.Unlock()
	is.Equal(peak, 2)
}

func TestReusePort(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	serverID := func(id string) Handler {
		return func(ctx context.Context, c *Conn) error {
			_, err := io.WriteString(c, id)
			return err
		}
	}
	a := srvListen(t, "tcp4", "127.0.0.1:0", serverID("a"), WithReusePort(true))
	addr := a.Addrs()[0].String()
	b := srvListen(t, "tcp4", addr, serverID("b"), WithReusePort(true))
	is.Equal(b.Addrs()[0].String(), addr)

	_, err := Listen(testCtx(t), "tcp4", addr, srvEcho) // without it: taken
	is.True(errors.Is(err, syscall.EADDRINUSE))

	seen := map[string]int{}
	for range 32 {
		c := srvDial(t, a.Addrs()[0])
		id, err := io.ReadAll(c)
		is.NoErr(err)
		seen[string(id)]++
		c.Close()
	}
	is.Equal(len(seen), 2) // the kernel spread the clients over both
	t.Logf("connections per server: %v", seen)
}

func TestBacklogReachesListen(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the accept queue's bound is Linux's: backlog+1")
	}
	srvNoLeaks(t)
	is := is.New(t)
	s := srvListen(t, "tcp4", "127.0.0.1:0", srvEcho, WithBacklog(1), WithStartServing(false))
	// Nothing accepts: the kernel completes backlog+1 handshakes, then drops
	// SYNs, so a later dial times out.
	var queued []net.Conn
	for range 3 {
		c, err := net.DialTimeout("tcp4", s.Addrs()[0].String(), 250*time.Millisecond)
		if err != nil {
			var ne net.Error
			is.True(errors.As(err, &ne) && ne.Timeout())
			break
		}
		defer c.Close()
		queued = append(queued, c)
	}
	t.Logf("%d connections queued with backlog 1", len(queued))
	is.True(len(queued) >= 1 && len(queued) < 3)

	is.NoErr(s.StartServing())
	for i, c := range queued {
		c.SetDeadline(time.Now().Add(testTimeout))
		msg := fmt.Sprint("queued ", i)
		is.Equal(srvRoundTrip(t, c, msg), msg)
	}
}

func TestUnixSocketFile(t *testing.T) {
	t.Run("removed on close", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		path := srvTempSocket(t)
		s := srvListen(t, "unix", path, srvEcho)
		fi, err := os.Stat(path)
		is.NoErr(err)
		is.True(fi.Mode()&os.ModeSocket != 0)
		is.NoErr(s.Close())
		_, err = os.Stat(path)
		is.True(errors.Is(err, os.ErrNotExist))
	})
	t.Run("replaced file is kept", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		path := srvTempSocket(t)
		s := srvListen(t, "unix", path, srvEcho)
		is.NoErr(os.Remove(path))
		is.NoErr(os.WriteFile(path, []byte("someone else's"), 0o600))
		is.NoErr(s.Close())
		data, err := os.ReadFile(path)
		is.NoErr(err)
		is.Equal(string(data), "someone else's")
	})
	t.Run("stale socket is replaced", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		path := srvTempSocket(t)
		dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		is.NoErr(err)
		dead.SetUnlinkOnClose(false)
		dead.Close() // as a crashed process leaves it
		_, err = os.Stat(path)
		is.NoErr(err)
		s := srvListen(t, "unix", path, srvEcho)
		c := srvDial(t, s.Addrs()[0])
		is.Equal(srvRoundTrip(t, c, "fresh"), "fresh")
	})
	t.Run("live socket is kept", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		path := srvTempSocket(t)
		live, err := net.Listen("unix", path)
		is.NoErr(err)
		defer live.Close()
		_, err = Listen(testCtx(t), "unix", path, srvEcho)
		is.True(errors.Is(err, syscall.EADDRINUSE))
		c, err := net.Dial("unix", path) // still the live one's
		is.NoErr(err)
		c.Close()
	})
	t.Run("other file is kept", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		path := srvTempSocket(t)
		is.NoErr(os.WriteFile(path, []byte("data"), 0o600))
		_, err := Listen(testCtx(t), "unix", path, srvEcho)
		is.True(errors.Is(err, syscall.EADDRINUSE))
		data, err := os.ReadFile(path)
		is.NoErr(err)
		is.Equal(string(data), "data")
	})
	t.Run("abstract", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("abstract sockets are Linux's")
		}
		srvNoLeaks(t)
		is := is.New(t)
		name := fmt.Sprintf("@sluice-test-%d-%d", os.Getpid(), time.Now().UnixNano())
		s := srvListen(t, "unix", name, srvEcho)
		c := srvDial(t, s.Addrs()[0])
		is.Equal(srvRoundTrip(t, c, "abstract"), "abstract")
	})
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
		waitFor(t, wrote, "handler's write")

		done := make(chan error, 1)
		go func() { done <- s.Shutdown(testCtx(t)) }()
		// Listeners first: while the client has not read, the flush holds
		// Shutdown, and no new connection is accepted.
		quietFor(t, done, 50*time.Millisecond, "Shutdown before the flush")
		_, err := net.Dial("tcp", addr.String())
		is.True(errors.Is(err, syscall.ECONNREFUSED))
		got, err := io.ReadAll(c)
		is.NoErr(err)
		is.Equal(len(got), len(payload)) // nothing queued was lost
		is.NoErr(waitFor(t, done, "Shutdown"))
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
		waitFor(t, started, "handler")
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
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
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
		is.True(strings.Contains(log, "too many open files"))
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
		for i := range 6 { // 5+10+20+40+80 ms of pauses
			waitFor(t, broken.calls, fmt.Sprint("Accept ", i))
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
