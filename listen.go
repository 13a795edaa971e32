package sluice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/sourcegraph/conc"
	"github.com/sourcegraph/conc/panics"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

const (
	// maxBacklog is the listen(2) backlog without WithBacklog: the kernel caps it
	// at net.core.somaxconn, so the system's maximum applies (as net.Listen).
	maxBacklog = 1<<16 - 1

	// Accept errors such as EMFILE are retried after a pause that doubles from
	// minAcceptDelay to maxAcceptDelay, as net/http's Server.Serve does.
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second

	// bindAttempts bounds how often Listen starts over when the port the kernel
	// gave its first socket is taken on one of its other addresses.
	bindAttempts = 5
)

// A Handler serves one connection accepted by a Server (asyncio's
// client_connected_cb). It runs in a goroutine of its own; when it returns, the
// Server closes c, flushing what is queued first (bounded by WithCloseTimeout),
// so a handler need not close c itself.
//
// ctx carries the values of the ctx given to Listen. It is cancelled when the
// Server closes the connection (CloseClients, AbortClients, or Shutdown through
// them) and once the handler returns; Close alone and the end of Serve's ctx
// leave it running, as they leave the connection open.
//
// A non-nil error is logged with the peer's address through the Server's
// logger, at level Error, or at Debug where the peer went away (io.EOF, a
// connection reset, a broken pipe) or the Server was closing that connection.
// A panic is recovered, logged at level Error with its stack, and closes that
// connection only, as net/http does.
type Handler func(ctx context.Context, c *Conn) error

// A Server accepts stream connections and runs a Handler for each (asyncio's
// Server, from start_server and start_unix_server). Listen and NewServer make
// one; it starts accepting at once unless WithStartServing(false) was given.
//
// Lifecycle, as asyncio 3.13's: Close stops accepting and leaves live
// connections alone; CloseClients closes them gracefully and AbortClients at
// once; WaitClosed waits for the Server to be closed and every handler to
// return; Shutdown does all three in order. Every method is safe to call
// concurrently and more than once.
//
// The Server owns one accept goroutine per listening socket, one goroutine per
// connection, and, during CloseClients, one per connection being closed.
// WaitClosed returns once all have ended.
type Server struct {
	handler Handler
	cfg     *config // shared read-only with every accepted Conn
	log     *slog.Logger
	lns     []*listener     // set at construction, never changed
	base    context.Context // parent of every handler's ctx: never cancelled

	// slots holds one token per connection being handled, under WithMaxConns; nil
	// without a cap. An accept loop sends before Accept; a connection's goroutine
	// receives when it ends.
	slots chan struct{}

	// stopCtx is cancelled when Close begins; its Done channel ends the accept
	// loops' waits (a slot, an accept backoff) and Serve.
	stopCtx   context.Context
	stop      context.CancelFunc
	closeOnce sync.Once
	closeErr  error // from closing the listeners; set once by closeOnce

	mu        sync.Mutex                   // guards the fields below
	serving   bool                         // StartServing has started the accept loops
	closed    bool                         // Close has begun
	loopsDone bool                         // every accept loop has ended
	conns     map[*Conn]context.CancelFunc // live connections, each with its handler ctx's cancel
	live      int                          // goroutines in wg that have not ended
	finished  chan struct{}                // closed once closed && loopsDone && live == 0

	loops conc.WaitGroup // the accept loops: Close waits for them
	// Connection and closer goroutines: WaitClosed waits for them. An errgroup
	// rather than a conc.WaitGroup: a handler's panic is caught (and logged)
	// around the handler itself, and one frame less lies beneath every idle
	// connection's blocked read.
	wg errgroup.Group
}

