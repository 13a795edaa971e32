package sluice

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

// countingConn counts the writes that reach the socket. With a gate, the
// first write waits until the gate is closed.
type countingConn struct {
	net.Conn
	writes atomic.Int64
	gate   chan struct{}
}

func (c *countingConn) Write(p []byte) (int, error) {
	if c.writes.Add(1) == 1 && c.gate != nil {
		<-c.gate
	}
	return c.Conn.Write(p)
}

func (c *countingConn) CloseWrite() error {
	return c.Conn.(interface{ CloseWrite() error }).CloseWrite()
}

func readAllAsync(peer net.Conn) <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peer)
		ch <- b
	}()
	return ch
}

// fillUntilBlocked writes 1 KiB messages until writing is paused for good:
// the queue past its high watermark and the kernel's buffers full, which a
// peer that does not read leaves so. A Write timing out is not proof of it on
// a loaded machine, where the writer may just not have run: it takes two
// Writes in a row that time out with no byte handed to the kernel meanwhile.
// It returns the bytes accepted.
func fillUntilBlocked(t *testing.T, c *Conn) int {
	t.Helper()
	msg := bytes.Repeat([]byte("z"), 1024)
	total, still := 0, 0
	for i := 0; i < 1<<16; i++ {
		sent := c.Stats().BytesWritten
		c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := c.Write(msg)
		total += n
		switch {
		case err == nil:
			still = 0
		case !errors.Is(err, os.ErrDeadlineExceeded):
			t.Fatalf("Write: %v, want a timeout", err)
		case c.Stats().BytesWritten != sent:
			still = 0 // the writer sends still, slowly
		default:
			if still++; still == 2 {
				c.SetWriteDeadline(time.Time{})
				return total
			}
		}
	}
	t.Fatal("Write never blocked on a peer that does not read")
	return 0
}

func TestWriteCoalesces(t *testing.T) {
	is := is.New(t)
	a, b := tcpPair(t)
	// The writer's first send is held back, as by a busy core, while the
	// messages are written: they must then go out together.
	cc := &countingConn{Conn: a, gate: make(chan struct{})}
	c := NewConn(cc, WithWriteBufferLimits(256<<10, 64<<10))
	defer c.Abort()
	got := readAllAsync(b)
	msg := bytes.Repeat([]byte("m"), 64)
	const n = 2000
	for i := 0; i < n; i++ {
		k, err := c.Write(msg)
		is.NoErr(err)
		is.Equal(k, 64)
	}
	close(cc.gate)
	is.NoErr(c.Close())
	is.Equal(len(<-got), n*64)
	writes := cc.writes.Load()
	t.Logf("%d writes of 64 bytes took %d syscalls", n, writes)
	is.True(writes <= 2) // the first message, then all the others at once
}

func TestWriteBlocksAtHighWatermark(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t, WithWriteBufferLimits(8<<10, 2<<10))
	accepted := fillUntilBlocked(t, c)
	peak := c.Stats().QueuedPeak
	is.True(peak > 8<<10)        // the Write that paused writing was accepted whole
	is.True(peak <= 8<<10+1<<10) // memory is bounded by the high watermark plus one Write

	// Nothing accepted is lost: the peer receives every byte once it reads.
	got := readAllAsync(peer)
	is.NoErr(c.Close())
	is.Equal(len(<-got), accepted)
}

func TestWriteLargerThanHighWatermark(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t, WithWriteBufferLimits(1024, 256))
	got := readAllAsync(peer)
	big := bytes.Repeat([]byte("L"), 1<<20)
	n, err := c.Write(big) // an empty queue admits one Write, however large
	is.NoErr(err)
	is.Equal(n, len(big))
	is.NoErr(c.Drain(testCtx(t)))
	is.NoErr(c.Close())
	is.True(bytes.Equal(<-got, big))
}

// Drain follows asyncio's hysteresis: once past the high watermark it waits for
// the low one; otherwise it returns at once. Any number may wait.
func TestDrainHysteresis(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t, WithWriteBufferLimits(16<<10, 4<<10))
	is.NoErr(c.Drain(testCtx(t))) // not paused

	fillUntilBlocked(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	is.True(errors.Is(c.Drain(ctx), context.DeadlineExceeded)) // paused, peer silent

	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Drain(testCtx(t))
		}()
	}
	got := readAllAsync(peer)
	wg.Wait()
	close(errs)
	for err := range errs {
		is.NoErr(err)
	}
	is.True(c.WriteBufferSize() <= 4<<10)
	c.Close()
	<-got
}

