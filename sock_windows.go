package sluice

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/windows"
)

// errNoRawSocket is what the raw paths would return if they were reached: they
// are not, since newRawSock gives them no descriptor.
var errNoRawSocket = errors.New("sluice: no raw socket I/O on Windows")

// rawSock is the Unix systems' descriptor reader and non-waiting writer
// (sock_unix.go); Windows has none, and newRawSock returns nil, the Reader's
// cue to use Read and the write queue's to leave every send to its writer
// goroutine: Go drives Windows sockets with overlapped I/O, and they are not
// non-blocking, so a read(2)-style call on the descriptor could block the
// thread. A Reader waiting for data there holds its buffer.
type rawSock struct {
	buf []byte // the send under way, as on Unix: never set, there being no rawSock
}

func newRawSock(net.Conn, *Conn) *rawSock { return nil }

func (*rawSock) read(int64) (int, bool, error) { return 0, false, errNoRawSocket }

func (*rawSock) trySend() error { return errNoRawSocket }

func (*rawSock) sent(err error) (int, error) { return 0, err }

func (*rawSock) bindSend() {}

func (*rawSock) sendAll([]byte, *writeQueue) (int, error) { return 0, errNoRawSocket }

// socketPair returns two connected stream sockets. Windows has no
// socketpair(2), so the pair is made by listening, dialling and accepting
// (sockpair.go): over AF_UNIX, on a socket file in a new temporary directory
// that is removed before socketPair returns (Windows 10 version 1803 and
// later); where that fails, over loopback TCP. Both kinds half-close
// (shutdown with SD_SEND) as a Unix socket pair does.
func socketPair() (net.Conn, net.Conn, error) {
	a, b, err := unixListenedPair()
	if err == nil {
		return a, b, nil
	}
	a, b, tcpErr := tcpListenedPair()
	if tcpErr != nil {
		return nil, nil, errors.Join(err, tcpErr)
	}
	return a, b, nil
}

// isReset reports whether err says the connection was reset: the peer aborted
// it (WSAECONNRESET, or ERROR_NETNAME_DELETED as overlapped I/O reports it), or
// the stack did after a failed send (WSAECONNABORTED), as net's own
// isConnError on Windows counts them.
func isReset(err error) bool {
	return errors.Is(err, windows.WSAECONNRESET) || errors.Is(err, windows.WSAECONNABORTED) ||
		errors.Is(err, windows.ERROR_NETNAME_DELETED)
}

// isTemporaryAccept reports whether an accept error is worth retrying: Winsock
// is out of sockets or buffers for now, or a connection went away before it
// was accepted (net's AcceptEx loop retries the usual ones itself). The set
// mirrors the Unix one.
func isTemporaryAccept(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case windows.WSAEMFILE, windows.WSAENOBUFS, windows.ERROR_NOT_ENOUGH_MEMORY,
		windows.WSAEINTR, windows.WSAEWOULDBLOCK, windows.WSAETIMEDOUT,
		windows.WSAECONNABORTED, windows.WSAECONNRESET, windows.ERROR_NETNAME_DELETED,
		windows.WSAENETDOWN, windows.WSAENETUNREACH, windows.WSAEHOSTDOWN, windows.WSAEHOSTUNREACH:
		return true
	}
	return false
}
