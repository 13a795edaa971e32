package sluice

import (
	"errors"
	"net"
	"os"
	"testing"

	"github.com/matryer/is"
	"golang.org/x/sys/windows"
)

// Test helpers for what Windows spells its own way; sock_unix_test.go has the
// Unix systems'.

// errTooManyFiles is the error number of a process out of sockets.
const errTooManyFiles = windows.WSAEMFILE

// rawSocket is a socket the tests hold without net: a client that costs the Go
// heap nothing (BenchmarkIdleConn).
type rawSocket = windows.Handle

// dialRaw connects a bare socket to 127.0.0.1:port and sends msg. Winsock is
// started already: net starts it.
func dialRaw(port int, msg []byte) (rawSocket, error) {
	s, err := windows.Socket(windows.AF_INET, windows.SOCK_STREAM, windows.IPPROTO_TCP)
	if err != nil {
		return windows.InvalidHandle, err
	}
	err = windows.Connect(s, &windows.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	if err == nil {
		var sent uint32
		buf := windows.WSABuf{Len: uint32(len(msg)), Buf: &msg[0]}
		err = windows.WSASend(s, &buf, 1, &sent, 0, nil, nil)
	}
	if err != nil {
		windows.Closesocket(s)
		return windows.InvalidHandle, err
	}
	return s, nil
}

func closeRaw(s rawSocket) { windows.Closesocket(s) }

// getsockoptInt reads an integer socket option.
func getsockoptInt(fd uintptr, level, opt int) (int, error) {
	return windows.GetsockoptInt(windows.Handle(fd), level, opt)
}

// relisten calls listen again on a listening socket. Windows keeps the first
// backlog, so it changes nothing (blackHole then skips its test).
func relisten(fd uintptr, backlog int) error { return windows.Listen(windows.Handle(fd), backlog) }

// keepAliveOf returns a TCP socket's keep-alive idle time and interval in
// seconds and its probe count (readable since Windows 10 version 1709).
func keepAliveOf(fd uintptr) (v [3]int) {
	h := windows.Handle(fd)
	v[0], _ = windows.GetsockoptInt(h, windows.IPPROTO_TCP, windows.TCP_KEEPIDLE)
	v[1], _ = windows.GetsockoptInt(h, windows.IPPROTO_TCP, windows.TCP_KEEPINTVL)
	v[2], _ = windows.GetsockoptInt(h, windows.IPPROTO_TCP, windows.TCP_KEEPCNT)
	return v
}

// The Winsock error numbers of a peer gone and of accept's passing troubles are
// told apart by identity, however net wraps them.
func TestErrorClassification(t *testing.T) {
	wrap := func(op string, errno error) error {
		return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)}
	}
	for _, tc := range []struct {
		name             string
		err              error
		reset, temporary bool
	}{
		{"WSAECONNRESET", wrap("wsarecv", windows.WSAECONNRESET), true, true},
		{"WSAECONNABORTED", wrap("wsasend", windows.WSAECONNABORTED), true, true},
		{"ERROR_NETNAME_DELETED", wrap("wsarecv", windows.ERROR_NETNAME_DELETED), true, true},
		{"WSAEMFILE", wrap("acceptex", windows.WSAEMFILE), false, true},
		{"WSAENOBUFS", wrap("acceptex", windows.WSAENOBUFS), false, true},
		{"WSAEINVAL", wrap("acceptex", windows.WSAEINVAL), false, false},
		{"not an errno", errors.New("sluice test: other"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			is.Equal(isReset(tc.err), tc.reset)
			is.Equal(isTemporaryAccept(tc.err), tc.temporary)
		})
	}
}
