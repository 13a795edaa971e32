package sluice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// errClosed is returned after the Conn's own Close or Abort. It matches
// net.ErrClosed.
var errClosed = fmt.Errorf("sluice: %w", net.ErrClosed)

// Conn is a stream connection (asyncio's StreamReader and StreamWriter pair): a
// net.Conn with buffered, context-taking reads (ReadLine, ReadUntil,
// ReadExactly, Lines, Frames, ...) and writes that go through a bounded,
// byte-counted queue (Write, Drain, Flush).
//
// A Conn owns its net.Conn. One goroutine reads at a time; writes, Drain, Flush,
// Close, Stats and the deadline setters are safe from any goroutine. A quiet Conn
// holds no goroutine and no write buffer, and over a Unix socket (TCP, Unix) no
// read buffer either; a Conn that has never written holds no write queue.
type Conn struct {
	rd    Reader                     // the reading half
	wq    atomic.Pointer[writeQueue] // the writing half: made when first needed (see queue), never replaced
	reads readerState                // what the reads and the write queue tell each other
	clock *activity                  // WithIdleTimeout's and WithMessageTimeout's clock (timeout.go), or nil
	raw   net.Conn                   // the connection as dialled or accepted; never changes
	cfg   *config                    // shared with the Server or Dial that made it; read-only
	extra *connExtra                 // what few Conns have from the start, or nil
	later atomic.Pointer[connLater]  // what some Conns come to need (handlerctx.go): made on first use, never replaced
	nread atomic.Int64               // bytes read (Stats)

	tearOnce sync.Once
	accepted bool // made by a Server: StartTLS takes the server side
	ended    bool // teardown is done; guarded by the queue's mu
}

// readerState is what a Conn's reads and its write queue tell each other (see
// writeQueue): whether the Conn has been read, whether a read is waiting for
// data now, whether an iterator loop runs; and whether a Write left what it
// queued for the next read to send. The Conn keeps it, not the queue: a queue
// made later knows it, and a read finds out that it has nothing to send in
// the Conn itself. One word, so that of a Write that sets forReader and a
// read that sets readerWaiting, each an atomic read-modify-write of it, the
// second sees the first: the read sends, or the Write starts the writer.
type readerState struct{ bits atomic.Uint32 }

const (
	readerUsed    uint32 = 1 << iota // the Conn has been read
	readerWaiting                    // a read is waiting for data
	readerLooping                    // a Lines, Frames or Chunks loop runs
	forReader                        // a Write left its bytes for the next read
)

func (s *readerState) has(b uint32) bool { return s.bits.Load()&b != 0 }

// set turns b on or off and returns the bits as they are now; it writes only
// where b changes.
func (s *readerState) set(b uint32, on bool) uint32 {
	v := s.bits.Load()
	switch {
	case on && v&b == 0:
		return s.bits.Or(b) | b
	case !on && v&b != 0:
		return s.bits.And(^b) &^ b
	}
	return v
}

// connExtra is what a Conn has only where it was dialled or is behind a PROXY
// protocol header: kept apart, so that the many accepted Conns of a Server
// are smaller.
type connExtra struct {
	host          string   // the host Dial dialled: TLS's default server name
	remote, local net.Addr // the addresses a PROXY protocol header carried, or nil
}

// connOptions is what the maker of a Conn (Dial, a Server) tells it at
// construction.
type connOptions struct {
	accepted bool     // made by a Server: StartTLS takes the server side
	host     string   // the host Dial dialled: TLS's default server name
	pre      []byte   // bytes read off nc before the Conn was made (behind a PROXY header): its first data
	remote   net.Addr // the peer's address to report instead of nc's (a PROXY header's), or nil
	local    net.Addr // likewise for the local address
}