// listener is a listening socket and, for a Unix socket that Listen bound, the
// file to remove when the Server closes.
type listener struct {
	net.Listener
	path string      // the socket file, or "" (abstract sockets, NewServer)
	file os.FileInfo // the socket file as bound, to tell if it was replaced
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
// For "unix", address is the socket file's path (or "@name", a Linux abstract
// socket). A socket file at that path that nothing accepts on (left by a process
// that died) is removed first; a live one, or a file of another kind, makes
// Listen fail, where asyncio would remove any socket file. The Server removes
// the file when it closes, unless another file has replaced it meanwhile.
//
// Listen creates the sockets itself so that the options reach them: WithBacklog
// (the listen(2) backlog), WithReuseAddress, WithReusePort, and for accepted
// connections WithKeepAlive and the Conn options (WithLimit,
// WithWriteBufferLimits, WithCloseTimeout). The sockets listen at once; with
// WithStartServing(false), clients that connect before StartServing or Serve
// wait in the backlog (asyncio would refuse them until then).
//
// ctx bounds the name resolution, and its values reach every handler's ctx; its
// end afterwards does not affect the Server. Errors: an invalid option, a nil
// h, an unknown network, ctx.Err(), the resolution's or a socket call's (a
// *net.OpError, so errors.Is(err, syscall.EADDRINUSE) works).
func Listen(ctx context.Context, network, address string, h Handler, opts ...Option) (*Server, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errNilHandler
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

// NewServer returns a Server that accepts connections from l and runs h for
// each (asyncio's start_server(sock=)), with Listen's lifecycle; use it for a
// listener made elsewhere (systemd socket activation, a test). It takes
// ownership of l: Close closes it. The options that shape a socket
// (WithBacklog, WithReuseAddress, WithReusePort) are up to whoever made l; the
// others apply. A Unix socket's file is l's to remove (a *net.UnixListener from
// net.Listen removes it on Close). Errors: an invalid option, a nil l or h.
func NewServer(l net.Listener, h Handler, opts ...Option) (*Server, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, errors.New("sluice: NewServer needs a listener")
	}
	if h == nil {
		return nil, errNilHandler
	}
	return newServer(context.Background(), []*listener{{Listener: l}}, h, cfg), nil
}

var errNilHandler = errors.New("sluice: a Server needs a handler")

func newServer(ctx context.Context, lns []*listener, h Handler, cfg *config) *Server {
	s := &Server{
		handler:  h,
		cfg:      cfg,
		log:      cfg.logger,
		lns:      lns,
		base:     context.WithoutCancel(ctx),
		conns:    make(map[*Conn]context.CancelFunc),
		finished: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.maxConns > 0 {
		s.slots = make(chan struct{}, cfg.maxConns)
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	if cfg.startServing {
		s.StartServing() // cannot fail: the Server is not closed yet
	}
	return s
}

// Addrs returns the addresses the Server listens on (asyncio's Server.sockets),
// port 0 resolved, in the order the sockets were bound. It does not block; the
// slice is the caller's. Closing the Server does not change it.
func (s *Server) Addrs() []net.Addr {
	addrs := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		addrs[i] = ln.Addr()
	}
	return addrs
}

// StartServing starts accepting connections (asyncio's Server.start_serving),
// for a Server made with WithStartServing(false); it does nothing if the Server
// is serving already. It does not block. It returns ErrServerClosed after
// Close.
func (s *Server) StartServing() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrServerClosed
	}
	if s.serving {
		return nil
	}
	s.serving = true
	for _, ln := range s.lns {
		// Owned by the Server: Close waits for it. It ends when Close closes its
		// listener or cancels stopCtx, whichever it is waiting on.
		s.loops.Go(func() { s.acceptLoop(ln) })
	}
	return nil
}

// IsServing reports whether the Server is accepting connections (asyncio's
// Server.is_serving): true from StartServing until Close.
func (s *Server) IsServing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serving && !s.closed
}

// Serve accepts connections until ctx ends or the Server is closed (asyncio's
// Server.serve_forever), starting to accept if the Server was not yet. When ctx
// ends, Serve closes the Server, as a cancelled serve_forever does, and returns
// ctx.Err(); it does not wait for the handlers (see Shutdown). After Close, and
// on a closed Server, it returns ErrServerClosed. Any number of goroutines may
// call Serve.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	if err := ctx.Err(); err != nil {
		s.Close()
		return err
	}
	if err := s.StartServing(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	case <-s.stopCtx.Done():
		return ErrServerClosed
	}
}

