package sluice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"
)

// bindAttempts bounds how often Listen starts over when the port the kernel
// gave its first socket is taken on one of its other addresses.
const bindAttempts = 5

// listener is a listening socket and, for a Unix socket that Listen bound, the
// file to remove when the Server closes.
type listener struct {
	net.Listener
	path string      // the socket file, or "" (abstract sockets, NewServer)
	file os.FileInfo // the socket file as bound, to tell if it was replaced
}

// close closes the socket, then removes its file if it is still the one bound,
// as asyncio's _stop_serving compares the inode.
func (ln *listener) close(log *slog.Logger) error {
	err := ln.Listener.Close()
	if ln.path == "" {
		return err
	}
	if fi, serr := os.Stat(ln.path); serr == nil && os.SameFile(fi, ln.file) {
		if rerr := os.Remove(ln.path); rerr != nil {
			log.Error("sluice: cannot remove the Unix socket file", "path", ln.path, "err", rerr)
		}
	}
	return err
}

// Listen listens on address and returns a Server that runs h for every
// connection (asyncio's start_server, and start_unix_server for "unix").
//
// network is "tcp", "tcp4", "tcp6" or "unix". A TCP address is "host:port"; a
// host name is resolved (WithResolver) and every address gets a socket of its
// own, as asyncio binds every getaddrinfo result. A host of "" listens on every
// interface: 0.0.0.0 and [::] for "tcp" (one socket per family, the IPv6 one
// IPV6_V6ONLY as asyncio's, and only where the system has IPv6), one of them for
// "tcp4" or "tcp6". With port 0, every socket gets the same port: the first is
// bound to a port the kernel picks and the others to that one, starting over if
// it is taken on one of the other addresses (asyncio's sockets would each get a
// different port). Addrs lists the bound addresses.
//
// For "unix", address is the socket file's path, or on Linux "@name", an
// abstract socket (elsewhere "@name" is an error matching
// errors.ErrUnsupported, never a file named "@name"). A socket file at that
// path that nothing accepts on (left by a process that died) is removed first;
// a live one, or a file of another kind, makes Listen fail, where asyncio would
// remove any socket file. The Server removes the file when it closes, unless
// another file has replaced it meanwhile.
//
// Listen creates the sockets itself so that the options reach them: WithBacklog
// (the listen(2) backlog), WithReuseAddress, WithReusePort, and for accepted
// connections WithKeepAlive and the Conn options (WithLimit,
// WithWriteBufferLimits, WithCloseTimeout). An option the platform cannot
// honour (each option's doc says where: WithBacklog and WithReusePort(true) on
// Windows) fails Listen with an error matching errors.ErrUnsupported before any
// socket is made. The sockets listen at once; with WithStartServing(false),
// clients that connect before StartServing or Serve wait in the backlog
// (asyncio would refuse them until then).
//
// ctx bounds the name resolution, and its values reach every handler's ctx; its
// end afterwards does not affect the Server. Errors: an invalid option, a nil
// h, an unknown network, an unsupported option, ctx.Err(), the resolution's or
// a socket call's (a *net.OpError wrapping the system's error number, so
// errors.Is(err, syscall.EADDRINUSE) works; on Windows it is Winsock's,
// windows.WSAEADDRINUSE from golang.org/x/sys/windows).
func Listen(ctx context.Context, network, address string, h Handler, opts ...Option) (*Server, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errNilHandler
	}
	if err := checkListenOptions(cfg); err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	var lns []*listener
	switch network {
	case "tcp", "tcp4", "tcp6":
		lns, err = listenTCP(ctx, network, address, cfg)
	case "unix":
		var ln *listener
		ln, err = listenUnix(address, cfg)
		lns = []*listener{ln}
	default:
		err = net.UnknownNetworkError(network)
	}
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return newServer(ctx, lns, h, cfg), nil
}