// NewConn returns a Conn over nc (asyncio's open_connection(sock=)) and takes
// ownership of it: Close closes nc. NewConn panics if an option is invalid.
func NewConn(nc net.Conn, opts ...Option) *Conn {
	cfg, err := newConfig(opts)
	if err != nil {
		panic(err)
	}
	return newConn(nc, cfg, connOptions{})
}

func newConn(nc net.Conn, cfg *config, o connOptions) *Conn {
	c := &Conn{raw: nc, cfg: cfg, accepted: o.accepted}
	if o.host != "" || o.remote != nil || o.local != nil {
		c.extra = &connExtra{o.host, o.remote, o.local}
	}
	c.clock = newActivity(cfg, c)
	c.rd.init(nc, cfg.limit, c)
	c.rd.sticky = true
	c.rd.sock = newRawSock(nc, c)
	if len(o.pre) > 0 {
		c.rd.buf = append(readBufs.get(len(o.pre))[:0], o.pre...)
		c.rd.w = len(o.pre)
		c.nread.Add(int64(len(o.pre)))
	}
	if c.clock != nil {
		c.clock.begin() // last: the timer's abort reads what is set above
	}
	return c
}

// queue returns the Conn's write queue, making it on first use: by a write,
// Close, or anything else that needs it. Until then a Conn is 288 B smaller,
// which is what a Server's many read-only or not yet answered connections
// save. Where two goroutines make one at once, the first one stored wins.
func (c *Conn) queue() *writeQueue {
	if q := c.wq.Load(); q != nil {
		return q
	}
	return c.makeQueue()
}

// makeQueue is queue's first use, apart so that queue inlines. It may run on
// any goroutine, so it reads the socket under the Reader's dmu, as StartTLS
// swaps it (StartTLS makes the queue first: one made by a goroutine that
// loses the race to store it is dropped).
func (c *Conn) makeQueue() *writeQueue {
	c.rd.dmu.Lock()
	sock := c.rd.sock
	if sock != nil {
		sock.bindSend()
	}
	c.rd.dmu.Unlock()
	q := &writeQueue{out: c.raw, sock: sock, high: c.cfg.high, low: c.cfg.low, clock: c.clock, reads: &c.reads,
		sweeper:   c.cfg.sweep, // a Server's config has one, and only its Conns have that config
		lastBatch: firstBatchShift}
	if c.wq.CompareAndSwap(nil, q) {
		return q
	}
	return c.wq.Load()
}

// sendNow sends what a Write left for the Conn's reads (forReader), if
// anything: the reading goroutine calls it before a read from the socket (the
// reply it is about to wait for may need the request sent first), and Drain
// calls it. It is a load of the Conn's readerState where there is nothing to
// send.
func (c *Conn) sendNow() {
	if c.reads.has(forReader) { // only a queue sets it
		c.wq.Load().sendQueued()
	}
}

// Pipe returns two Conns connected to each other over a socket pair
// (socket.socketpair() with asyncio's open_connection(sock=)): a real socket,
// with kernel buffering and half-close (WriteEOF), unlike net.Pipe.
//
// On Linux, macOS and FreeBSD the pair is a socketpair(2) of AF_UNIX stream
// sockets, close-on-exec. Windows has no socketpair: Pipe listens on an AF_UNIX
// socket file in a new temporary directory, dials it and accepts, and removes
// the file and the directory before it returns (AF_UNIX needs Windows 10
// version 1803 or later); where that fails, it does the same on loopback TCP,
// taking only the connection whose far end it dialled, as CPython's
// socket.socketpair does there. Both kinds half-close.
//
// Errors: an invalid option; the system's, prefixed "sluice: pipe: " (on
// Windows, both attempts' joined).
func Pipe(opts ...Option) (*Conn, *Conn, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, nil, err
	}
	a, b, err := socketPair()
	if err != nil {
		return nil, nil, fmt.Errorf("sluice: pipe: %w", err)
	}
	return newConn(a, cfg, connOptions{}), newConn(b, cfg, connOptions{}), nil
}