// Close stops accepting connections and leaves the live ones alone (asyncio's
// Server.close): it closes the listening sockets, removes a Unix socket's file
// that Listen made (unless another file has replaced it), and returns once the
// accept loops have ended, so no connection is accepted after it returns.
// Connections waiting in the backlog are refused. It returns the error from
// closing the listeners; later calls wait for the first and return the same.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.stop()
		var errs []error
		for _, ln := range s.lns {
			errs = append(errs, ln.close(s.log))
		}
		s.closeErr = errors.Join(errs...)
		s.loops.Wait()
		s.mu.Lock()
		s.loopsDone = true
		s.finishLocked()
		s.mu.Unlock()
	})
	return s.closeErr
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

// CloseClients closes every live connection gracefully (asyncio's
// Server.close_clients): each handler's ctx is cancelled and each Conn closed as
// Conn.Close does, sending what is queued first (bounded by WithCloseTimeout),
// so blocked reads and writes fail with an error matching net.ErrClosed. It
// does not block: the closes run in goroutines of the Server's, which WaitClosed
// waits for and AbortClients cuts short. Connections accepted afterwards are
// served as usual; call Close first to stop them (Shutdown does).
func (s *Server) CloseClients() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, cancel := range s.conns {
		cancel()
		if c.IsClosing() {
			continue
		}
		// Owned by the Server: WaitClosed waits for it. It ends when c's Close
		// does: the flush is bounded by the close timeout, AbortClients ends it.
		s.goLocked(func() { c.Close() })
	}
}

// AbortClients closes every live connection at once, dropping what is queued
// (asyncio's Server.abort_clients), and cancels each handler's ctx. Blocked
// reads and writes fail with an error matching net.ErrClosed. It does not wait
// for the handlers to return (WaitClosed does).
func (s *Server) AbortClients() {
	s.mu.Lock()
	conns := make([]*Conn, 0, len(s.conns))
	for c, cancel := range s.conns {
		cancel()
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Abort()
	}
}

// WaitClosed blocks until the Server is closed and every handler has returned
// and its connection is closed (asyncio's Server.wait_closed); before Close it
// blocks too, as asyncio's does since 3.12. It returns nil then, or ctx.Err() if
// ctx ends first. Any number of goroutines may wait.
func (s *Server) WaitClosed(ctx context.Context) error {
	select {
	case <-s.finished:
	case <-ctx.Done():
		select {
		case <-s.finished:
		default:
			return ctx.Err()
		}
	}
	s.wg.Wait() // every goroutine is past its last step: this returns at once
	return nil
}

// Shutdown closes the Server and its connections gracefully, like
// http.Server.Shutdown, in this order: Close, so no new connection is accepted
// (clients still in the backlog are refused); then CloseClients, which cancels
// every handler's ctx and closes each Conn after sending what it has queued;
// then WaitClosed(ctx). If ctx ends first, Shutdown aborts the connections
// (AbortClients) and returns ctx.Err() without waiting further; a handler that
// watches neither its ctx nor its Conn may still be running then, and
// WaitClosed waits for it. Otherwise it returns Close's error.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.Close()
	s.CloseClients()
	if werr := s.WaitClosed(ctx); werr != nil {
		s.AbortClients()
		return werr
	}
	return err
}

// goLocked runs f in a goroutine counted in live, so that WaitClosed can wait
// for it with a context. Call it with s.mu held.
func (s *Server) goLocked(f func()) {
	s.live++
	s.wg.Go(func() error {
		defer s.exited()
		f()
		return nil
	})
}

// serveLocked starts c's goroutine, counted in live like goLocked's, without
// goLocked's wrapper: one frame less beneath the handler.
func (s *Server) serveLocked(ctx context.Context, c *Conn) {
	s.live++
	s.wg.Go(func() error {
		s.serveConn(ctx, c)
		return nil
	})
}

func (s *Server) exited() {
	s.mu.Lock()
	s.live--
	s.finishLocked()
	s.mu.Unlock()
}

// finishLocked closes finished once the Server is closed and nothing of it runs.
func (s *Server) finishLocked() {
	if s.closed && s.loopsDone && s.live == 0 {
		select {
		case <-s.finished:
		default:
			close(s.finished)
		}
	}
}