// test_drain_raises: a peer that resets makes writes fail, and the error is
// reported by the next Write, Drain, Flush and Close.
func TestWriteErrorSticks(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // RST

	var err error
	msg := []byte("foo\n")
	for i := 0; i < 100000 && err == nil; i++ {
		if _, err = c.Write(msg); err == nil {
			err = c.Drain(testCtx(t))
		}
		if err == nil && i%64 == 0 {
			err = c.Flush(testCtx(t))
		}
	}
	is.True(err != nil)
	is.True(!errors.Is(err, net.ErrClosed))
	_, werr := c.Write(msg)
	is.Equal(werr, err)
	is.Equal(c.Drain(testCtx(t)), err)
	is.Equal(c.Flush(testCtx(t)), err)
	is.Equal(c.Close(), err)
}

func TestWriteEOF(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	is.True(c.CanWriteEOF())
	_, err := c.Write([]byte("request"))
	is.NoErr(err)
	is.NoErr(c.WriteEOF())
	got, err := io.ReadAll(peer) // the peer sees the data, then EOF
	is.NoErr(err)
	is.Equal(string(got), "request")
	_, err = c.Write([]byte("more"))
	is.True(errors.Is(err, net.ErrClosed))

	// This side can still read.
	_, err = peer.Write([]byte("reply\n"))
	is.NoErr(err)
	line, err := c.ReadLine(testCtx(t))
	is.NoErr(err)
	is.Equal(string(line), "reply\n")
	is.NoErr(c.Flush(testCtx(t)))
}

// A WriteEOF made while a read's or Drain's inline send has the queue's last
// bytes in flight is sent once they are: the writer it starts finds the send
// under way and leaves everything to it.
func TestWriteEOFDuringInlineSend(t *testing.T) {
	is := is.New(t)
	c, peer := activeReader(t)
	q := c.queue()
	q.mu.Lock()
	q.delay = time.Hour // no backstop within the test: only the send's end may start the writer
	q.mu.Unlock()
	_, err := c.Write([]byte("request"))
	is.NoErr(err)

	sock := q.takeForSend() // an inline send begins (Conn.sendNow)
	is.True(sock != nil)
	is.NoErr(c.WriteEOF())
	q.wg.Wait()                          // the writer WriteEOF started has looked and gone
	putBatch(q.sendDone(sock.trySend())) // all of it: nothing is left but the EOF

	peer.SetReadDeadline(time.Now().Add(testTimeout))
	got, err := io.ReadAll(peer)
	is.NoErr(err) // a timeout here: the EOF was never sent
	is.Equal(string(got), "request")
}

// A Write that the pause blocks starts the writer for what is queued: the
// bytes may have been left for the Conn's next read, and the goroutine that
// would make it may be the one waiting in Write.
func TestWriteBlockedByPauseStartsWriter(t *testing.T) {
	is := is.New(t)
	c, peer := activeReader(t)
	q := c.queue()
	q.mu.Lock()
	q.delay = time.Hour // no backstop within the test
	q.mu.Unlock()
	got := readAllAsync(peer)
	is.NoErr(c.SetWriteDeadline(time.Now().Add(testTimeout)))
	part := make([]byte, 40<<10)
	for i := 0; i < 3; i++ { // the second passes the high watermark (64 KiB), the third waits
		_, err := c.Write(part)
		is.NoErr(err) // a timeout here: nothing sent what the pause waited on
	}
	is.NoErr(c.Close())
	is.Equal(len(<-got), 3*len(part))
}

func TestCloseFlushes(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t, WithWriteBufferLimits(4<<10, 1<<10))
	want := bytes.Repeat([]byte("0123456789"), 100000) // 1 MB, far past the kernel's buffers
	_, err := c.Write(want)                            // an empty queue admits it at once
	is.NoErr(err)
	got := readAllAsync(peer)

	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	is.True(errors.Is(c.WaitClosed(ctx), context.DeadlineExceeded)) // blocks before Close

	is.NoErr(c.Close())
	is.True(c.IsClosing())
	is.NoErr(c.WaitClosed(testCtx(t)))
	is.True(bytes.Equal(<-got, want))
}

