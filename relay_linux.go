package sluice

import (
	"os"

	"golang.org/x/sys/unix"
)

// inbound waits until a TCP socket has bytes to read, or has ended or failed,
// without reading any: Relay's splice then moves exactly what has arrived.
// Only the goroutine of one Relay direction uses it.
type inbound struct {
	sock  *rawSock // the socket's descriptor and addresses, as its Reader has them
	n     int      // the bytes waiting, as ready found them
	errno error    // ready's failure
	peek  [1]byte
	fn    func(uintptr) bool // ready, bound once so that a wait does not allocate
}

// newInbound returns an inbound for sock, or nil where there is none. Relay
// holds the Reader's read lock, so nothing else reads through sock meanwhile.
func newInbound(sock *rawSock) *inbound {
	if sock == nil {
		return nil
	}
	in := &inbound{sock: sock}
	in.fn = in.ready
	return in
}

// wait blocks until the socket holds bytes and returns how many, 0 once the
// stream has ended, or -1 where bytes wait past a TCP urgent mark (see ready).
// A read deadline or the socket's close cuts it short.
func (in *inbound) wait() (int, error) {
	in.n, in.errno = 0, nil
	if err := in.sock.rc.Read(in.fn); err != nil {
		return 0, opError("read", in.sock.nc, unwrapOp(err))
	}
	if in.errno != nil {
		return 0, opError("read", in.sock.nc, in.errno)
	}
	return in.n, nil
}

// ready is the poller's callback: it asks the kernel how many bytes are
// waiting (SIOCINQ); where none are, a peek tells the end of the stream (it
// returns 0 bytes) or a failure (a reset) from nothing yet (EAGAIN: wait).
func (in *inbound) ready(fd uintptr) bool {
	for {
		n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err != nil {
			in.errno = os.NewSyscallError("ioctl", err)
			return true
		}
		if n > 0 {
			in.n = n
			return true
		}
		m, _, err := unix.Recvfrom(int(fd), in.peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err != nil:
			in.errno = os.NewSyscallError("recvfrom", err)
			return true
		case m == 0:
			return true // the end of the stream
		}
		// SIOCINQ counted none, yet a peek finds bytes. At a TCP urgent mark
		// (MSG_OOB) neither SIOCINQ nor splice(2) passes it, and looking
		// again would spin: a read(2) steps over the mark, and -1 asks for
		// one through the Reader. Else the bytes arrived between the two
		// calls: count them.
		if at, err := unix.IoctlGetInt(int(fd), unix.SIOCATMARK); err == nil && at != 0 {
			in.n = -1
			return true
		}
	}
}
