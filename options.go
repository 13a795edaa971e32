package sluice

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults, in one place. Each With... option documents the one it overrides.
const (
	defaultLimit              = 64 << 10
	defaultHighWater          = 64 << 10
	defaultLowWater           = 16 << 10
	defaultTLSHandshake       = 60 * time.Second
	defaultTLSShutdown        = 30 * time.Second
	defaultHappyEyeballsDelay = 250 * time.Millisecond
	defaultInterleave         = 1
	defaultCloseTimeout       = 30 * time.Second
)

// An Option configures a Conn, a Reader or a Server. The same options are accepted
// by Dial, NewConn, Pipe, NewReader, Listen and NewServer; each applies the ones
// that concern it and ignores the rest (a server passes the Conn options on to
// every connection it accepts).
type Option func(*config)

// config holds every setting of a Conn, Reader or Server. newConfig sets the
// defaults and applies the options.
type config struct {
	err error // the first invalid option

	// Reading.
	limit int

	// Writing.
	high, low    int
	closeTimeout time.Duration

	// Timeouts.
	idleTimeout    time.Duration
	messageTimeout time.Duration

	// TLS.
	tls           *tls.Config
	serverName    string
	tlsHandshake  time.Duration
	tlsShutdown   time.Duration
	tlsServerSide bool
	tlsSideChosen bool

	// Dialing.
	localAddr          string
	happyEyeballsDelay time.Duration
	interleave         int
	resolver           *net.Resolver
	dialAttempt        func(addr string) // tests only: called as each dial attempt starts, in order

	// Serving.
	backlog      int
	reuseAddr    bool
	reusePort    bool
	keepAlive    *net.KeepAliveConfig
	startServing bool
	maxConns     int
	logger       *slog.Logger
	proxy        ProxyProtocol
	sweep        *sweeper        // the Server's, for its Conns' queues: set by newServer before any Conn exists
	base         context.Context // the values of every handler's ctx (handlerCtx): set by newServer likewise; Background elsewhere
}

// newConfig returns the defaults with opts applied, or the first invalid option's
// error.
func newConfig(opts []Option) (*config, error) {
	cfg := &config{
		limit:              defaultLimit,
		high:               defaultHighWater,
		low:                defaultLowWater,
		closeTimeout:       defaultCloseTimeout,
		tlsHandshake:       defaultTLSHandshake,
		tlsShutdown:        defaultTLSShutdown,
		happyEyeballsDelay: defaultHappyEyeballsDelay,
		interleave:         defaultInterleave,
		reuseAddr:          true,
		startServing:       true,
		base:               context.Background(),
	}
	for _, o := range opts {
		if o != nil {
			o(cfg)
		}
	}
	return cfg, cfg.err
}

// duration returns an option that sets *field (found in the config by at) to
// d, or fails naming what when d is below the least value allowed: 0, or with
// positive, 1 ns.
func duration(what string, d time.Duration, positive bool, at func(*config) *time.Duration) Option {
	return func(cfg *config) {
		switch {
		case positive && d <= 0:
			cfg.fail("%s must be positive, got %v", what, d)
		case d < 0:
			cfg.fail("%s must not be negative, got %v", what, d)
		default:
			*at(cfg) = d
		}
	}
}

func (cfg *config) fail(format string, args ...any) {
	if cfg.err == nil {
		cfg.err = fmt.Errorf("sluice: "+format, args...)
	}
}

// resolverOrDefault returns WithResolver's resolver, else net.DefaultResolver.
func (cfg *config) resolverOrDefault() *net.Resolver {
	if cfg.resolver != nil {
		return cfg.resolver
	}
	return net.DefaultResolver
}

// checkLimits returns an error unless 0 <= low <= high, for WithWriteBufferLimits
// and Conn.SetWriteBufferLimits.
func checkLimits(high, low int) error {
	if low < 0 || high < low {
		return fmt.Errorf("sluice: write buffer limits need 0 <= low <= high, got high %d, low %d", high, low)
	}
	return nil
}

// WithLimit sets the reader limit in bytes (asyncio's limit=): the longest line or
// separator-terminated record ReadLine, ReadUntil and Lines accept. Default 64 KiB.
// n < 1 is an error.
func WithLimit(n int) Option {
	return func(cfg *config) {
		if n < 1 {
			cfg.fail("reader limit must be at least 1, got %d", n)
			return
		}
		cfg.limit = n
	}
}

// WithWriteBufferLimits sets the write queue's high and low watermarks in bytes
// (asyncio's set_write_buffer_limits). Default 64 KiB and 16 KiB. Negative values
// or low > high are an error.
func WithWriteBufferLimits(high, low int) Option {
	return func(cfg *config) {
		if err := checkLimits(high, low); err != nil {
			if cfg.err == nil {
				cfg.err = err
			}
			return
		}
		cfg.high, cfg.low = high, low
	}
}