// A send that fails while Close flushes (the peer resets) is Close's error:
// it is not taken for the close's own doing (a write error is never lost).
func TestCloseReportsFlushFailure(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t, WithCloseTimeout(testTimeout))
	is.NoErr(c.NetConn().(*net.TCPConn).SetWriteBuffer(4 << 10))
	is.NoErr(peer.(*net.TCPConn).SetReadBuffer(4 << 10))
	_, err := c.Write(make([]byte, 8<<20)) // the peer never reads
	is.NoErr(err)
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	waitUntil(t, c.IsClosing) // Close is flushing
	is.NoErr(peer.(*net.TCPConn).SetLinger(0))
	is.NoErr(peer.Close()) // a reset
	err = recv(t, closed)
	is.True(err != nil)
	is.True(!errors.Is(err, net.ErrClosed)) // the reset, not "use of closed connection"
	is.True(isReset(err))
}

// A Close whose flush is cut short, by the write deadline or the close
// timeout, reports the dropped data and aborts the connection: the peer reads
// what reached it, then a reset, not the clean EOF of a whole stream.
func TestCloseBoundedByWriteDeadline(t *testing.T) {
	for _, bound := range []string{"write deadline", "close timeout"} {
		t.Run(bound, func(t *testing.T) {
			is := is.New(t)
			var opts []Option
			if bound == "close timeout" {
				opts = append(opts, WithCloseTimeout(50*time.Millisecond))
			}
			c, peer := connPair(t, opts...)
			// The peer does not read yet, and the kernel's buffers are small
			// and fixed (no autotuning): with far more queued than they hold,
			// no flush can finish in time, however late the writer runs.
			// (A Write that waited 50 ms, as fillUntilBlocked's, proves no
			// such thing on a loaded machine.)
			is.NoErr(c.NetConn().(*net.TCPConn).SetWriteBuffer(64 << 10))
			is.NoErr(peer.(*net.TCPConn).SetReadBuffer(64 << 10))
			_, err := c.Write(make([]byte, 4<<20)) // an empty queue admits it whole
			is.NoErr(err)
			if bound == "write deadline" {
				is.NoErr(c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)))
			}
			err = c.Close()
			is.True(errors.Is(err, os.ErrDeadlineExceeded)) // reports the dropped data
			is.NoErr(c.WaitClosed(testCtx(t)))
			is.NoErr(peer.SetReadDeadline(time.Now().Add(testTimeout)))
			_, err = io.Copy(io.Discard, peer)
			is.True(isReset(err))
		})
	}
}

// A write deadline set while Close flushes bounds it at once, as a net.Conn's
// deadline does a Write under way.
func TestCloseCutByLaterWriteDeadline(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t, WithCloseTimeout(5*time.Second))
	is.NoErr(c.NetConn().(*net.TCPConn).SetWriteBuffer(64 << 10))
	is.NoErr(peer.(*net.TCPConn).SetReadBuffer(64 << 10))
	_, err := c.Write(make([]byte, 4<<20)) // far more than the kernel holds
	is.NoErr(err)
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	waitUntil(t, func() bool { return inGoroutine("flushForClose") })
	is.NoErr(c.SetWriteDeadline(time.Now().Add(-time.Second)))
	select {
	case err := <-closed:
		is.True(errors.Is(err, os.ErrDeadlineExceeded))
	case <-time.After(2 * time.Second):
		t.Fatal("Close still flushes 2 s after the write deadline passed")
	}
}

// An Abort that cuts short a Close still flushing resets the connection: the
// reset is armed before the Close's flush can end and close the socket.
func TestAbortDuringCloseResets(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8)) // the race shows far more often
	for i := 0; i < 100; i++ {
		a, peer := tcpPair(t)
		a.(*net.TCPConn).SetWriteBuffer(4 << 10)
		peer.(*net.TCPConn).SetReadBuffer(4 << 10)
		c := NewConn(a, WithWriteBufferLimits(1<<20, 0))
		if _, err := c.Write(make([]byte, 512<<10)); err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		q := c.queue()
		waitUntil(t, func() bool { // Close waits in its flush: the peer reads nothing
			q.mu.Lock()
			defer q.mu.Unlock()
			return q.closeErr != nil && q.wake != nil
		})
		c.Abort()
		cerr := recv(t, closed)
		peer.SetReadDeadline(time.Now().Add(testTimeout))
		n, err := io.Copy(io.Discard, peer)
		if !isReset(err) {
			t.Fatalf("iteration %d: the peer read %d bytes, then %v, not a reset (Close: %v)", i, n, err, cerr)
		}
		peer.Close()
	}
}

