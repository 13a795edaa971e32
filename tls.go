package sluice

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

var errAlreadyTLS = errors.New("sluice: StartTLS on a connection that already speaks TLS")

// tlsState is a Conn's TLS layer once its handshake is done. It never changes
// afterwards.
type tlsState struct {
	conn     *tls.Conn
	cfg      *tls.Config   // as the caller passed it (ExtraInfo's "sslcontext")
	base     *tlsBase      // the net.Conn beneath the TLS layer
	shutdown time.Duration // bounds the close_notify alert on Close
}

// tlsBase is the net.Conn a Conn's TLS layer runs over: the raw connection,
// except that its first reads return the bytes the Reader had read ahead before
// the upgrade (they belong to the TLS stream: a ClientHello pipelined behind a
// STARTTLS line), and that write deadlines are capped once Close has begun.
type tlsBase struct {
	net.Conn
	pre []byte    // read ahead of the upgrade, not yet read by TLS; used by tls.Conn's reads only
	hs  *activity // the idle clock, told of the handshake's bytes; nil once it is done (or without one)

	mu      sync.Mutex // guards closeBy
	closeBy time.Time  // set by Close: no write deadline goes past it
}

func (b *tlsBase) Read(p []byte) (int, error) {
	if len(b.pre) > 0 {
		n := copy(p, b.pre)
		b.pre = b.pre[n:]
		if len(b.pre) == 0 {
			b.pre = nil
		}
		return n, nil
	}
	n, err := b.Conn.Read(p)
	if n > 0 && b.hs != nil {
		b.hs.touch() // a handshake byte read: progress for WithIdleTimeout
	}
	return n, err
}

// Write writes p to the connection, telling the idle clock of the handshake's
// bytes as Read does.
func (b *tlsBase) Write(p []byte) (int, error) {
	n, err := b.Conn.Write(p)
	if n > 0 && b.hs != nil {
		b.hs.touch()
	}
	return n, err
}

// SetWriteDeadline applies t, capped by closeBy: crypto/tls sets its own 5 s
// deadline for the close_notify alert, and WithTLSShutdownTimeout may be shorter.
func (b *tlsBase) SetWriteDeadline(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closeBy.IsZero() && (t.IsZero() || b.closeBy.Before(t)) {
		t = b.closeBy
	}
	return b.Conn.SetWriteDeadline(t)
}

func (b *tlsBase) SetDeadline(t time.Time) error {
	if err := b.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return b.SetWriteDeadline(t)
}

// shutdownBy caps every write deadline, from now on, at t.
func (b *tlsBase) shutdownBy(t time.Time) {
	b.mu.Lock()
	b.closeBy = t
	b.mu.Unlock()
	b.SetWriteDeadline(t)
}

// StartTLS upgrades the connection to TLS in place (asyncio's
// StreamWriter.start_tls) and returns nil once the handshake has completed. It
// takes the TLS client side on a Conn made by Dial or NewConn and the server side
// on one accepted by a Server; WithTLSServerSide chooses. opts may also set
// WithServerName (default: cfg.ServerName, else the host Dial dialled),
// WithTLSHandshakeTimeout (asyncio's ssl_handshake_timeout, default 60 s) and
// WithTLSShutdownTimeout (ssl_shutdown_timeout, default 30 s); options the Conn
// was made with apply unless opts override them. Certificate verification stays
// on unless cfg turns it off.
//
// It first sends, in plaintext, everything queued by Writes made before it was
// called. Bytes the Conn had read ahead past the plaintext exchange (a
// ClientHello that arrived in the same segment as a "STARTTLS" line) are fed to
// the TLS layer, neither lost nor returned as plaintext (CPython loses them:
// issue 142352). Afterwards every method (Lines, Write, Drain, ...) works
// unchanged, over TLS.
//
// StartTLS blocks until the handshake completes, ctx ends or the handshake
// timeout passes; the last two bound the whole upgrade, the plaintext flush
// included.
//
// Errors: ErrConcurrentRead at once if another goroutine is reading; an error
// matching net.ErrClosed after Close or WriteEOF; an error on a Conn that already
// speaks TLS; the sticky read error (io.EOF once the peer has closed) or write
// error. These, and ctx ending before the queued plaintext is sent (ctx.Err()),
// leave the Conn as it was. Once the handshake has begun, a failure closes the
// Conn, as asyncio's start_tls does, and is returned: ctx.Err(); a timeout error
// (matching os.ErrDeadlineExceeded, a net.Error whose Timeout is true) when the
// handshake timeout passed; or crypto/tls's error (a certificate that cfg
// rejects matches *tls.CertificateVerificationError and the x509 error within).
//
// cfg is cloned, never modified, and may be shared; a nil cfg is the zero
// tls.Config (a client verifies against the system roots).
//
// Concurrency: StartTLS holds the read lock throughout, so no read runs during
// the upgrade (io.Reader's Read waits for it). Writes made while StartTLS runs
// wait for it (their write deadline still applies) and are then sent over TLS;
// if the upgrade fails they fail with an error matching net.ErrClosed. WriteEOF
// fails while StartTLS runs. Close or Abort during StartTLS ends it with an
// error.
func (c *Conn) StartTLS(ctx context.Context, cfg *tls.Config, opts ...Option) error {
	sc := *c.cfg // the Conn's own options, overridden by opts
	sc.err = nil
	for _, o := range opts {
		if o != nil {
			o(&sc)
		}
	}
	if sc.err != nil {
		return sc.err
	}
	server := c.accepted
	if sc.tlsSideChosen {
		server = sc.tlsServerSide
	}
	return c.upgrade(ctx, cfg, &sc, server)
}

