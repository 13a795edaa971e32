package sluice

import "golang.org/x/sys/windows"

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

// platformErrors are TestErrorClassification's Winsock error numbers: a peer
// gone, and accept's passing troubles.
func platformErrors() []errorCase {
	return []errorCase{
		{"WSAECONNRESET", wrapErrno("wsarecv", windows.WSAECONNRESET), true, true},
		{"WSAECONNABORTED", wrapErrno("wsasend", windows.WSAECONNABORTED), true, true},
		{"ERROR_NETNAME_DELETED", wrapErrno("wsarecv", windows.ERROR_NETNAME_DELETED), true, true},
		{"WSAEMFILE", wrapErrno("acceptex", windows.WSAEMFILE), false, true},
		{"WSAENOBUFS", wrapErrno("acceptex", windows.WSAENOBUFS), false, true},
		{"WSAEINVAL", wrapErrno("acceptex", windows.WSAEINVAL), false, false},
	}
}