func TestUseAfterClose(t *testing.T) {
	is := is.New(t)
	c, _ := connPair(t)
	is.True(!c.IsClosing())
	is.NoErr(c.Close())
	is.True(errors.Is(c.Close(), net.ErrClosed))
	_, err := c.Write([]byte("x"))
	is.True(errors.Is(err, net.ErrClosed))
	_, err = c.ReadLine(testCtx(t))
	is.True(errors.Is(err, net.ErrClosed))
	_, err = c.Read(make([]byte, 1))
	is.True(errors.Is(err, net.ErrClosed))
	_, err = c.Read(nil)
	is.True(errors.Is(err, net.ErrClosed))
	is.True(errors.Is(c.Drain(testCtx(t)), net.ErrClosed))
	is.True(errors.Is(c.Flush(testCtx(t)), net.ErrClosed))
	is.True(errors.Is(c.WriteEOF(), net.ErrClosed))
}

func TestAbortDropsQueue(t *testing.T) {
	is := is.New(t)
	c, _ := connPair(t)
	fillUntilBlocked(t, c)
	c.Abort()
	is.NoErr(c.WaitClosed(testCtx(t)))
	is.Equal(c.WriteBufferSize(), 0)
	_, err := c.Write([]byte("x"))
	is.True(errors.Is(err, net.ErrClosed))
}

// Close unblocks a Write waiting for room and a read waiting for data.
func TestCloseUnblocks(t *testing.T) {
	is := is.New(t)
	c, _ := connPair(t)
	fillUntilBlocked(t, c)
	werr := make(chan error, 1)
	rerr := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, 1024))
		werr <- err
	}()
	go func() {
		_, err := c.ReadLine(context.Background())
		rerr <- err
	}()
	c.Abort()
	is.True(errors.Is(<-werr, net.ErrClosed))
	is.True(errors.Is(<-rerr, net.ErrClosed))
}

func TestWritevAndConcurrentWrites(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t, WithWriteBufferLimits(2048, 512))
	got := readAllAsync(peer)
	n, err := c.Writev([]byte("a"), []byte("bc"), []byte("def"))
	is.NoErr(err)
	is.Equal(n, int64(6))

	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(b byte) {
			defer wg.Done()
			msg := bytes.Repeat([]byte{b}, 100)
			for i := 0; i < 200; i++ {
				if _, err := c.Write(msg); err != nil {
					t.Error(err)
					return
				}
			}
		}(byte('A' + g))
	}
	wg.Wait()
	is.NoErr(c.Close())
	b := <-got
	is.Equal(string(b[:6]), "abcdef")
	b = b[6:]
	is.Equal(len(b), 8*200*100)
	for i := 0; i < len(b); i += 100 { // each Write's bytes stay together
		is.True(bytes.Count(b[i:i+100], b[i:i+1]) == 100)
	}
}

func TestSetWriteBufferLimits(t *testing.T) {
	is := is.New(t)
	c, _ := connPair(t)
	is.True(c.SetWriteBufferLimits(10, 20) != nil)
	is.True(c.SetWriteBufferLimits(-1, -2) != nil)
	is.NoErr(c.SetWriteBufferLimits(100, 10))
	_, _, err := Pipe(WithWriteBufferLimits(1, 2))
	is.True(err != nil)
}

// New limits take effect at once: raising the high watermark above what is
// queued resumes writing and wakes a blocked Write and a waiting Drain; lowering
// it below pauses writing.
func TestSetWriteBufferLimitsTakeEffect(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t, WithWriteBufferLimits(8<<10, 2<<10))
	accepted := fillUntilBlocked(t, c) // the peer does not read: writing is paused
	queued := c.WriteBufferSize()

	drained := make(chan error, 1)
	go func() { drained <- c.Drain(testCtx(t)) }()
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("x"))
		wrote <- err
	}()
	quietFor(t, drained, 50*time.Millisecond, "Drain returned while paused")
	quietFor(t, wrote, 10*time.Millisecond, "Write returned while paused")

	is.NoErr(c.SetWriteBufferLimits(4*queued, queued)) // the queue is at the new low mark
	is.NoErr(recv(t, drained))
	is.NoErr(recv(t, wrote))

	is.NoErr(c.SetWriteBufferLimits(16, 0)) // now far below what is queued
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Write([]byte("y"))
	is.True(errors.Is(err, os.ErrDeadlineExceeded)) // paused again by the new limits
	c.SetWriteDeadline(time.Time{})
	got := readAllAsync(peer)
	is.NoErr(c.Close())
	is.Equal(len(<-got), accepted+1) // "x"; "y" was refused
}