// WithCloseTimeout bounds how long Close waits for queued data to reach the
// kernel before it aborts the connection. Default 30 s. d <= 0 is an error.
func WithCloseTimeout(d time.Duration) Option {
	return duration("close timeout", d, true, func(cfg *config) *time.Duration { return &cfg.closeTimeout })
}

// WithIdleTimeout closes a Conn on which no byte has been read or handed to the
// kernel for d, at once, dropping what is queued (so a peer that stops reading is
// dropped too, however much is queued); every byte in either direction restarts
// the clock. Its blocked and later reads and writes then return an error
// matching ErrIdleTimeout, and a Server's handler ctx for it is cancelled.
// Default 0: none. d < 0 is an error. Applies to Dial, NewConn, Pipe, Listen
// and NewServer. It costs one timer per Conn, re-armed only when it fires, and
// a clock reading per read or send from the socket; nothing when unset.
func WithIdleTimeout(d time.Duration) Option {
	return duration("idle timeout", d, false, func(cfg *config) *time.Duration { return &cfg.idleTimeout })
}

// WithMessageTimeout bounds how long the rest of a message may take to arrive
// once its first byte has (a slowloris guard: one byte at a time does not keep a
// connection alive): a line (ReadLine, Lines, LineChan), a frame (ReadFrame,
// Frames, FrameChan) or a ReadExactly or ReadUntil result. Past d the read fails
// with an error matching ErrMessageTimeout, which sticks, and the Conn is closed
// as by WithIdleTimeout. Waiting for a message's first byte is not limited by it
// (that is WithIdleTimeout's job); "arrived" means read into the Conn's buffer.
// Read, ReadAll and Chunks read no messages. Default 0: none. d < 0 is an
// error. Applies to Dial, NewConn, Pipe, Listen and NewServer.
func WithMessageTimeout(d time.Duration) Option {
	return duration("message timeout", d, false, func(cfg *config) *time.Duration { return &cfg.messageTimeout })
}

// WithTLS makes Dial and Listen speak TLS with cfg (asyncio's ssl=). Dial
// handshakes before it returns; a Server handshakes before its handler runs.
// Default: no TLS.
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) { c.tls = cfg }
}

// WithServerName sets the name a TLS client verifies and sends in SNI (asyncio's
// server_hostname=). Default: the host being dialled.
func WithServerName(name string) Option {
	return func(cfg *config) { cfg.serverName = name }
}

// WithTLSHandshakeTimeout bounds the TLS handshake (asyncio's
// ssl_handshake_timeout=). Default 60 s. d <= 0 is an error.
func WithTLSHandshakeTimeout(d time.Duration) Option {
	return duration("TLS handshake timeout", d, true, func(cfg *config) *time.Duration { return &cfg.tlsHandshake })
}

// WithTLSShutdownTimeout bounds the TLS close_notify exchange on Close (asyncio's
// ssl_shutdown_timeout=). Default 30 s. d <= 0 is an error.
func WithTLSShutdownTimeout(d time.Duration) Option {
	return duration("TLS shutdown timeout", d, true, func(cfg *config) *time.Duration { return &cfg.tlsShutdown })
}

// WithTLSServerSide chooses the role StartTLS takes. Default: client on a dialled
// Conn, server on an accepted one.
func WithTLSServerSide(on bool) Option {
	return func(cfg *config) { cfg.tlsServerSide, cfg.tlsSideChosen = on, true }
}

// WithLocalAddr binds the local end of a dialled TCP connection to addr, a
// "host:port" (asyncio's local_addr=); a host name is resolved. Dial then tries
// only the remote addresses of a family addr has, and fails if there are none; an
// empty host binds just the port, for either family. Dialing a Unix socket with
// it is an error. Default: chosen by the system.
func WithLocalAddr(addr string) Option {
	return func(cfg *config) { cfg.localAddr = addr }
}

// WithHappyEyeballsDelay sets the RFC 8305 connection attempt delay: how long Dial
// waits for one attempt before starting the next in parallel (asyncio's
// happy_eyeballs_delay=); an attempt that fails starts the next at once. Default
// 250 ms, as RFC 8305 recommends. 0 starts every attempt at once. asyncio's
// default, happy_eyeballs_delay=None, tries one address at a time; a delay longer
// than any connect takes comes close. d < 0 is an error.
func WithHappyEyeballsDelay(d time.Duration) Option {
	return duration("happy eyeballs delay", d, false, func(cfg *config) *time.Duration { return &cfg.happyEyeballsDelay })
}