// The Conn's read hook (see readHook): its reads send what Writes left for
// them, tell the write queue when a read waits (so that Write knows whether a
// read will come to send what it queues), count what they bring, and feed the
// timeouts' clock. Each is a few atomic loads when there is nothing to do.

func (c *Conn) beforeRead() { c.sendNow() }

func (c *Conn) waiting(msg int64) {
	c.reads.set(readerWaiting, true)
	c.sendNow() // what a Write left since beforeRead
	if c.clock != nil {
		c.clock.waiting(msg)
	}
}

func (c *Conn) afterRead(n int) {
	if v := c.reads.bits.Load(); v&(readerUsed|readerWaiting) != readerUsed {
		c.reads.set(readerWaiting, false)
		c.reads.set(readerUsed, true)
	}
	c.countRead(int64(n))
	if n <= 0 && c.clock != nil {
		c.clock.waitCut()
	}
}

// countRead counts n bytes read from the connection, by the Reader or by
// Relay's splice past it, in Stats and on the timeouts' clock.
func (c *Conn) countRead(n int64) {
	if n > 0 {
		c.nread.Add(n)
		if c.clock != nil {
			c.clock.read()
		}
	}
}

func (c *Conn) eofErr() error {
	if q := c.wq.Load(); q != nil {
		return q.resetErr()
	}
	return nil
}

// sweep is the Server's sweeper looking at c (see sweeper): it reports
// whether bytes are left for c's reads that it will look at again.
func (c *Conn) sweep(final bool) bool {
	q := c.wq.Load()
	if q == nil || !c.reads.has(forReader) {
		return false
	}
	return q.sweep(final)
}

func (c *Conn) looping(on bool) {
	c.reads.set(readerLooping, on)
	if !on {
		c.sendNow() // what the loop's body wrote last: no step is coming to send it
	}
}

// LocalAddr returns the local network address (asyncio's "sockname"): the one a
// PROXY protocol header carried, where the Server read one, else the socket's.
func (c *Conn) LocalAddr() net.Addr {
	if c.extra != nil && c.extra.local != nil {
		return c.extra.local
	}
	return c.raw.LocalAddr()
}

// RemoteAddr returns the peer's network address (asyncio's "peername"): the
// client's as a PROXY protocol header carried it, where the Server read one,
// else the socket's.
func (c *Conn) RemoteAddr() net.Addr {
	if c.extra != nil && c.extra.remote != nil {
		return c.extra.remote
	}
	return c.raw.RemoteAddr()
}

// NetConn returns the connection the Conn was made over (asyncio's "socket"),
// beneath any TLS; behind a PROXY protocol header, its RemoteAddr is the
// proxy's. Reading or writing it directly bypasses the Conn's buffers.
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
	return c.rd.setReadDeadline(t)
}

// Close sends what is queued, then closes the connection (asyncio's close and
// wait_closed in one). Blocked reads, Drains and Writes blocked by the pause fail
// at once with an error matching net.ErrClosed, as do later reads and writes; a
// Server's handler ctx for the Conn is cancelled. The flush is bounded by
// WithCloseTimeout (default 30 s), and by the write deadline where that comes
// first (one set while Close waits applies at once); past it the queued data is
// dropped, the connection is aborted (reset on TCP, as by Abort, so the peer
// cannot take the cut stream for a whole one) and Close reports it. Close
// returns the sticky write error if a send failed (a write error is never
// lost), a timeout error if the flush was cut short, or the close's own error.
// On a Conn closed already (by Close, Abort or a timeout) it returns why: an
// error matching net.ErrClosed, or ErrIdleTimeout or ErrMessageTimeout.
func (c *Conn) Close() error {
	q := c.queue()
	if !q.close(errClosed) {
		return c.closeReason()
	}
	c.rd.shutdown(errClosed)
	c.closing()
	err := q.flushForClose(c.cfg.closeTimeout)
	graceful := !errors.Is(err, os.ErrDeadlineExceeded)
	if !graceful {
		// The flush was cut short and data dropped: abort the connection,
		// so the peer does not take the truncated stream for a whole one.
		c.armReset()
	}
	if cerr := c.teardown(graceful); err == nil {
		err = cerr
	}
	return err
}

