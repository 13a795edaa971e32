//go:build unix

package sluice

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawSock reads and writes a socket through its descriptor. Its read fields
// are the Conn's reading goroutine's (it holds the Reader's lock); its send
// fields are the goroutine's that holds the write queue's sending flag
// (Conn.sendNow, from a read or Drain); so they need no other guard.
// One allocation per Conn, one more for readFn, and one for writeFn once the
// Conn has a write queue.
//
// A read that finds nothing gives an empty buffer back and waits on the
// runtime's poller, so that a waiting Conn holds none. Woken, it takes a buffer
// from the pool's shelf (see shelf) where one is at hand, often the one it gave
// back, and reads; where the shelf has none, it returns (again) for the Reader
// to take or make one and read, rather than reach into sync.Pool or allocate
// deep in the poller's callback: the goroutines of idle connections keep 2 KiB
// stacks.
type rawSock struct {
	rc syscall.RawConn
	nc net.Conn // for the addresses in errors

	// The read under way: readFn's argument and results.
	msg    int64
	readFn func(uintptr) bool // readable(s, the Conn), bound once so that a read does not allocate
	n      int32              // at most maxRW
	errno  uint32             // a syscall.Errno

	// The send under way: writeFn's argument and results.
	buf     []byte
	writeFn func(uintptr) bool // both sends' write(2), bound with the write queue (bindSend)
	wn      int32
	werrno  uint32
	q       *writeQueue // sendAll's, told of its progress (Stats, its clock); nil for trySend
}

// maxRW bounds one read(2) or write(2), as the runtime's poller does
// (internal/poll): some systems fail larger ones, and the counts then fit in
// the int32 fields that keep rawSock within 112 bytes.
const maxRW = 1 << 30

// newRawSock returns nc's descriptor where reads and writes may go to it
// directly: a TCP or Unix stream socket, which Go's runtime keeps
// non-blocking, for c's Reader to read into its buffer. It returns nil for
// anything else (TLS, net.Pipe, a wrapper).
func newRawSock(nc net.Conn, c *Conn) *rawSock {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nil
	}
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil
	}
	s := &rawSock{rc: rc, nc: nc}
	s.readFn = readable(s, c)
	return s
}

// read makes one read into the Reader's buffer's free room, waiting for data
// if none has arrived (msg as in Reader.fill). again reports that it waited
// after giving the buffer back, and found none on the pool's shelf: the caller
// takes one and reads again. A read that finds the end of the stream returns io.EOF.
func (s *rawSock) read(msg int64) (n int, again bool, err error) {
	s.msg, s.n, s.errno = msg, 0, 0
	err = s.rc.Read(s.readFn)
	if err != nil || s.errno != 0 || s.n == 0 {
		return 0, false, s.failed(err)
	}
	return max(int(s.n), 0), s.n < 0, nil
}

// failed returns what a read that brought nothing stands for: RawConn's error
// (a passed deadline, a closed connection) or read(2)'s, wrapped as net.Conn's
// Read wraps them, or io.EOF. It is out of line, to keep read's frame small:
// it sits beneath every waiting read.
//
//go:noinline
func (s *rawSock) failed(err error) error {
	switch {
	case err != nil:
		return opError("read", s.nc, unwrapOp(err))
	case s.errno != 0:
		return opError("read", s.nc, os.NewSyscallError("read", syscall.Errno(s.errno)))
	}
	return io.EOF
}

// readable returns s's callback for the poller, reading into c's Reader's
// buffer: one read(2); where the socket has nothing, the empty buffer given back
// and false, to wait. Woken, it finds no buffer: it takes one from the
// pool's shelf and reads, or where the shelf has none (it never allocates
// here: see rawSock), returns true at once, with n -1 (again). Reading in the
// same RawConn.Read as the wait spares a second one, with its descriptor lock
// and poller reset: an echo round trip's share, measured against bufio's
// (echo-pingpong), rose from a median of 0.913 in 42 runs to 0.933 in 52,
// interleaved; scale's CPU per line did not move (perf).
//
// It is a func literal, not a method value, which would add a frame beneath
// every read (see Server.serveConn).
//
// It does not inline: a func literal compiled where its maker is inlined is
// compiled without its own calls inlined (seen with Go 1.26), and rawRead
// and unhold must inline into it.
//
//go:noinline
func readable(s *rawSock, c *Conn) func(uintptr) bool {
	return func(fd uintptr) bool {
		r := &c.rd
		// Woken after a wait (it then finds no buffer, below), this is
		// the first of the Conn's code to run, and with many connections
		// none of what the read, the loop body's Writes and its Drain
		// touch next is in the cache: the goroutine's stack above this
		// frame, which every return reloads from, the Conn, s, and the
		// write queue. Ask for all of it before the first loads, so
		// that the misses overlap instead of coming one after another.
		// With 1000 busy connections (scale) the stack, the Conn and s
		// were ~30 ns of the library's CPU per line of 64 B, 16 lines a
		// read, and the queue ~4% of the server's CPU per line. On the
		// other calls it is a few dozen instructions. The prefetches'
		// frames are empty: this callback's depth is unchanged.
		prefetchStack()
		prefetch(unsafe.Pointer(c), 0, unsafe.Sizeof(*c))
		prefetch(unsafe.Pointer(s), 0, unsafe.Sizeof(*s))
		if r.buf == nil {
			if q := c.wq.Load(); q != nil {
				prefetch(unsafe.Pointer(q), 0, unsafe.Sizeof(*q))
			}
			if r.buf = readBufs.tryGet(r.size); r.buf == nil {
				s.n = -1
				return true
			}
		}
		p := r.buf[r.w:]
		if len(p) > maxRW {
			p = p[:maxRW]
		}
		for {
			n, errno := rawRead(fd, p)
			switch errno {
			case 0:
				s.n = int32(n)
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				readBufs.put(r.unhold()) // r.release(), a frame less deep
				if r.hook != nil {
					r.hook.waiting(s.msg)
				}
				return false
			}
			s.errno = uint32(errno)
			return true
		}
	}
}