// A Write made while the Conn's reader is active (it has read, no read waits)
// is left for that reader, and goes out at its next read, or at the next Drain,
// Flush or Close, or, with none of these, within the backstop's delay: all
// without a Write syscall. A Write made while a read waits goes out at once,
// through the writer goroutine.
func TestWriteBetweenReadsIsSent(t *testing.T) {
	for _, then := range []string{"read", "Drain", "Flush", "Close", "nothing", "read waiting"} {
		t.Run(then, func(t *testing.T) {
			is := is.New(t)
			c, peer := activeReader(t)

			read := make(chan error, 1)
			if then == "read waiting" {
				go func() { _, err := c.ReadLine(testCtx(t)); read <- err }()
				waitUntil(t, func() bool { return c.reads.has(readerWaiting) })
			}
			_, err := c.Write([]byte("reply\n"))
			is.NoErr(err)
			switch then {
			case "read":
				go func() { _, err := c.ReadLine(testCtx(t)); read <- err }()
			case "Drain":
				is.NoErr(c.Drain(testCtx(t)))
			case "Flush":
				is.NoErr(c.Flush(testCtx(t)))
			case "Close":
				is.NoErr(c.Close())
			}
			peer.SetReadDeadline(time.Now().Add(testTimeout))
			got := make([]byte, 6)
			_, err = io.ReadFull(peer, got)
			is.NoErr(err)
			is.Equal(string(got), "reply\n")
			if then == "read" || then == "read waiting" {
				peer.Write([]byte("bye\n"))
				is.NoErr(recv(t, read))
			}
		})
	}
}

// activeReader returns a Conn over loopback TCP that has read a line, so its
// reader is active (Writes are left for it), and the raw peer.
func activeReader(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	c, peer := connPair(t)
	if _, err := peer.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadLine(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return c, peer
}

// The backstop backs off while the reader or Drain takes what Writes leave:
// exchange after exchange, its delay doubles up to maxBackstop. A Write that
// is then stranded (no read, no Drain) is still sent, by the backstop, which
// returns to minBackstop for the next one.
func TestBackstopBacksOff(t *testing.T) {
	is := is.New(t)
	c, peer := activeReader(t)
	delay := func() time.Duration {
		q := c.queue()
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.delay
	}
	got := make([]byte, 2)
	peer.SetReadDeadline(time.Now().Add(testTimeout))
	waitUntil(t, func() bool {
		_, err := c.Write([]byte("x\n"))
		is.NoErr(err)
		is.NoErr(c.Drain(testCtx(t)))
		_, err = io.ReadFull(peer, got)
		is.NoErr(err)
		return delay() == maxBackstop
	})

	_, err := c.Write([]byte("stranded\n"))
	is.NoErr(err)
	line, err := bufio.NewReader(peer).ReadString('\n')
	is.NoErr(err)
	is.Equal(line, "stranded\n")
	waitUntil(t, func() bool { return delay() == minBackstop })
}

// Through an exchange of Writes that the reader or Drain takes, the backstop
// re-arms itself when it fires, so that the Writes find it armed and leave the
// runtime's timers alone; once no Write leaves bytes for the reader (its
// Writes go to the writer goroutine because a read waits, or the Conn is
// quiet), it disarms within two delays and stays so.
func TestBackstopRearmsItself(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	c, peer := activeReader(t)
	q := c.queue()
	armed := func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.armed
	}
	got := make([]byte, 2)
	peer.SetReadDeadline(time.Now().Add(testTimeout))
	exchange := func() {
		_, err := c.Write([]byte("x\n"))
		is.NoErr(err)
		is.NoErr(c.Drain(ctx))
		_, err = io.ReadFull(peer, got)
		is.NoErr(err)
	}
	// Back off to maxBackstop first: five firings, each with Writes since.
	waitUntil(t, func() bool {
		exchange()
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.delay == maxBackstop
	})
	// Ten delays more: ten firings. Re-armed by the next Write instead, as it
	// was, the timer is found disarmed after each.
	disarmed := 0
	for end := time.Now().Add(10 * maxBackstop); time.Now().Before(end); {
		if !armed() {
			disarmed++
		}
		exchange()
	}
	is.True(disarmed <= 2) // 0 but where the test stalled for a whole delay

	// A read waits: Writes go to the writer goroutine, whose sends leave the
	// timer to disarm at its next firings, and to stay disarmed.
	read := make(chan error, 1)
	go func() { _, err := c.ReadLine(ctx); read <- err }()
	waitUntil(t, func() bool { return c.reads.has(readerWaiting) })
	write := func() {
		_, err := c.Write([]byte("x\n"))
		is.NoErr(err)
		_, err = io.ReadFull(peer, got)
		is.NoErr(err)
	}
	waitUntil(t, func() bool { write(); return !armed() })
	for end := time.Now().Add(4 * maxBackstop); time.Now().Before(end); {
		write()
		is.True(!armed())
	}
	peer.Write([]byte("bye\n"))
	is.NoErr(recv(t, read))

	// Quiet after an exchange: disarmed after at most two firings.
	exchange()
	waitUntil(t, func() bool { return !armed() })
}