// Abort closes the connection at once, dropping whatever is queued (asyncio's
// transport.abort). On TCP it resets the connection (SO_LINGER 0, RFC 9293's
// ABORT), so the peer's reads fail with a reset rather than a clean EOF. Blocked
// and later reads and writes fail with an error matching net.ErrClosed, and a
// Server's handler ctx for the Conn is cancelled. Abort cuts short a Close that
// is still flushing. Safe from any goroutine, and more than once.
func (c *Conn) Abort() { c.abort(errClosed) }

// abort is Abort for reason: the user's (errClosed) or a timeout's.
func (c *Conn) abort(reason error) {
	// Arm the reset before anything that wakes a Close still flushing: its
	// teardown would otherwise close the socket with a clean FIN first.
	c.armReset()
	q := c.queue()
	if q.close(reason) {
		c.rd.shutdown(reason)
		c.closing() // else the winner of q.close does, once rd.closed is set
	}
	q.abort()
	c.raw.Close() // ends a graceful close under way (a TLS close_notify) too
	c.teardown(false)
}

// armReset makes closing the socket reset a TCP connection.
func (c *Conn) armReset() {
	if tc, ok := c.raw.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
}

// closing ends a Server handler's ctx (handlerCtx). Only the closer that won
// q.close calls it, once rd.closed is set: the ctx's Err then reports the end
// that its Done shows.
func (c *Conn) closing() {
	if l := c.later.Load(); l != nil {
		l.endCtx()
	}
}

// endErr is what a wait that ctx's end or the Conn's close cut short reports:
// the close's reason where the Conn is closed (a handler's ctx ends with it),
// else ctx.Err().
func (c *Conn) endErr(ctx context.Context) error {
	if err := c.closeReason(); err != nil {
		return err
	}
	return ctx.Err()
}

// closeReason returns why the Conn is closed, or nil while it is open. A Conn
// with no queue is open: closing makes one.
func (c *Conn) closeReason() error {
	q := c.wq.Load()
	if q == nil {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closeErr
}

// teardown closes the transport, which ends a blocked read or send, and waits
// for the writer goroutine; graceful (Close, not Abort) sends TLS's close_notify
// first. It runs once; later callers wait for it.
func (c *Conn) teardown(graceful bool) error {
	var err error
	c.tearOnce.Do(func() {
		if c.clock != nil {
			c.clock.stop()
		}
		q := c.queue()
		q.tear()
		err = c.closeTransport(graceful)
		q.wg.Wait() // the writer goroutine: closing the transport ended a blocked send
		q.mu.Lock()
		c.ended = true
		if l := c.later.Load(); l != nil && l.closed != nil {
			close(l.closed)
		}
		q.mu.Unlock()
	})
	return err
}

// IsClosing reports whether Close or Abort has been called, or a timeout has
// closed the Conn (asyncio's is_closing).
func (c *Conn) IsClosing() bool {
	return c.closeReason() != nil
}

// WaitClosed blocks until the Conn is closed, by Close or Abort from any
// goroutine or by a timeout, and its writer goroutine has ended (asyncio's
// wait_closed). It returns ctx.Err() if ctx ends first.
func (c *Conn) WaitClosed(ctx context.Context) error {
	q := c.queue()
	q.mu.Lock()
	if c.ended { // nothing to wait for, and no channel to make
		q.mu.Unlock()
		return nil
	}
	l := c.laterState()
	if l.closed == nil { // made on demand: most Conns are never waited for
		l.closed = make(chan struct{})
	}
	done := l.closed
	q.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
