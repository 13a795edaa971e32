package sluice

import (
	"context"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/windows"
)

// The error numbers Listen tells apart, as Winsock spells them.
const (
	errAddrInUse    = windows.WSAEADDRINUSE
	errAddrNotAvail = windows.WSAEADDRNOTAVAIL
	errAFNoSupport  = windows.WSAEAFNOSUPPORT
	errConnRefused  = windows.WSAECONNREFUSED
)

// soExclusiveAddrUse is SO_EXCLUSIVEADDRUSE, ~SO_REUSEADDR in winsock2.h,
// which x/sys/windows does not name.
const soExclusiveAddrUse = ^windows.SO_REUSEADDR

// checkListenOptions reports the options Windows cannot honour. The backlog:
// net passes listen the system's maximum (SOMAXCONN) and cannot be told
// otherwise, and a socket made by hand cannot be handed to net on Windows
// (net.FileListener is not implemented there). SO_REUSEPORT: Windows has none.
func checkListenOptions(cfg *config) error {
	if cfg.backlog != 0 {
		return unsupported("WithBacklog")
	}
	if cfg.reusePort {
		return unsupported("WithReusePort(true)")
	}
	return nil
}

// listenTCPSocket makes a listening TCP socket on ip and port through net,
// whose "tcp4" and "tcp6" networks give an IPv6 socket IPV6_V6ONLY, so that one
// socket per family can share a port.
//
// WithReuseAddress(true), the default, sets nothing: what SO_REUSEADDR gives a
// Unix server (binding a port that connections of an earlier server hold in
// TIME_WAIT) Windows allows by default, and its SO_REUSEADDR would let another
// socket take over a port in use, which is why net never sets it either.
// WithReuseAddress(false) sets SO_EXCLUSIVEADDRUSE: no other socket may bind
// the port, even with SO_REUSEADDR.
func listenTCPSocket(ip netip.Addr, port int, cfg *config) (net.Listener, error) {
	network := "tcp6"
	if ip.Is4() {
		network = "tcp4"
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		if cfg.reuseAddr {
			return nil
		}
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = windows.SetsockoptInt(windows.Handle(fd), windows.SOL_SOCKET, soExclusiveAddrUse, 1)
		})
		if serr != nil {
			return os.NewSyscallError("setsockopt SO_EXCLUSIVEADDRUSE", serr)
		}
		return err
	}}
	l, err := lc.Listen(context.Background(), network, netip.AddrPortFrom(ip, uint16(port)).String())
	return l, unwrapOp(err)
}

// listenUnixSocket makes a listening AF_UNIX stream socket at path (Windows 10
// version 1803 and later). The Server, not net, removes the file on close, so
// that a file that replaced it is kept, as on the Unix systems.
func listenUnixSocket(path string, _ *config) (net.Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, unwrapOp(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	return l, nil
}
