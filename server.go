package sluice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/sourcegraph/conc/panics"
)

const (
	// Temporary accept errors (EMFILE, ENFILE, ECONNABORTED, ...) are retried
	// after a pause that doubles from minAcceptDelay to maxAcceptDelay, as
	// net/http's Server.Serve does.
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

var errNilHandler = errors.New("sluice: a Server needs a handler")

// A Handler serves one connection accepted by a Server (asyncio's
// client_connected_cb). It runs in a goroutine of its own; when it returns, the
// Server closes c, flushing what is queued first (bounded by WithCloseTimeout),
// so a handler need not close c itself.
//
// ctx carries the values of the ctx given to Listen. It is cancelled as soon as
// c is closed or aborted by anyone (the Server's CloseClients, AbortClients or
// Shutdown, another goroutine, WithIdleTimeout or WithMessageTimeout), and once
// the handler returns; the Server's Close alone and the end of Serve's ctx leave
// it running, as they leave the connection open.
//
// A non-nil error is logged with the peer's address through the Server's
// logger, at level Error, or at Debug where the peer went away (io.EOF, a
// connection reset, a broken pipe) or the error came of c closing before the
// handler returned (it matches net.ErrClosed, context.Canceled or a timeout's
// error). A panic is recovered, logged at level Error with its stack, and
// closes that connection only, as net/http does.
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
// connection, one that sends what Writes from other goroutines leave while a
// handler's Lines, Frames or Chunks loop body waits on something else (see
// Conn.Write), and, during CloseClients, one per connection being closed.
// Close waits for the accept goroutines and that sender, which end with it;
// WaitClosed returns once all have ended.
type Server struct {
	handler Handler
	cfg     *config // shared read-only with every accepted Conn
	log     *slog.Logger
	lns     []*listener // set at construction, never changed

	// slots holds one token per connection being handled, under WithMaxConns; nil
	// without a cap. An accept loop sends before Accept; a connection's goroutine
	// receives when it ends.
	slots chan struct{}

	// stopCtx is cancelled when the Server closes; its Done channel ends the
	// accept loops' waits (a slot, an accept backoff) and Serve.
	stopCtx   context.Context
	stop      context.CancelFunc
	sweep     sweeper // sends what Writes leave in a handler's loop body (sweeper): runs with the accept loops
	closeOnce sync.Once
	closeErr  error // from closing the listeners; set once by closeOnce

	mu       sync.Mutex           // guards the fields below
	serving  bool                 // StartServing has started the accept loops
	closed   bool                 // the Server has begun to close
	serveErr error                // the accept error that closed the Server, if one did
	conns    map[*Conn]bool       // live connections: true while their handler runs
	pending  map[net.Conn]bool    // accepted, PROXY header not read yet: true once the Server has closed it
	live     int                  // goroutines in wg that have not ended
	finished chan struct{}        // closed once closed && live == 0
	stats    ServerStats          // Active and the byte counts are filled in by Stats
	done     struct{ r, w int64 } // bytes moved by connections that have ended

	loops sync.WaitGroup // the accept loops: Close waits for them
	wg    sync.WaitGroup // every goroutine counted in live: WaitClosed waits for them
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

func newServer(ctx context.Context, lns []*listener, h Handler, cfg *config) *Server {
	s := &Server{
		handler:  h,
		cfg:      cfg,
		log:      cfg.logger,
		lns:      lns,
		conns:    make(map[*Conn]bool),
		pending:  make(map[net.Conn]bool),
		finished: make(chan struct{}),
		sweep:    newSweeper(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.maxConns > 0 {
		s.slots = make(chan struct{}, cfg.maxConns)
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	cfg.sweep = &s.sweep
	cfg.base = context.WithoutCancel(ctx)
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
		s.live++
		s.loops.Add(1)
		s.wg.Add(1)
		// Owned by the Server: Close and WaitClosed wait for it. It ends when
		// the Server closes (its listener closed, stopCtx cancelled) or on an
		// accept error that is not temporary, which closes the Server.
		go s.acceptLoop(ln)
	}
	s.live++
	s.loops.Add(1)
	s.wg.Add(1)
	// Owned by the Server as the accept loops are: Close and WaitClosed wait
	// for it. It ends when the Server closes.
	go func() {
		defer s.loops.Done()
		defer s.exited()
		s.sweep.run(s.stopCtx.Done(), s.liveConns)
	}()
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
// on a closed Server, it returns ErrServerClosed; if an accept error that is not
// temporary closed the Server (its listener closed behind its back, say), it
// returns that error. Any number of goroutines may call Serve.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.StartServing(); err != nil {
		return s.closedErr()
	}
	if err := ctx.Err(); err != nil {
		s.Close()
		return err
	}
	select {
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	case <-s.stopCtx.Done():
		return s.closedErr()
	}
}

// closedErr returns why a closed Server stopped serving.
func (s *Server) closedErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serveErr != nil {
		return s.serveErr
	}
	return ErrServerClosed
}

// Close stops accepting connections and leaves the live ones alone (asyncio's
// Server.close): it closes the listening sockets, removes a Unix socket's file
// that Listen made (unless another file has replaced it), and returns once the
// accept loops have ended, so no connection is accepted after it returns.
// Connections waiting in the backlog are refused. It returns the error from
// closing the listeners; later calls wait for the first and return the same.
func (s *Server) Close() error {
	s.closeOnce.Do(s.shut)
	s.loops.Wait()
	return s.closeErr
}

// shut marks the Server closed and closes its listeners, which ends the accept
// loops; Close, or an accept loop that met a fatal error, runs it once.
func (s *Server) shut() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	var errs []error
	for _, ln := range s.lns {
		errs = append(errs, ln.close(s.log))
	}
	s.closeErr = errors.Join(errs...)
	s.mu.Lock()
	s.finishLocked()
	s.mu.Unlock()
}

// CloseClients closes every live connection gracefully (asyncio's
// Server.close_clients), as Conn.Close does: each handler's ctx is cancelled and
// its blocked reads and writes fail at once with an error matching
// net.ErrClosed, then what is queued is sent (bounded by WithCloseTimeout) and
// the connection closed. A connection whose PROXY header has not arrived yet is
// closed without a handler. It does not block: the closes run in goroutines of
// the Server's, which WaitClosed waits for and AbortClients cuts short.
// Connections accepted afterwards are served as usual; call Close first to stop
// them (Shutdown does).
func (s *Server) CloseClients() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closePendingLocked()
	for c := range s.conns {
		if c.IsClosing() {
			continue
		}
		s.live++
		s.wg.Add(1)
		// Owned by the Server: WaitClosed waits for it. It ends when c's Close
		// does: the flush is bounded by the close timeout; AbortClients ends it.
		go func() {
			defer s.exited()
			c.Close()
		}()
	}
}