// listenTCP makes a listening socket for every address host resolves to, all
// on the same port.
func listenTCP(ctx context.Context, network, address string, cfg *config) ([]*listener, error) {
	host, service, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	resolver := cfg.resolverOrDefault()
	port, err := resolver.LookupPort(ctx, network, service)
	if err != nil {
		return nil, err
	}
	ips, wildcard, err := listenIPs(ctx, resolver, network, host)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		lns, err := bindAll(ips, port, wildcard, cfg)
		if err == nil || port != 0 || attempt == bindAttempts || !errors.Is(err, errAddrInUse) {
			return lns, err
		}
	}
}

// listenIPs returns the addresses to listen on: both wildcards for host "" (as
// many as network allows), else what resolveIPs gives.
func listenIPs(ctx context.Context, r *net.Resolver, network, host string) (ips []netip.Addr, wildcard bool, err error) {
	if host != "" {
		all, err := resolveIPs(ctx, r, network, host)
		for _, ip := range all {
			if !slices.Contains(ips, ip) {
				ips = append(ips, ip) // one socket per address
			}
		}
		return ips, false, err
	}
	switch network {
	case "tcp4":
		return []netip.Addr{netip.IPv4Unspecified()}, true, nil
	case "tcp6":
		return []netip.Addr{netip.IPv6Unspecified()}, true, nil
	}
	return []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}, true, nil
}

// bindAll listens on every ip at port; with port 0, on the port the first
// socket gets. An address whose family the system lacks is skipped (and, for
// the wildcards, one it cannot bind); anything else fails the whole.
func bindAll(ips []netip.Addr, port int, wildcard bool, cfg *config) ([]*listener, error) {
	var lns []*listener
	fail := func(err error) ([]*listener, error) {
		for _, ln := range lns {
			ln.Close()
		}
		return nil, err
	}
	for _, ip := range ips {
		l, err := listenTCPSocket(ip, port, cfg)
		if err != nil {
			if errors.Is(err, errAFNoSupport) || (wildcard && errors.Is(err, errAddrNotAvail)) {
				continue
			}
			return fail(fmt.Errorf("%s: %w", netip.AddrPortFrom(ip, uint16(port)), err))
		}
		lns = append(lns, &listener{Listener: l})
		if port == 0 {
			port = l.Addr().(*net.TCPAddr).Port
		}
	}
	if len(lns) == 0 {
		return nil, fmt.Errorf("no address family of %v is available: %w", ips, errAFNoSupport)
	}
	return lns, nil
}

// listenUnix listens on a Unix socket at path, first removing a stale socket
// file there, and remembers the file to remove it on close.
func listenUnix(path string, cfg *config) (*listener, error) {
	if path == "" {
		return nil, errors.New("sluice: a Unix socket needs a path")
	}
	if err := abstractErr(path); err != nil {
		return nil, err
	}
	abstract := isAbstract(path)
	if !abstract {
		removeStaleSocket(path)
	}
	l, err := listenUnixSocket(path, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ln := &listener{Listener: l}
	if !abstract {
		ln.file, err = os.Stat(path)
		if err != nil {
			l.Close()
			return nil, err
		}
		ln.path = path
	}
	return ln, nil
}

// removeStaleSocket removes the socket file at path if nothing accepts
// connections on it: connecting is refused once its listener is gone.
func removeStaleSocket(path string) {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return
	}
	if errors.Is(err, errConnRefused) {
		os.Remove(path)
	}
}

// isAbstract reports whether a Unix socket address names the abstract
// namespace (Linux's unix(7)): "@name", or a leading NUL byte.
func isAbstract(path string) bool {
	return path != "" && (path[0] == '@' || path[0] == 0)
}

// abstractErr returns the error for a path naming an abstract Unix socket
// where the platform has none, else nil.
func abstractErr(path string) error {
	if isAbstract(path) && !abstractUnixSockets {
		return unsupported("the abstract Unix socket " + strconv.Quote(path))
	}
	return nil
}

// unsupported returns the error for a feature that this platform lacks. It
// matches errors.ErrUnsupported.
func unsupported(what string) error {
	return fmt.Errorf("sluice: %s is not supported on %s: %w", what, runtime.GOOS, errors.ErrUnsupported)
}
