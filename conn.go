package sluice

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Conn is a stream connection (asyncio's StreamReader and StreamWriter pair): a
// net.Conn whose reading half is an embedded Reader (ReadLine, ReadUntil,
// ReadExactly, Lines, Chunks, Frames, ...) and whose writes go through a bounded,
// byte-counted queue drained by a writer goroutine (Write, Drain, Flush).
//
// A Conn owns its net.Conn. One goroutine reads at a time; writes, Drain, Flush,
// Close and the deadline setters are safe from any goroutine. A quiet Conn holds
// no goroutine and no write buffer; its read buffer exists from the first read
// and starts at 512 bytes.
type Conn struct {
	Reader     // the reading half
	q          writeQueue
	raw        net.Conn // the connection as dialled or accepted; never changes
	cfg        *config  // shared with the Server or Dial that made it; read-only
	accepted   bool     // made by a Server: StartTLS defaults to the server side
	tls        tlsState // the TLS layer, once there is one (tls.go)
	teardownMu sync.Once
	done       chan struct{} // closed when the Conn is closed and its writer has ended
}

// Dial connects to address on network ("tcp", "tcp4", "tcp6" or "unix") and
// returns the Conn (asyncio's open_connection and open_unix_connection). A host
// name is resolved and its addresses raced per RFC 8305 (see
// WithHappyEyeballsDelay); with WithTLS the TLS handshake completes before Dial
// returns, verifying the server's certificate for WithServerName's name, else
// the tls.Config's ServerName, else the host part of address. ctx bounds the
// whole dial, the handshake included (which WithTLSHandshakeTimeout bounds too);
// its end afterwards does not affect the Conn. Errors: an invalid option,
// ctx.Err(), the dial's own (joined over every address tried), the handshake's
// (see StartTLS).
func Dial(ctx context.Context, network, address string, opts ...Option) (*Conn, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	nc, err := dialNet(ctx, network, address, cfg)
	if err != nil {
		return nil, err
	}
	c := newConn(nc, cfg)
	if err := c.dialTLS(ctx, address); err != nil {
		return nil, err // c is closed
	}
	return c, nil
}

// NewConn returns a Conn over nc (asyncio's open_connection(sock=)) and takes
// ownership of it: Close closes nc. NewConn panics if an option is invalid.
func NewConn(nc net.Conn, opts ...Option) *Conn {
	cfg, err := newConfig(opts)
	if err != nil {
		panic(err)
	}
	return newConn(nc, cfg)
}

func newConn(nc net.Conn, cfg *config) *Conn {
	c := &Conn{raw: nc, cfg: cfg, done: make(chan struct{})}
	c.Reader.init(nc, cfg)
	c.q.high, c.q.low = cfg.high, cfg.low
	c.q.out = nc
	c.q.writerFn = c.q.drainLoop
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.q.raw, c.q.reader = raw, &c.Reader
			c.q.writeOnceFn = c.q.writeOnceRaw
			c.Reader.beforeBlock = c.q.sendNow
		}
	}
	return c
}

// Pipe returns two Conns connected to each other over a Unix socketpair
// (socket.socketpair() with asyncio's open_connection(sock=)): a real socket, with
// kernel buffering and half-close, unlike net.Pipe.
func Pipe(opts ...Option) (*Conn, *Conn, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, nil, err
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	a, errA := fileConn(fds[0], "sluice-pipe-a")
	b, errB := fileConn(fds[1], "sluice-pipe-b")
	if errA != nil || errB != nil {
		for _, c := range []net.Conn{a, b} {
			if c != nil {
				c.Close()
			}
		}
		return nil, nil, fmt.Errorf("sluice: pipe: %w", firstErr(errA, errB))
	}
	return newConn(a, cfg), newConn(b, cfg), nil
}

// fileConn turns a socket descriptor into a net.Conn and closes the descriptor
// (net.FileConn works on a duplicate).
func fileConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return net.FileConn(f)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// LocalAddr returns the local network address (asyncio's "sockname").
func (c *Conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr returns the peer's network address (asyncio's "peername").
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// NetConn returns the connection the Conn was made over (asyncio's "socket"),
// beneath any TLS. Reading or writing it directly bypasses the Conn's buffers.
func (c *Conn) NetConn() net.Conn { return c.raw }