// Conn.sendNow's send (sendQueued) with a full socket buffer sends what fits,
// keeps the rest first in line, and leaves it to the writer goroutine:
// nothing is lost or reordered.
func TestSendNowOnFullSocket(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	raw := c.NetConn()
	var before int
	for { // fill the kernel's buffers while the peer does not read
		raw.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := raw.Write(make([]byte, 64<<10))
		before += n
		if err != nil {
			break
		}
	}
	raw.SetWriteDeadline(time.Time{})
	want := make([]byte, 256<<10)
	for i := range want {
		want[i] = byte(i % 251)
	}
	_, err := c.Write(want)
	is.NoErr(err)
	c.queue().sendQueued() // as a read about to block would, with what is queued
	got := readAllAsync(peer)
	is.NoErr(c.Close())
	b := <-got
	is.Equal(len(b), before+len(want))
	is.True(bytes.Equal(b[before:], want))
}

// Writers, the writer goroutine and a reader's inline sends interleave without
// reordering any Write's bytes or losing any.
func TestInlineSendsKeepOrder(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t, WithWriteBufferLimits(4<<10, 1<<10))
	const msgs = 20000
	peerErr := make(chan error, 1)
	go func() { // the peer checks the sequence and keeps c's reader waking up
		var seq uint32
		buf := make([]byte, 4)
		for seq < msgs {
			if _, err := io.ReadFull(peer, buf); err != nil {
				peerErr <- err
				return
			}
			if got := binary.BigEndian.Uint32(buf); got != seq {
				peerErr <- fmt.Errorf("message %d arrived as %d", seq, got)
				return
			}
			if seq++; seq%64 == 0 {
				peer.Write([]byte{'\n'})
			}
		}
		peerErr <- nil
	}()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for _, err := range c.Lines(context.Background()) {
			if err != nil {
				return
			}
		}
	}()
	for i := uint32(0); i < msgs; i++ {
		var m [4]byte
		binary.BigEndian.PutUint32(m[:], i)
		_, err := c.Write(m[:])
		is.NoErr(err)
	}
	is.NoErr(<-peerErr)
	c.Abort()
	<-readerDone
}

// A batch the socket took only part of goes back in front of what was queued
// while it was being sent.
func TestPartialSendRequeuesFirst(t *testing.T) {
	is := is.New(t)
	q := &writeQueue{high: 1 << 10, reads: &readerState{}}
	q.pending = []byte("abcdef")
	q.size = 6
	batch, _ := q.takeLocked()
	q.pending = append(q.pending, "new"...) // a Write during the send
	q.size += 3
	q.sentLocked(batch, 2, nil)
	is.Equal(string(q.pending), "cdefnew")
	is.Equal(q.size, 7)
	is.True(!q.sending)

	batch, _ = q.takeLocked()
	q.sentLocked(batch, 1, errors.New("reset")) // a failed send drops the rest
	is.Equal(q.size, 0)
	is.Equal(len(q.pending), 0)
	is.True(q.err != nil)
}

// A Write + Drain(ctx) loop against a peer that stops reading ends when ctx
// does: Write is accepted until writing is paused, so the loop waits in Drain.
func TestWriteDrainLoopHonoursContext(t *testing.T) {
	is := is.New(t)
	c, _ := connPair(t) // the peer never reads
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		msg := bytes.Repeat([]byte("m"), 1000)
		for {
			if _, err := c.Write(msg); err != nil {
				done <- err
				return
			}
			if err := c.Drain(ctx); err != nil {
				done <- err
				return
			}
		}
	}()
	is.True(errors.Is(recv(t, done), context.DeadlineExceeded))
}