// ConnectionState returns the TLS connection's state (crypto/tls's
// ConnectionState: version, cipher suite, peer certificates, negotiated
// protocol, server name) and true, or the zero value and false on a Conn that
// does not speak TLS (before StartTLS, or without WithTLS). It does not block.
// The certificates it holds are shared and must not be modified. Safe from any
// goroutine.
func (c *Conn) ConnectionState() (tls.ConnectionState, bool) {
	if t := c.tlsState(); t != nil {
		return t.conn.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// dialTLS runs the client handshake when the Conn was dialled WithTLS (closing
// the Conn if it fails).
func (c *Conn) dialTLS(ctx context.Context) error { return c.ownHandshake(ctx, false) }

// ownHandshake runs the handshake of the Conn's own WithTLS, as the server or
// the client, if it has one, and aborts the Conn if it fails: also where ctx
// ended before the handshake began, which upgrade, for StartTLS's sake, leaves
// the Conn as it was.
func (c *Conn) ownHandshake(ctx context.Context, server bool) error {
	if c.cfg.tls == nil {
		return nil
	}
	if err := c.upgrade(ctx, c.cfg.tls, c.cfg, server); err != nil {
		c.Abort()
		return err
	}
	return nil
}

// serverHandshake is for a Server: when the Conn's options include WithTLS, it
// makes the Conn the TLS server side, in place, and runs the handshake under the
// TLS handshake timeout (WithTLSHandshakeTimeout) and ctx, so a peer that never
// speaks cannot hold the caller past it. Call it on a new accepted Conn (accepted
// set) before the handler runs and before any read or write. It returns nil at
// once without WithTLS. On error the Conn is already closed (Abort: the raw
// connection is closed, nothing is flushed); the server need only drop it
// (a further Close returns an error matching net.ErrClosed).
func (c *Conn) serverHandshake(ctx context.Context) error { return c.ownHandshake(ctx, true) }

// upgrade puts TLS with cfg over the Conn, as the server or the client side, and
// handshakes. It is the one path for Dial's client handshake, a Server's
// handshake and StartTLS. Its order: take the read lock; hold new writes and send
// what is queued, in plaintext; hand the read-ahead bytes to the TLS layer;
// handshake; swap the Reader and the writer over to TLS and let writes go on.
// Failures before the handshake leave the Conn as it was; after, they close it.
func (c *Conn) upgrade(ctx context.Context, cfg *tls.Config, sc *config, server bool) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, sc.tlsHandshake)
	defer cancel()
	r := &c.rd
	if err := r.lock(ctx); err != nil {
		return handshakeErr(parent, ctx, sc, err)
	}
	defer r.mu.unlock()
	// The handshake reads the socket itself: an earlier read's context, ended
	// since, must not have left the read deadline in the past (every read
	// restores it so; see watch).
	r.unwatch()
	switch {
	case c.tlsState() != nil:
		return errAlreadyTLS
	case r.err != nil:
		return fmt.Errorf("sluice: StartTLS: %w", r.err)
	}
	q := c.queue()
	if err := q.hold(ctx, opHold); err != nil {
		return handshakeErr(parent, ctx, sc, err)
	}
	if err := ctx.Err(); err != nil { // nothing handed over, nothing sent: the Conn is as it was
		q.release(nil, nil)
		return handshakeErr(parent, ctx, sc, err)
	}
	var pre []byte
	if r.buf != nil {
		pre = r.handOver()            // those bytes are TLS's now
		c.nread.Add(-int64(len(pre))) // and not plaintext: Stats counts plaintext
	}
	base := &tlsBase{Conn: c.raw, pre: pre, hs: c.clock}
	tc := tls.Client(base, c.clientConfig(cfg, sc))
	if server {
		tc = tls.Server(base, cloneConfig(cfg))
	}
	err := tc.HandshakeContext(ctx)
	base.hs = nil // application data counts as the Reader and the queue see it (plaintext)
	if err != nil {
		if reason := c.closeReason(); reason != nil {
			err = reason // closed under the handshake (Close, Abort, a timeout): its deadline or close is no failure of the handshake's
		} else {
			err = handshakeErr(parent, ctx, sc, err)
		}
		c.Abort()
		q.release(nil, err) // held Writes see the Conn closed
		return err
	}
	r.dmu.Lock()
	r.rd, r.sock, r.full = tc, nil, false // tc forwards deadlines to the raw conn, where the user's already is
	r.dmu.Unlock()
	c.laterState().tls.Store(&tlsState{conn: tc, cfg: cfg, base: base, shutdown: sc.tlsShutdown})
	q.release(tc, nil)
	return nil
}