// acceptLoop accepts connections from ln and hands each to a goroutine of its
// own, until Close. Under WithMaxConns it takes a slot before each Accept, so at
// the cap new clients wait in the listen backlog. Accept errors are logged and
// retried after a pause that grows from 5 ms to 1 s.
func (s *Server) acceptLoop(ln *listener) {
	var delay time.Duration
	for {
		if !s.takeSlot() {
			return
		}
		nc, err := ln.Accept()
		if err == nil {
			delay = 0
			s.handle(nc)
			continue
		}
		s.releaseSlot()
		if s.stopCtx.Err() != nil {
			return
		}
		if errors.Is(err, net.ErrClosed) {
			s.log.Error("sluice: listener closed while the server was serving", "addr", ln.Addr(), "err", err)
			return
		}
		delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
		s.log.Error("sluice: accept error; retrying", "addr", ln.Addr(), "err", err, "delay", delay)
		if !s.pause(delay) {
			return
		}
	}
}

// takeSlot waits for room under WithMaxConns; it reports false if the Server
// closed first.
func (s *Server) takeSlot() bool {
	if s.slots == nil {
		return true
	}
	select {
	case s.slots <- struct{}{}:
		return true
	case <-s.stopCtx.Done():
		return false
	}
}

func (s *Server) releaseSlot() {
	if s.slots != nil {
		<-s.slots
	}
}

// pause waits d, or until Close; it reports false if the Server closed.
func (s *Server) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stopCtx.Done():
		return false
	}
}

// keepAliveConfigurer is a *net.TCPConn, or any connection with its method.
type keepAliveConfigurer interface {
	SetKeepAliveConfig(net.KeepAliveConfig) error
}

// handle makes a Conn of an accepted connection and starts its goroutine.
func (s *Server) handle(nc net.Conn) {
	if ka := s.cfg.keepAlive; ka != nil {
		if kc, ok := nc.(keepAliveConfigurer); ok {
			if err := kc.SetKeepAliveConfig(*ka); err != nil {
				s.log.Warn("sluice: cannot set keep-alive", "peer", nc.RemoteAddr(), "err", err)
			}
		}
	}
	c := newConn(nc, s.cfg)
	c.accepted = true
	ctx, cancel := context.WithCancel(s.base)
	// The Server closes c whenever it cancels ctx (CloseClients, AbortClients,
	// the handler's return), which ends a blocked read as well: reads with ctx
	// need not watch it.
	c.Reader.closesWith = ctx.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[c] = cancel
	// Owned by the Server: WaitClosed waits for it. It ends when the handler
	// has returned and c is closed; CloseClients and AbortClients close c, which
	// ends the handler's reads and writes, and cancel ctx.
	s.serveLocked(ctx, c)
}

// serveConn runs the handler for c, logs how it ended, and closes c. Its frame,
// and those below the handler, are kept small: they sit beneath every idle
// connection's blocked read, and a goroutine whose stack outgrows 2 KiB takes
// 4 KiB.
func (s *Server) serveConn(ctx context.Context, c *Conn) {
	r, err := s.runHandler(ctx, c)
	s.finishConn(ctx, c, r, err)
}

// runHandler runs the TLS handshake (with WithTLS; bounded by the handshake
// timeout, in c's own goroutine, so a silent peer holds nothing else up), then
// the handler, catching a panic.
func (s *Server) runHandler(ctx context.Context, c *Conn) (r *panics.Recovered, err error) {
	if err := c.serverHandshake(ctx); err != nil {
		return nil, &handshakeError{err}
	}
	r = panics.Try(func() { err = s.handler(ctx, c) })
	return r, err
}