// WithInterleave sets the RFC 8305 "First Address Family Count": how many
// addresses of the first family are tried before one of the other (asyncio's
// interleave=). Default 1. n < 1 is an error.
func WithInterleave(n int) Option {
	return func(cfg *config) {
		if n < 1 {
			cfg.fail("interleave must be at least 1, got %d", n)
			return
		}
		cfg.interleave = n
	}
}

// WithResolver sets the resolver Dial uses to look up host names. Default:
// net.DefaultResolver.
func WithResolver(r *net.Resolver) Option {
	return func(cfg *config) { cfg.resolver = r }
}

// WithBacklog sets the listen(2) backlog of a Server's sockets (asyncio's
// backlog=): how many connections the kernel completes and queues for a Server
// that is not accepting. Default: the system's maximum (the kernel caps the
// value at somaxconn). n < 1 is an error. Listen applies it on Linux, macOS and
// FreeBSD, where the kernel may round it (Linux queues n+1). On Windows Listen
// fails with an error matching errors.ErrUnsupported: net gives every Windows
// listener SOMAXCONN and cannot be told otherwise, and a socket made by hand
// cannot be handed to net there. NewServer ignores it.
func WithBacklog(n int) Option {
	return func(cfg *config) {
		if n < 1 {
			cfg.fail("backlog must be at least 1, got %d", n)
			return
		}
		cfg.backlog = n
	}
}

// WithReuseAddress sets SO_REUSEADDR on a Server's TCP sockets (asyncio's
// reuse_address=), so that a restarted server can bind a port that connections
// of its earlier run still hold (TIME_WAIT). Default true, as asyncio on Unix.
// On Windows, true sets nothing: Windows allows that by default, and its
// SO_REUSEADDR means something else, letting another socket take over a port in
// use (so net never sets it there either); false sets SO_EXCLUSIVEADDRUSE, so
// that no other socket can bind the port.
func WithReuseAddress(on bool) Option {
	return func(cfg *config) { cfg.reuseAddr = on }
}

// WithReusePort sets SO_REUSEPORT on a Server's TCP sockets, so several servers
// that all set it can share one port (asyncio's reuse_port=). Default false. On
// Linux the kernel balances new connections among them; macOS and FreeBSD let
// them share the port but do not spread connections that way. Windows has no
// SO_REUSEPORT: there true makes Listen fail with an error matching
// errors.ErrUnsupported.
func WithReusePort(on bool) Option {
	return func(cfg *config) { cfg.reusePort = on }
}

// WithKeepAlive sets TCP keep-alive on every connection a Server accepts or Dial
// makes (asyncio's keep_alive=). Default: Go's (enabled, 15 s). It is set
// through net.TCPConn.SetKeepAliveConfig on every platform, so net's rules
// apply: Windows before 10 version 1709 cannot set Count, or Interval without
// Idle, and there a Server logs the failure for each connection while Dial, as
// net.Dialer does, goes on without it. Unix socket connections have no
// keep-alive.
func WithKeepAlive(ka net.KeepAliveConfig) Option {
	return func(cfg *config) { cfg.keepAlive = &ka }
}

// WithStartServing sets whether Listen and NewServer start accepting at once
// (asyncio's start_serving=). Default true; with false, call StartServing or
// Serve.
func WithStartServing(on bool) Option {
	return func(cfg *config) { cfg.startServing = on }
}

// WithMaxConns caps the connections a Server handles at once: at the cap it stops
// accepting, and new connections wait in the listen backlog. Default 0: no cap.
// n < 0 is an error.
func WithMaxConns(n int) Option {
	return func(cfg *config) {
		if n < 0 {
			cfg.fail("max conns must not be negative, got %d", n)
			return
		}
		cfg.maxConns = n
	}
}

// WithLogger sets where a Server logs handler errors, panics and accept errors.
// Default: slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(cfg *config) { cfg.logger = l }
}

// WithProxyProtocol sets whether a Server reads a PROXY protocol header (HAProxy's
// v1 text or v2 binary) at the start of every connection it accepts, before TLS
// and before the handler runs; RemoteAddr and LocalAddr then report the
// addresses it carries. The header must arrive within the idle timeout, or 10 s
// without one; under ProxyRequired a connection without a valid header is
// closed and its handler never runs, and under ProxyOptional one that has sent
// nothing by then is served without one. Default ProxyOff. It applies to Listen
// and NewServer. ProxyOptional lets any client claim any address: use it only
// where every client comes through a trusted proxy. A value other than the
// three ProxyProtocol constants is an error.
func WithProxyProtocol(p ProxyProtocol) Option {
	return func(cfg *config) {
		if p < ProxyOff || p > ProxyRequired {
			cfg.fail("unknown PROXY protocol mode %d", int(p))
			return
		}
		cfg.proxy = p
	}
}