// Memory stays within the high watermark plus one Write, with many
// concurrent writers pacing themselves with Drain.
func TestWriteMemoryBoundConcurrent(t *testing.T) {
	is := is.New(t)
	const high, msgLen, writers = 16 << 10, 1000, 8
	c, _ := connPair(t, WithWriteBufferLimits(high, high/4)) // the peer never reads
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := bytes.Repeat([]byte("w"), msgLen)
			for ctx.Err() == nil {
				c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
				if _, err := c.Write(msg); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					return
				}
				c.Drain(ctx)
			}
		}()
	}
	wg.Wait()
	peak := c.Stats().QueuedPeak // exact: the largest WriteBufferSize there was
	is.True(peak > high)         // writing was paused past the high watermark
	is.True(peak <= high+msgLen) // and memory stayed within high + one write
}

// In the body of a Lines loop a Write's bytes go out when the loop next reads
// from the socket (a step that finds its line buffered does not: replies to
// pipelined requests go out together), at a Drain, or when the loop ends.
func TestWriteInLoopBody(t *testing.T) {
	for _, then := range []string{"next read", "Drain", "loop end", "pipelined"} {
		t.Run(then, func(t *testing.T) {
			is := is.New(t)
			c, peer := connPair(t)
			first := "one\n"
			if then == "pipelined" {
				first = "one\ntwo\n" // both buffered by the loop's first read
			}
			_, err := peer.Write([]byte(first))
			is.NoErr(err)
			got := make(chan string, 2)
			go func() { // the peer: reads each reply, and answers the first with "two"
				peer.SetReadDeadline(time.Now().Add(testTimeout))
				buf := make([]byte, 4)
				for i := 0; ; i++ {
					if _, err := io.ReadFull(peer, buf); err != nil {
						return
					}
					got <- string(buf)
					if i == 0 && then == "next read" {
						peer.Write([]byte("two\n"))
					}
				}
			}()
			n := 0
			for line, err := range c.Lines(testCtx(t)) {
				is.NoErr(err)
				_, err = c.Write(append(line, '\n'))
				is.NoErr(err)
				if n++; n == 1 {
					switch then {
					case "Drain":
						is.NoErr(c.Drain(testCtx(t)))
						is.Equal(recv(t, got), "one\n") // sent before the loop goes on
						return
					case "loop end":
						break
					case "pipelined":
						quietFor(t, got, 20*time.Millisecond, "a reply sent while requests are buffered")
						continue
					default:
						continue // the next step reads, and sends "one" first
					}
					break
				}
				break
			}
			is.Equal(recv(t, got), "one\n")
			if then == "next read" || then == "pipelined" {
				is.Equal(recv(t, got), "two\n") // sent when the loop ended
			}
		})
	}
}

// A Write from another goroutine while an iterator loop's body waits on
// something other than the Conn is not left for the loop's next read for good:
// the backstop sends it while the body still waits.
func TestWriteWhileLoopBodyWaits(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	_, err := peer.Write([]byte("go\n"))
	is.NoErr(err)
	inBody, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for _, err := range c.Lines(testCtx(t)) {
			if err == nil {
				close(inBody)
				<-release // the body waits on something else
			}
			done <- err
			return
		}
		done <- errors.New("the loop ended without a line")
	}()
	recv(t, inBody)
	_, err = c.Write([]byte("ping\n")) // another goroutine writes
	is.NoErr(err)
	peer.SetReadDeadline(time.Now().Add(testTimeout))
	line, err := bufio.NewReader(peer).ReadString('\n')
	is.NoErr(err)
	is.Equal(line, "ping\n")
	select {
	case <-done:
		t.Fatal("the loop's body returned before the Write was sent")
	default: // sent while the body still waits
	}
	close(release)
	is.NoErr(recv(t, done))
}

// Once an iterator loop has ended, a Write on a Conn that no longer reads is
// bounded as any other (2*maxBackstop at worst), not by the timer a Write in
// the loop's body armed at loopBackstop.
func TestWriteAfterLoopEndBound(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	_, err := peer.Write([]byte("go\n"))
	is.NoErr(err)
	for _, err := range c.Lines(testCtx(t)) {
		is.NoErr(err)
		_, err = c.Write([]byte("a\n")) // arms the timer at loopBackstop
		is.NoErr(err)
		break // the loop's end sends "a"
	}
	rd := bufio.NewReader(peer)
	peer.SetReadDeadline(time.Now().Add(testTimeout))
	line, err := rd.ReadString('\n')
	is.NoErr(err)
	is.Equal(line, "a\n")
	start := time.Now()
	_, err = c.Write([]byte("b\n")) // no read comes any more
	is.NoErr(err)
	line, err = rd.ReadString('\n')
	is.NoErr(err)
	is.Equal(line, "b\n")
	is.True(time.Since(start) < loopBackstop) // 1 ms here, 2*maxBackstop at worst
}

