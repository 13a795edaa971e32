//go:build unix

package sluice

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxBacklog is the listen(2) backlog without WithBacklog: the kernel caps it
// (at net.core.somaxconn on Linux, kern.ipc.somaxconn on macOS and FreeBSD), so
// the system's maximum applies, as with net.Listen.
const maxBacklog = 1<<16 - 1

// The error numbers Listen tells apart, as this system spells them.
const (
	errAddrInUse    = unix.EADDRINUSE
	errAddrNotAvail = unix.EADDRNOTAVAIL
	errAFNoSupport  = unix.EAFNOSUPPORT
	errConnRefused  = unix.ECONNREFUSED
)

// checkListenOptions reports an option this platform cannot honour: none, on
// the Unix systems.
func checkListenOptions(*config) error { return nil }

// listenTCPSocket makes a listening TCP socket on ip and port with the
// config's options.
func listenTCPSocket(ip netip.Addr, port int, cfg *config) (net.Listener, error) {
	sa, family, err := sockaddrOf(ip, port)
	if err != nil {
		return nil, err
	}
	return socketListener(family, sa, cfg, true)
}

// listenUnixSocket makes a listening Unix stream socket at path ("@name" is
// Linux's abstract namespace, which Listen allows only there).
func listenUnixSocket(path string, cfg *config) (net.Listener, error) {
	return socketListener(unix.AF_UNIX, &unix.SockaddrUnix{Name: path}, cfg, false)
}

func sockaddrOf(ip netip.Addr, port int) (unix.Sockaddr, int, error) {
	if ip.Is4() {
		return &unix.SockaddrInet4{Port: port, Addr: ip.As4()}, unix.AF_INET, nil
	}
	sa := &unix.SockaddrInet6{Port: port, Addr: ip.As16()}
	if zone := ip.Zone(); zone != "" {
		ifi, err := net.InterfaceByName(zone)
		if err != nil {
			if n, nerr := strconv.Atoi(zone); nerr == nil {
				sa.ZoneId = uint32(n)
				return sa, unix.AF_INET6, nil
			}
			return nil, 0, err
		}
		sa.ZoneId = uint32(ifi.Index)
	}
	return sa, unix.AF_INET6, nil
}

// socketListener makes a listening stream socket with the config's options and
// backlog, which net.Listen cannot do: it always passes listen(2) the system's
// maximum. tcp says whether the TCP options apply.
func socketListener(family int, sa unix.Sockaddr, cfg *config, tcp bool) (net.Listener, error) {
	fd, err := cloexecSocket(family)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "sluice-listener")
	defer f.Close() // net.FileListener works on a duplicate
	if tcp {
		if err := setTCPListenOptions(fd, family, cfg); err != nil {
			return nil, err
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, os.NewSyscallError("bind", err)
	}
	backlog := cfg.backlog
	if backlog == 0 {
		backlog = maxBacklog
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return nil, os.NewSyscallError("listen", err)
	}
	return net.FileListener(f)
}

// cloexecSocket returns a new stream socket, close-on-exec. macOS has no
// SOCK_CLOEXEC, so the flag is set after socket(2), holding syscall.ForkLock so
// that no child started meanwhile inherits the socket (as socketPair does, and
// net itself on macOS).
func cloexecSocket(family int) (int, error) {
	syscall.ForkLock.RLock()
	fd, err := unix.Socket(family, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return fd, nil
}

// setTCPListenOptions sets what asyncio's create_server sets: SO_REUSEADDR and
// SO_REUSEPORT as asked, and IPV6_V6ONLY on IPv6 sockets, so that one socket per
// family can share a port.
func setTCPListenOptions(fd, family int, cfg *config) error {
	opts := []struct {
		on          bool
		level, name int
		what        string
	}{
		{cfg.reuseAddr, unix.SOL_SOCKET, unix.SO_REUSEADDR, "SO_REUSEADDR"},
		{cfg.reusePort, unix.SOL_SOCKET, unix.SO_REUSEPORT, "SO_REUSEPORT"},
		{family == unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, "IPV6_V6ONLY"},
	}
	for _, o := range opts {
		if !o.on {
			continue
		}
		if err := unix.SetsockoptInt(fd, o.level, o.name, 1); err != nil {
			return os.NewSyscallError("setsockopt "+o.what, err)
		}
	}
	return nil
}
