//go:build unix

package sluice

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// rawConnOf returns nc's descriptor where reads and writes may go to it
// directly: a TCP or Unix stream socket, which Go's runtime keeps
// non-blocking. It returns nil for anything else (TLS, net.Pipe, a wrapper).
func rawConnOf(nc net.Conn) syscall.RawConn {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nil
	}
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// rawReader reads a socket through its descriptor, so that a Reader waiting
// for data holds no buffer: the runtime's poller calls readable when the socket
// may have data, and readable takes a buffer only when a read finds bytes, and
// gives an empty one back before it waits. Only the reading goroutine uses it
// (it holds the Reader's lock), so its fields need no other guard.
type rawReader struct {
	rc syscall.RawConn
	nc net.Conn // for the addresses in errors

	// The read under way: readable's arguments and results.
	r     *Reader
	want  int
	msg   int64
	n     int
	errno error
	fn    func(uintptr) bool // readable, bound once so that a read does not allocate
}

func newRawReader(rc syscall.RawConn, nc net.Conn) *rawReader {
	if rc == nil {
		return nil
	}
	s := &rawReader{rc: rc, nc: nc}
	s.fn = s.readable
	return s
}

// read makes one read into r's buffer (want and msg as in Reader.fill), waiting
// for data if none has arrived. A read that finds the end of the stream
// returns io.EOF.
func (s *rawReader) read(r *Reader, want int, msg int64) (int, error) {
	s.r, s.want, s.msg, s.n, s.errno = r, want, msg, 0, nil
	err := s.rc.Read(s.fn)
	s.r = nil
	switch {
	case err != nil:
		return 0, opError("read", s.nc, unwrapOp(err))
	case s.errno != nil:
		return 0, opError("read", s.nc, os.NewSyscallError("read", s.errno))
	case s.n == 0:
		return 0, io.EOF
	}
	return s.n, nil
}

// readable is the poller's callback: one read(2), or, where the socket has
// nothing, the buffer given back and false, to wait.
func (s *rawReader) readable(fd uintptr) bool {
	r := s.r
	r.makeRoom(s.want)
	for {
		n, err := syscall.Read(int(fd), r.buf[r.w:])
		switch err {
		case nil:
			s.n = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			r.release()
			if r.hook != nil {
				r.hook.beforeWait(s.msg)
			}
			return false
		}
		s.errno = err
		return true
	}
}

// rawWriter makes writes to a socket that never wait (writeQueue.sendNow).
// Only the goroutine that set the queue's sending flag uses it.
type rawWriter struct {
	rc    syscall.RawConn
	nc    net.Conn
	buf   []byte
	n     int
	errno error
	fn    func(uintptr) bool // writable, bound once
}

func newRawWriter(rc syscall.RawConn, nc net.Conn) *rawWriter {
	if rc == nil {
		return nil
	}
	s := &rawWriter{rc: rc, nc: nc}
	s.fn = s.writable
	return s
}

// trySend makes one write(2) of p and returns what the kernel took: a full
// socket buffer is not an error, it takes 0 bytes.
func (s *rawWriter) trySend(p []byte) (int, error) {
	s.buf, s.n, s.errno = p, 0, nil
	err := s.rc.Write(s.fn)
	s.buf = nil
	switch {
	case err != nil:
		return 0, opError("write", s.nc, unwrapOp(err))
	case s.errno != nil:
		return s.n, opError("write", s.nc, os.NewSyscallError("write", s.errno))
	}
	return s.n, nil
}

func (s *rawWriter) writable(fd uintptr) bool {
	for {
		n, err := syscall.Write(int(fd), s.buf)
		switch err {
		case syscall.EINTR:
			continue
		case nil:
			s.n = n
		case syscall.EAGAIN:
		default:
			s.errno = err
		}
		return true
	}
}

// opError wraps err as net.Conn's Read and Write do.
func opError(op string, nc net.Conn, err error) error {
	la := nc.LocalAddr()
	return &net.OpError{Op: op, Net: la.Network(), Source: la, Addr: nc.RemoteAddr(), Err: err}
}

// unwrapOp returns what a RawConn's *net.OpError wraps (a passed deadline, a
// closed connection), so the Conn can wrap it as a read or write.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
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