// ExtraInfo returns transport information by asyncio's get_extra_info names, or
// def when the name is unknown or the information absent: "peername",
// "sockname", "socket", and once the Conn speaks TLS:
//   - "sslcontext": the *tls.Config given to WithTLS or StartTLS (the caller's,
//     not the copy the handshake used);
//   - "ssl_object": the *tls.Conn;
//   - "peercert": the peer's leaf *x509.Certificate, or def if it sent none;
//   - "cipher": a []any{name string, protocol string, secret bits int}, the
//     shape of Python's SSLSocket.cipher(), e.g. {"TLS_AES_128_GCM_SHA256",
//     "TLSv1.3", 128};
//   - "compression": nil, as TLS compression is not supported by Go.
//
// Prefer the typed methods (ConnectionState) in new code. It does not block.
// Safe from any goroutine.
func (c *Conn) ExtraInfo(name string, def any) any {
	switch name {
	case "peername":
		return c.RemoteAddr()
	case "sockname":
		return c.LocalAddr()
	case "socket":
		return c.NetConn()
	}
	if v, ok := c.tlsInfo(name, def); ok {
		return v
	}
	return def
}

// SetDeadline sets both the read and the write deadline (net.Conn).
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline for reads (net.Conn): a read blocked past it
// fails with a timeout error (os.ErrDeadlineExceeded); data already buffered is
// still returned. Context-taking reads honour it too. A zero t means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.Reader.setReadDeadline(t)
}

// transport returns where the Conn reads and writes now: raw, or TLS over it.
func (c *Conn) transport() net.Conn {
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	return c.q.out
}

// CanWriteEOF reports whether WriteEOF can half-close this Conn (asyncio's
// can_write_eof): true over TCP and Unix sockets, false over TLS.
func (c *Conn) CanWriteEOF() bool {
	switch t := c.transport().(type) {
	case *tls.Conn:
		return false
	case interface{ CloseWrite() error }:
		_ = t
		return true
	}
	return false
}

// Close sends what is queued, then closes the connection (asyncio's close and
// wait_closed in one). The flush is bounded by the write deadline if one is set,
// else by WithCloseTimeout (default 30 s); past it the queued data is dropped and
// Close reports it. Writes blocked on a full queue fail at once with an error
// matching net.ErrClosed, as do later reads and writes. Close returns the sticky
// write error if a send failed (a write error is never lost), a timeout error if
// the flush was cut short, or the close's own error. A second Close returns an
// error matching net.ErrClosed.
func (c *Conn) Close() error {
	q := &c.q
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return errClosed
	}
	q.closed = true
	q.broadcastLocked()
	deadline := time.Now().Add(c.cfg.closeTimeout)
	if !q.deadline.IsZero() && q.deadline.Before(deadline) {
		deadline = q.deadline
	}
	err := q.flushLocked(context.Background(), deadline)
	if err == os.ErrDeadlineExceeded {
		err = fmt.Errorf("sluice: close: %d queued bytes dropped: %w", q.size, err)
	}
	q.mu.Unlock()
	if cerr := c.teardown(true); err == nil {
		err = cerr
	}
	return err
}

// Abort closes the connection at once, dropping whatever is queued (asyncio's
// transport.abort).
func (c *Conn) Abort() {
	q := &c.q
	q.mu.Lock()
	q.closed = true
	q.size -= len(q.pending)
	q.pending = q.pending[:0]
	q.broadcastLocked()
	q.mu.Unlock()
	c.teardown(false)
}

// teardown closes the transport, which ends a blocked read or send, and waits
// for the writer goroutine; graceful (Close, not Abort) sends TLS's close_notify
// first. It runs once; later callers wait for it.
func (c *Conn) teardown(graceful bool) error {
	var err error
	c.teardownMu.Do(func() {
		c.Reader.closed.Store(true)
		err = c.closeTransport(graceful)
		c.q.writer.Wait()
		close(c.done)
	})
	return err
}

// IsClosing reports whether Close or Abort has been called (asyncio's
// is_closing).
func (c *Conn) IsClosing() bool {
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	return c.q.closed
}

// WaitClosed blocks until the Conn is closed, by Close or Abort from any
// goroutine, and its writer goroutine has ended (asyncio's wait_closed). It
// returns ctx.Err() if ctx ends first.
func (c *Conn) WaitClosed(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