// handshakeError marks a failed TLS handshake, for the log.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "sluice: TLS handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// finishConn logs how c's handler ended (a panic with its stack, an error, a
// failed handshake), closes c and forgets it.
//
//go:noinline
func (s *Server) finishConn(ctx context.Context, c *Conn, r *panics.Recovered, err error) {
	defer s.exited()
	defer s.releaseSlot()
	defer s.forget(c)
	peer := peerName(c)
	var hs *handshakeError
	switch {
	case r != nil:
		s.log.Error("sluice: handler panic", "peer", peer, "panic", r.Value, "stack", string(r.Stack))
	case errors.As(err, &hs):
		s.log.Debug("sluice: TLS handshake", "peer", peer, "err", hs.err)
		return // c is closed already
	case err != nil:
		level := slog.LevelError
		if peerLeft(err) || ctx.Err() != nil {
			level = slog.LevelDebug
		}
		s.log.Log(context.Background(), level, "sluice: handler error", "peer", peer, "err", err)
	}
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("sluice: close", "peer", peer, "err", err)
	}
	c.WaitClosed(context.Background()) // a CloseClients may still be flushing c
}

// forget drops c from the live connections and releases its ctx.
func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	cancel := s.conns[c]
	delete(s.conns, c)
	s.mu.Unlock()
	cancel()
}

// peerLeft reports whether err says the peer went away: EOF, a reset, a
// broken pipe. A handler that returns it has done nothing wrong.
func peerLeft(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE)
}

func peerName(c *Conn) string {
	if a := c.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return "unknown"
}

// listenTCP makes a listening socket for every address host resolves to, all
// on the same port.
func listenTCP(ctx context.Context, network, address string, cfg *config) ([]*listener, error) {
	host, service, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	resolver := cfg.resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
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
		if err == nil || port != 0 || attempt == bindAttempts || !errors.Is(err, unix.EADDRINUSE) {
			return lns, err
		}
	}
}

// listenIPs returns the addresses to listen on: both wildcards for host "" (as
// many as network allows), the IP itself, or what a name resolves to.
func listenIPs(ctx context.Context, r *net.Resolver, network, host string) (ips []netip.Addr, wildcard bool, err error) {
	if host == "" {
		switch network {
		case "tcp4":
			return []netip.Addr{netip.IPv4Unspecified()}, true, nil
		case "tcp6":
			return []netip.Addr{netip.IPv6Unspecified()}, true, nil
		}
		return []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}, true, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = r.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, false, err
	}
	var kept []netip.Addr
	for _, ip := range ips {
		ip = ip.Unmap()
		if (network == "tcp4" && !ip.Is4()) || (network == "tcp6" && !ip.Is6()) {
			continue
		}
		if !containsAddr(kept, ip) {
			kept = append(kept, ip)
		}
	}
	if len(kept) == 0 {
		return nil, false, &net.AddrError{Err: "no suitable address", Addr: host}
	}
	return kept, false, nil
}

func containsAddr(ips []netip.Addr, ip netip.Addr) bool {
	for _, x := range ips {
		if x == ip {
			return true
		}
	}
	return false
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
		sa, family, err := sockaddrOf(ip, port)
		if err != nil {
			return fail(err)
		}
		l, err := socketListener(family, sa, cfg, true)
		if err != nil {
			if errors.Is(err, unix.EAFNOSUPPORT) || (wildcard && errors.Is(err, unix.EADDRNOTAVAIL)) {
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
		return nil, fmt.Errorf("no address family of %v is available: %w", ips, unix.EAFNOSUPPORT)
	}
	return lns, nil
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

// listenUnix listens on a Unix socket at path, first removing a stale socket
// file there, and remembers the file to remove it on close.
func listenUnix(path string, cfg *config) (*listener, error) {
	if path == "" {
		return nil, errors.New("sluice: a Unix socket needs a path")
	}
	abstract := path[0] == '@' || path[0] == 0
	if !abstract {
		removeStaleSocket(path)
	}
	l, err := socketListener(unix.AF_UNIX, &unix.SockaddrUnix{Name: path}, cfg, false)
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
	if errors.Is(err, unix.ECONNREFUSED) {
		os.Remove(path)
	}
}

// socketListener makes a listening stream socket with the config's options and
// backlog, which net.Listen cannot do: it always passes listen(2) the system's
// maximum. tcp says whether the TCP options apply.
func socketListener(family int, sa unix.Sockaddr, cfg *config, tcp bool) (net.Listener, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
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