func cloneConfig(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		return new(tls.Config)
	}
	return cfg.Clone()
}

// clientConfig returns a copy of cfg with the server name to verify and send:
// WithServerName's, else cfg's own, else the host Dial dialled.
func (c *Conn) clientConfig(cfg *tls.Config, sc *config) *tls.Config {
	conf := cloneConfig(cfg)
	switch {
	case sc.serverName != "":
		conf.ServerName = sc.serverName
	case conf.ServerName == "" && c.extra != nil:
		conf.ServerName = c.extra.host
	}
	return conf
}

// handshakeErr turns the end of the handshake's own timeout into a timeout
// error and the end of the caller's ctx into ctx.Err().
func handshakeErr(parent, ctx context.Context, sc *config, err error) error {
	if perr := parent.Err(); perr != nil {
		return perr
	}
	if ctx.Err() != nil {
		return fmt.Errorf("sluice: TLS handshake timed out after %v: %w", sc.tlsHandshake, os.ErrDeadlineExceeded)
	}
	return err
}

// tlsState returns the Conn's TLS layer, or nil before a handshake is done.
func (c *Conn) tlsState() *tlsState {
	if l := c.later.Load(); l != nil {
		return l.tls.Load()
	}
	return nil
}

// closeTransport closes what the Conn reads and writes through. Over TLS, a
// graceful close (Close) sends the close_notify alert first, bounded by the TLS
// shutdown timeout (and by crypto/tls's own 5 s); Abort closes the raw
// connection at once, without the alert, as asyncio's abort does.
func (c *Conn) closeTransport(graceful bool) error {
	t := c.tlsState()
	switch {
	case t == nil, !graceful:
		return c.raw.Close()
	}
	t.base.shutdownBy(time.Now().Add(t.shutdown))
	return t.conn.Close()
}

// tlsInfo answers ExtraInfo's TLS names (documented there), reporting false for
// other names and on a Conn without TLS.
func (c *Conn) tlsInfo(name string, def any) (any, bool) {
	t := c.tlsState()
	if t == nil {
		return nil, false
	}
	tc, cfg := t.conn, t.cfg
	switch name {
	case "sslcontext":
		return cfg, true
	case "ssl_object":
		return tc, true
	case "peercert":
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			return certs[0], true
		}
		return def, true
	case "cipher":
		st := tc.ConnectionState()
		name := tls.CipherSuiteName(st.CipherSuite)
		return []any{name, protocolName(st.Version), secretBits(name)}, true
	case "compression":
		return nil, true
	}
	return nil, false
}

// protocolName returns a TLS version's name as Python's SSLSocket.version()
// (OpenSSL) spells it.
func protocolName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return tls.VersionName(v)
}

// secretBits returns the symmetric key size of a cipher suite, by its name, as
// OpenSSL reports it (3DES counts 112).
func secretBits(suite string) int {
	switch {
	case strings.Contains(suite, "AES_128"), strings.Contains(suite, "RC4_128"):
		return 128
	case strings.Contains(suite, "AES_256"), strings.Contains(suite, "CHACHA20"):
		return 256
	case strings.Contains(suite, "3DES"):
		return 112
	}
	return 0
}
