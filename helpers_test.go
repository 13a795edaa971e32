package sluice

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// testTimeout bounds every wait in the tests, so a bug fails fast instead of
// hanging CI.
const testTimeout = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// tcpPair returns both ends of a loopback TCP connection, closed at cleanup.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = net.DialTimeout("tcp", ln.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		client.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// connPair returns a Conn over loopback TCP and the raw peer.
func connPair(t testing.TB, opts ...Option) (*Conn, net.Conn) {
	t.Helper()
	a, b := tcpPair(t)
	c := NewConn(a, opts...)
	t.Cleanup(func() { c.Abort() })
	return c, b
}

// feed returns a Conn whose peer writes parts, each a separate write, then
// half-closes (asyncio's feed_data and feed_eof over a real socketpair). The
// writer goroutine ends before the test does.
func feed(t testing.TB, limit int, parts ...string) *Conn {
	t.Helper()
	return feedOpts(t, true, []Option{WithLimit(limit)}, parts...)
}

// feedOpts is feed with options, and with eof false the peer stays open until
// cleanup.
func feedOpts(t testing.TB, eof bool, opts []Option, parts ...string) *Conn {
	t.Helper()
	c, peer, err := Pipe(opts...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range parts {
			if _, err := peer.NetConn().Write([]byte(p)); err != nil {
				return
			}
		}
		if eof {
			peer.NetConn().(interface{ CloseWrite() error }).CloseWrite()
		}
	}()
	t.Cleanup(func() {
		c.Abort()
		peer.Abort()
		<-done
	})
	total := 0
	for _, p := range parts {
		total += len(p)
	}
	if total < 32<<10 {
		// Small inputs fit the socket buffer: wait until all of it is there, so
		// the cases whose asyncio outcome depends on what is buffered (the
		// limit's cleanup) are deterministic.
		<-done
	}
	return c
}

// rest reads everything left on c up to EOF.
func rest(t testing.TB, c *Conn) string {
	t.Helper()
	b, err := c.ReadAll(testCtx(t))
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return string(b)
}

// acceptedConn returns a Conn over nc as a Server makes one, so that StartTLS
// takes the server side. It panics if an option is invalid, as NewConn does.
func acceptedConn(nc net.Conn, opts ...Option) *Conn {
	cfg, err := newConfig(opts)
	if err != nil {
		panic(err)
	}
	return newConn(nc, cfg, connOptions{accepted: true})
}

// recv waits for one value from ch, failing the test after testTimeout.
func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

// quietFor checks that nothing arrives on ch for d: a bounded wait for
// something that must not happen.
func quietFor[T any](t testing.TB, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s happened", what)
	case <-time.After(d):
	}
}

// slow skips a test that spends seconds waiting on timers or paced writes
// under -short (go test -short ./... stays within half a minute); .ci/run
// runs them all.
func slow(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("seconds of timed waits: run without -short")
	}
}

// waitUntil polls cond until it holds, failing the test after testTimeout. It
// is for states that leave no other trace, such as a goroutine blocked inside
// the package.
func waitUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out polling")
		}
		runtime.Gosched()
	}
}

// inGoroutine reports whether some goroutine's stack holds every one of
// parts: where a goroutine inside the package is blocked, for waitUntil.
func inGoroutine(parts ...string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(g, p)
		}
		if all {
			return true
		}
	}
	return false
}

// needIPv6 skips the test where the system has no IPv6 loopback.
func needIPv6(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
}

// serveRaw returns a goroutine-per-connection server of plain net.Conns
// running handle, which closes each connection when handle returns; stop
// closes the listener and waits for every goroutine.
func serveRaw(handle func(net.Conn)) func(net.Listener) (stop func()) {
	return func(ln net.Listener) func() {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer nc.Close()
					handle(nc)
				}()
			}
		}()
		return func() { ln.Close(); wg.Wait() }
	}
}

// silentListener accepts connections and never writes to them, holding them
// open until cleanup.
func silentListener(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	quit := make(chan struct{})
	stop := serveRaw(func(net.Conn) { <-quit })(ln)
	t.Cleanup(func() { close(quit); stop() })
	return ln.Addr().String()
}

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