// A Conn makes its write queue when something first needs it, and until then
// behaves as one with an empty queue: a Conn that only reads holds none.
func TestQueueMadeOnFirstUse(t *testing.T) {
	t.Run("read-only", func(t *testing.T) {
		is := is.New(t)
		c, peer := connPair(t)
		_, err := peer.Write([]byte("hello\n"))
		is.NoErr(err)
		line, err := c.ReadLine(testCtx(t))
		is.NoErr(err)
		is.Equal(string(line), "hello\n")
		is.True(c.wq.Load() == nil) // reading made no queue
		is.Equal(c.WriteBufferSize(), 0)
		is.Equal(c.Stats(), ConnStats{BytesRead: 6})
		is.True(!c.IsClosing())
		is.NoErr(c.Drain(testCtx(t)))
		is.True(c.CanWriteEOF())
		is.NoErr(c.SetDeadline(time.Time{}))
		is.True(c.wq.Load() == nil) // nor did asking about it, Drain, or clearing deadlines

		_, err = c.Write([]byte("back\n"))
		is.NoErr(err)
		is.True(c.wq.Load() != nil)
		peer.SetReadDeadline(time.Now().Add(testTimeout))
		got, err := bufio.NewReader(peer).ReadString('\n')
		is.NoErr(err)
		is.Equal(got, "back\n")
	})
	t.Run("closed unwritten", func(t *testing.T) {
		is := is.New(t)
		c, peer := connPair(t)
		is.NoErr(c.Close())
		is.True(c.IsClosing())
		is.NoErr(c.WaitClosed(testCtx(t)))
		_, err := c.Write([]byte("late\n"))
		is.True(errors.Is(err, net.ErrClosed))
		is.True(errors.Is(c.Drain(testCtx(t)), net.ErrClosed))
		peer.SetReadDeadline(time.Now().Add(testTimeout))
		_, err = peer.Read(make([]byte, 1))
		is.Equal(err, io.EOF)
	})
	t.Run("first writes at once", func(t *testing.T) {
		// Writers racing to make the queue share one: every Write's bytes
		// arrive, each Write's together.
		is := is.New(t)
		c, peer := connPair(t)
		const writers, each = 8, 50
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if _, err := c.Write([]byte(fmt.Sprintf("%d\n", w))); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		is.NoErr(c.Flush(testCtx(t)))
		is.NoErr(c.Close())
		peer.SetReadDeadline(time.Now().Add(testTimeout))
		all, err := io.ReadAll(peer)
		is.NoErr(err)
		counts := map[string]int{}
		for _, l := range strings.Split(strings.TrimSuffix(string(all), "\n"), "\n") {
			counts[l]++
		}
		is.Equal(len(counts), writers)
		for w := range writers {
			is.Equal(counts[fmt.Sprint(w)], each)
		}
	})
}

// readerState.set reports the bits as they are after it, whether or not it
// had to change them.
func TestReaderStateSet(t *testing.T) {
	is := is.New(t)
	var s readerState
	is.Equal(s.set(readerUsed, true), readerUsed)
	is.Equal(s.set(readerUsed, true), readerUsed) // already on
	is.Equal(s.set(forReader, true), readerUsed|forReader)
	is.True(s.has(forReader))
	is.Equal(s.set(readerUsed, false), forReader)
	is.Equal(s.set(readerUsed, false), forReader) // already off
	is.Equal(s.set(forReader, false), uint32(0))
	is.True(!s.has(forReader))
}

// An empty Write, or Writev of nothing, takes no buffer: an idle queue holds
// none, even where the last batch was large (a new batch's first buffer is as
// large as the last batch was).
func TestEmptyWriteHoldsNoBuffer(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	_, err := c.Write(make([]byte, 100<<10))
	is.NoErr(err)
	go io.Copy(io.Discard, peer)
	is.NoErr(c.Flush(testCtx(t)))
	q := c.queue()
	idle := func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return !q.running && !q.sending
	}
	waitUntil(t, idle)
	_, err = c.Write(nil)
	is.NoErr(err)
	_, err = c.Writev()
	is.NoErr(err)
	waitUntil(t, idle) // a writer the empty Writes started has come and gone
	q.mu.Lock()
	defer q.mu.Unlock()
	is.True(q.pending == nil) // else an idle queue holds a buffer
}