// AbortClients closes every live connection at once, dropping what is queued
// (asyncio's Server.abort_clients); TCP connections are reset. Each handler's
// ctx is cancelled and its blocked reads and writes fail with an error matching
// net.ErrClosed. It does not wait for the handlers to return (WaitClosed does).
func (s *Server) AbortClients() {
	s.mu.Lock()
	s.closePendingLocked()
	s.mu.Unlock()
	for _, c := range s.liveConns(nil) {
		c.Abort()
	}
}

// liveConns appends the live connections to buf and returns it.
func (s *Server) liveConns(buf []*Conn) []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		buf = append(buf, c)
	}
	return buf
}

// closePendingLocked closes the connections still waiting for their PROXY
// header; their goroutines then end without running the handler.
func (s *Server) closePendingLocked() {
	for nc, closed := range s.pending {
		if !closed {
			s.pending[nc] = true
			nc.Close()
		}
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

// exited accounts for the end of a goroutine counted in live.
func (s *Server) exited() {
	s.mu.Lock()
	s.live--
	s.finishLocked()
	s.mu.Unlock()
	s.wg.Done()
}

// finishLocked closes finished once the Server is closed and nothing of it runs.
func (s *Server) finishLocked() {
	if s.closed && s.live == 0 {
		select {
		case <-s.finished:
		default:
			close(s.finished)
		}
	}
}

// acceptLoop accepts connections from ln and hands each to a goroutine of its
// own, until the Server closes. Under WithMaxConns it takes a slot before each
// Accept, so at the cap new clients wait in the listen backlog. Temporary
// accept errors (too many open files, a connection aborted before it was
// accepted) are logged and retried after a pause that grows from 5 ms to 1 s;
// any other error closes the Server, and Serve returns it.
func (s *Server) acceptLoop(ln *listener) {
	defer s.loops.Done()
	defer s.exited()
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
		if !isTemporaryAccept(err) {
			s.log.Error("sluice: accept failed; closing the server", "addr", ln.Addr(), "err", err)
			s.mu.Lock()
			s.serveErr = fmt.Errorf("sluice: accept on %v: %w", ln.Addr(), err)
			s.mu.Unlock()
			s.closeOnce.Do(s.shut)
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

// handle registers an accepted connection and starts the goroutine that
// serves it. It registers it before Accept is called again, so that once Close
// has returned, CloseClients and AbortClients reach every connection.
func (s *Server) handle(nc net.Conn) {
	if ka := s.cfg.keepAlive; ka != nil {
		if kc, ok := nc.(keepAliveConfigurer); ok {
			if err := kc.SetKeepAliveConfig(*ka); err != nil {
				s.log.Warn("sluice: cannot set keep-alive", "peer", nc.RemoteAddr(), "err", err)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Accepted++
	s.live++
	s.wg.Add(1)
	// Owned by the Server: WaitClosed waits for it. It ends when the handler
	// has returned and its Conn is closed; CloseClients and AbortClients close
	// the Conn (or the connection, while its PROXY header is awaited), which
	// ends the handler's reads and writes and cancels its ctx.
	if s.cfg.proxy == ProxyOff {
		go s.serveConn(s.openLocked(nc, proxyInfo{}))()
		return
	}
	s.pending[nc] = false
	go s.serveProxied(nc)
}

// openLocked makes and registers the Conn for nc.
func (s *Server) openLocked(nc net.Conn, p proxyInfo) *Conn {
	c := newConn(nc, s.cfg, connOptions{
		accepted: true, remote: p.remote, local: p.local, pre: p.rest,
	})
	s.conns[c] = false
	return c
}

// serveConn returns the goroutine that serves c: it runs the TLS handshake
// (with WithTLS; bounded by the handshake timeout, in c's own goroutine, so a
// silent peer holds nothing else up), then the handler; finishConn, deferred,
// recovers a panic, logs how the handler ended and closes c. Its frame is the
// only one of the Server's beneath the handler, and a small one: a handler
// parked in a read keeps its goroutine at 2 KiB of stack only while the whole
// chain stays under about 1.1 KiB (past that the stack doubles, and a
// goroutine parked in I/O never shrinks back). So the go statement runs the
// returned func itself, with no wrapper frame of the compiler's beneath it (a
// go statement with arguments gets one), and it takes only c, which is the
// handler's ctx too (handlerCtx).
func (s *Server) serveConn(c *Conn) func() {
	return func() {
		h := handlerEnd{c: c}
		defer s.finishConn(&h)
		if s.handshake(&h) {
			h.err = s.handler(handlerCtx{c}, c)
		}
	}
}

// handlerEnd is a handler's Conn and the error it returned (finishConn
// recovers a panic).
type handlerEnd struct {
	c   *Conn
	err error
}

// handshake runs the TLS handshake where the Server has WithTLS and reports
// whether the handler is to run, marking it running.
func (s *Server) handshake(h *handlerEnd) bool {
	if err := h.c.serverHandshake(handlerCtx{h.c}); err != nil {
		h.err = &handshakeError{err}
		return false
	}
	s.running(h.c)
	return true
}

// running records that c's handler runs, for Stats' Active.
func (s *Server) running(c *Conn) {
	s.mu.Lock()
	s.conns[c] = true
	s.mu.Unlock()
}

// ended records that c's handler has ended, counting it in counted (Errors or
// Panics) unless that is nil: in one step, and at once, not when c's close has
// flushed (WithCloseTimeout), so that Stats never shows it in neither.
func (s *Server) ended(c *Conn, counted *int64) {
	s.mu.Lock()
	s.conns[c] = false
	if counted != nil {
		*counted++
	}
	s.mu.Unlock()
}

// proxyHeaderWait bounds the wait for a PROXY header where WithIdleTimeout does
// not.
const proxyHeaderWait = 10 * time.Second

// serveProxied reads nc's PROXY header (WithProxyProtocol), before TLS and
// before the handler, within the idle timeout or proxyHeaderWait, then serves
// the Conn as serveConn does. A connection whose header is missing (under
// ProxyRequired) or bad is closed, counted in Rejected, and never reaches the
// handler.
func (s *Server) serveProxied(nc net.Conn) {
	wait := proxyHeaderWait
	if s.cfg.idleTimeout > 0 {
		wait = s.cfg.idleTimeout
	}
	p, err := readProxyHeader(nc, s.cfg.proxy, time.Now().Add(wait))
	s.mu.Lock()
	closed := s.pending[nc]
	delete(s.pending, nc)
	if err != nil || closed {
		if !closed {
			s.stats.Rejected++
		}
		s.mu.Unlock()
		nc.Close()
		if err != nil && !closed {
			s.log.Info("sluice: connection refused: PROXY protocol header", "peer", nc.RemoteAddr(), "err", err)
		}
		s.releaseSlot()
		s.exited()
		return
	}
	c := s.openLocked(nc, p)
	s.mu.Unlock()
	s.serveConn(c)()
}

// handshakeError marks a failed TLS handshake, for the log.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "sluice: TLS handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// finishConn is serveConn's deferred call: it recovers a panic of the
// handler's, as net/http does, logs how the handler ended (a panic with its
// stack, an error, a failed handshake), counts it, closes c and forgets it.
// Its frame is small, and the log's calls are made beneath it (logEnd): it
// runs beneath serveConn's frame, on the handler's stack, which a larger
// frame would make grow at every connection's end (see serveConn).
func (s *Server) finishConn(h *handlerEnd) {
	c := h.c
	var r *panics.Recovered
	if v := recover(); v != nil { // nil where it returned, or called runtime.Goexit
		r = recovered(v)
	}
	defer s.exited()
	defer s.releaseSlot()
	counted := s.logEnd(c, h.err, r)
	if counted == &s.stats.Errors && c.clock.timedOut() {
		counted = nil // the handler's error came of a timeout that fired before it returned
	}
	s.ended(c, counted)
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) && !isTimeout(c.closeReason()) {
		s.logErr(slog.LevelDebug, "sluice: close", c, err)
	}
	c.WaitClosed(context.Background()) // a CloseClients may still be flushing c
	s.forget(c)
}

// recovered is the panic of value v with its stack, as finishConn recovered
// it: apart, so that finishConn's frame is small.
//
//go:noinline
func recovered(v any) *panics.Recovered {
	r := panics.NewRecovered(2, v) // the stack from finishConn's frame on, as if it had called NewRecovered
	return &r
}

// logEnd logs how c's handler ended, having returned err or panicked (r),
// and returns the count it goes in (Errors or Panics), or nil. Its own frame
// is small, and so are logErr's, where most records are made: a connection's
// end takes this path on the handler's stack, beneath finishConn.
func (s *Server) logEnd(c *Conn, err error, r *panics.Recovered) *int64 {
	switch {
	case r != nil:
		s.logPanic(c, r)
		return &s.stats.Panics
	case err == nil:
		return nil
	}
	var hs *handshakeError
	if errors.As(err, &hs) {
		// A failed handshake aborts the Conn, so its ctx is always done here:
		// only a peer that went away, or the Server closing the Conn during
		// the handshake, is not worth an operator's attention.
		level := slog.LevelInfo
		if peerLeft(hs.err) || errors.Is(hs.err, net.ErrClosed) || errors.Is(hs.err, context.Canceled) {
			level = slog.LevelDebug
		}
		s.logErr(level, "sluice: TLS handshake failed", c, hs.err)
		return nil
	}
	// Closed before the handler returned, by the Server, a timeout or the
	// handler's own: the queue says so from the close's first step, before a
	// blocked read is woken or the ctx is cancelled.
	if !peerLeft(err) && !(c.IsClosing() && cameOfClose(err)) {
		s.logErr(slog.LevelError, "sluice: handler error", c, err)
		return &s.stats.Errors
	}
	s.logErr(slog.LevelDebug, "sluice: handler error", c, err)
	return nil
}

// logErr logs msg at level, with c's peer and err. It asks first whether the
// level is logged at all: slog's Log has a large frame even where it is not.
func (s *Server) logErr(level slog.Level, msg string, c *Conn, err error) {
	if s.log.Enabled(context.Background(), level) {
		s.log.Log(context.Background(), level, msg, "peer", peerAddr{c}, "err", err)
	}
}

// logPanic logs a panic of c's handler, with its stack.
func (s *Server) logPanic(c *Conn, r *panics.Recovered) {
	s.log.Error("sluice: handler panic", "peer", peerAddr{c}, "panic", r.Value, "stack", string(r.Stack))
}

// forget drops c from the live connections, adding its counts to the Server's.
func (s *Server) forget(c *Conn) {
	st := c.Stats()
	timedOut := c.clock.timedOut() // also where a Close was flushing: its reason stays the Close's
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	s.done.r += st.BytesRead
	s.done.w += st.BytesWritten
	if timedOut {
		s.stats.TimedOut++
	}
}

// cameOfClose reports whether a handler's error is what c's close, by anyone,
// makes its reads, writes and ctx return: net.ErrClosed, the ctx's
// cancellation, a timeout's error. Where c was closing, such an error came of
// that; any other is the handler's own (one that closed c itself, say).
func cameOfClose(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) || isTimeout(err)
}

// isTimeout reports whether a Conn was closed by WithIdleTimeout or
// WithMessageTimeout.
func isTimeout(reason error) bool {
	return errors.Is(reason, ErrIdleTimeout) || errors.Is(reason, ErrMessageTimeout)
}

// peerLeft reports whether err says the peer went away: EOF, a reset, a
// broken pipe. A handler that returns it has done nothing wrong.
func peerLeft(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)
}

// peerAddr is c's peer in a log record: its address is formatted only where
// the record is written.
type peerAddr struct{ c *Conn }

// LogValue implements slog.LogValuer: the peer's address, or "unknown".
func (p peerAddr) LogValue() slog.Value {
	if a := p.c.RemoteAddr(); a != nil {
		if s := a.String(); s != "" {
			return slog.StringValue(s)
		}
	}
	return slog.StringValue("unknown")
}