// trySend makes one write(2) of buf, which the sender set (takeForSend), and
// leaves what the kernel took for sent: a full socket buffer is not an error,
// it takes 0 bytes. It inlines: it often sits beneath a handler's loop body
// (Drain; see Server.serveConn).
func (s *rawSock) trySend() error { return s.rc.Write(s.writeFn) }

// sendAll writes all of p (up to maxRW), waiting for room as net.Conn's
// Write does (a write deadline or the Conn's close cuts it short), and counts
// every write(2) that takes bytes and leaves more to send in q's Stats as it
// goes (the caller counts the rest), and tells q's clock: a peer that reads a
// large batch slowly is not idle. Only the sender (q.sending) may call it.
func (s *rawSock) sendAll(p []byte, q *writeQueue) (int, error) {
	s.buf, s.q = p, q
	err := s.rc.Write(s.writeFn)
	s.q = nil
	return s.sent(err)
}

// sent returns what a send took and its error, wrapped as net.Conn's Write
// wraps it, and readies s for the next send.
func (s *rawSock) sent(err error) (int, error) {
	n, errno := int(s.wn), s.werrno
	s.buf, s.wn, s.werrno = nil, 0, 0
	if err != nil || errno != 0 {
		return n, s.sendFailed(err, errno)
	}
	return n, nil
}

// sendFailed wraps a failed send's error as net.Conn's Write does; out of
// line, as failed is for read.
//
//go:noinline
func (s *rawSock) sendFailed(err error, errno uint32) error {
	if err != nil {
		return opError("write", s.nc, unwrapOp(err))
	}
	return opError("write", s.nc, os.NewSyscallError("write", syscall.Errno(errno)))
}

// bindSend binds writeFn, the poller's callback for both sends, once: as the
// Conn's write queue is made (under the Reader's dmu), by its first write or
// its close, so that a Conn that only reads has none while it is open.
//
// writeFn makes one write(2) of buf (up to maxRW), which takes what the socket
// has room for, or nothing (EAGAIN) without waiting. For sendAll (q set) it
// writes until all of buf is taken, counting each write(2) but the last in q's
// Stats and telling its clock, and where the socket is full returns false for
// the poller to wait for room and call it again. It is a func literal, not a
// method value, which would add a frame beneath Drain.
//
// It does not inline, for rawWrite to inline into writeFn (see readable).
//
//go:noinline
func (s *rawSock) bindSend() {
	if s.writeFn != nil {
		return
	}
	s.writeFn = func(fd uintptr) bool {
		p := s.buf[:min(len(s.buf), maxRW)] // the rest stays queued
		for {
			n, errno := rawWrite(fd, p[s.wn:])
			switch errno {
			case syscall.EINTR:
				continue
			case 0:
				s.wn += int32(n)
				if s.q != nil && n > 0 && int(s.wn) < len(p) {
					s.q.written.Add(int64(n)) // handed to the kernel: Stats says so now
					if s.q.clock != nil {
						s.q.clock.touch()
					}
					continue
				}
			case syscall.EAGAIN:
				return s.q == nil
			default:
				s.werrno = uint32(errno)
			}
			return true
		}
	}
}

// opError wraps err as net.Conn's Read and Write do.
func opError(op string, nc net.Conn, err error) error {
	la := nc.LocalAddr()
	return &net.OpError{Op: op, Net: la.Network(), Source: la, Addr: nc.RemoteAddr(), Err: err}
}

// socketPair returns the two ends of a Unix stream socket pair, close-on-exec.
func socketPair() (net.Conn, net.Conn, error) {
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	a, errA := fileConn(fds[0], "sluice-pipe-a")
	b, errB := fileConn(fds[1], "sluice-pipe-b")
	if err := errors.Join(errA, errB); err != nil {
		for _, c := range []net.Conn{a, b} {
			if c != nil {
				c.Close()
			}
		}
		return nil, nil, err
	}
	return a, b, nil
}

// fileConn turns a socket descriptor into a net.Conn and closes the descriptor
// (net.FileConn works on a duplicate).
func fileConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return net.FileConn(f)
}

// isReset reports whether err says the connection was reset: the peer aborted
// it, or a send found it gone (a broken pipe).
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// isTemporaryAccept reports whether an accept error is worth retrying: the
// process or system is out of descriptors or memory for now, or a connection
// went away before it was accepted (the network errors accept(2) says to
// treat like EAGAIN).
func isTemporaryAccept(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.EINTR, syscall.EAGAIN, syscall.ETIMEDOUT,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO, syscall.EPERM,
		syscall.ENETDOWN, syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.EHOSTUNREACH,
		syscall.ENOPROTOOPT, syscall.EOPNOTSUPP:
		return true
	}
	return false
}
