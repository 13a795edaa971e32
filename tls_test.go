package sluice

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
)

// testPKI is an in-test CA and a leaf certificate it signed, for 127.0.0.1, ::1
// and "localhost", both ECDSA P-256. It is made once per test binary.
type testPKI struct {
	caPEM, certPEM, keyPEM []byte
	roots                  *x509.CertPool
	cert                   tls.Certificate
	leaf                   *x509.Certificate
}

var pki = sync.OnceValue(func() *testPKI {
	now := time.Now()
	caKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER := must(x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey))
	ca := must(x509.ParseCertificate(caDER))

	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey))
	p := &testPKI{
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: must(x509.MarshalECPrivateKey(key))}),
		roots:   x509.NewCertPool(),
		leaf:    must(x509.ParseCertificate(der)),
	}
	p.roots.AddCert(ca)
	p.cert = must(tls.X509KeyPair(p.certPEM, p.keyPEM))
	return p
})

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// serverTLS and clientTLS return fresh configs trusting the test CA.
func serverTLS() *tls.Config { return &tls.Config{Certificates: []tls.Certificate{pki().cert}} }
func clientTLS() *tls.Config { return &tls.Config{RootCAs: pki().roots} }

// serveOne listens on loopback and accepts one connection as a Server does: an
// accepted Conn with opts, then serverHandshake. If that succeeds it runs handle
// and closes the Conn. done receives serverHandshake's error after that.
func serveOne(t *testing.T, handle func(ctx context.Context, c *Conn), opts ...Option) (addr string, done <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			ch <- err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		c := acceptedConn(nc, opts...)
		if err = c.serverHandshake(ctx); err == nil && handle != nil {
			handle(ctx, c)
			c.Close()
		}
		ch <- err
	}()
	return ln.Addr().String(), ch
}

// echoLines answers each line with "echo: " and the line, until EOF.
func echoLines(ctx context.Context, c *Conn) {
	for line, err := range c.Lines(ctx) {
		if err != nil {
			return
		}
		fmt.Fprintf(c, "echo: %s\n", line)
	}
}

func TestDialTLS(t *testing.T) {
	for _, tc := range []struct {
		name    string
		host    string
		opts    []Option
		wantSNI string // none for an IP address, which is verified all the same
	}{
		{name: "IP, name from address", host: "127.0.0.1"},
		{name: "host name from address", host: "localhost", wantSNI: "localhost"},
		{name: "WithServerName", host: "127.0.0.1", opts: []Option{WithServerName("localhost")}, wantSNI: "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			var serverState tls.ConnectionState
			addr, done := serveOne(t, func(ctx context.Context, c *Conn) {
				serverState, _ = c.ConnectionState()
				echoLines(ctx, c)
			}, WithTLS(serverTLS()))
			_, port, _ := net.SplitHostPort(addr)

			cfg := clientTLS()
			c, err := Dial(ctx, "tcp", net.JoinHostPort(tc.host, port), append(tc.opts, WithTLS(cfg))...)
			is.NoErr(err)
			defer c.Abort()
			is.Equal(cfg.ServerName, "") // the caller's config is not modified
			_, err = c.Write([]byte("ping\n"))
			is.NoErr(err)
			line, err := c.ReadLine(ctx)
			is.NoErr(err)
			is.Equal(string(line), "echo: ping\n")

			st, ok := c.ConnectionState()
			is.True(ok)
			is.True(st.HandshakeComplete)
			is.Equal(st.ServerName, tc.wantSNI)
			is.True(st.PeerCertificates[0].Equal(pki().leaf))
			is.NoErr(c.Close())
			is.NoErr(recv(t, done))
			is.Equal(serverState.ServerName, tc.wantSNI) // what the client sent in SNI
		})
	}
}

// TestDialTLSStdlibServer dials a crypto/tls server, so the client is checked
// against an implementation that does not share our code.
func TestDialTLSStdlibServer(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS())
	is.NoErr(err)
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(testTimeout))
		br := bufio.NewReader(nc)
		line, err := br.ReadString('\n')
		if err == nil {
			_, err = fmt.Fprintf(nc, "echo: %s", line)
		}
		if err == nil {
			_, err = br.ReadByte() // the client's close_notify
			if err == io.EOF {
				err = nil
			}
		}
		got <- err
	}()

	c, err := Dial(ctx, "tcp", ln.Addr().String(), WithTLS(clientTLS()), WithServerName("localhost"))
	is.NoErr(err)
	_, err = c.Write([]byte("ping\n"))
	is.NoErr(err)
	line, err := c.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "echo: ping\n")
	is.NoErr(c.Close())
	is.NoErr(recv(t, got)) // the server read the line, then a clean EOF
}

// TestServerHandshakeStdlibClient runs serverHandshake against crypto/tls's
// client.
func TestServerHandshakeStdlibClient(t *testing.T) {
	is := is.New(t)
	addr, done := serveOne(t, echoLines, WithTLS(serverTLS()))
	d := &tls.Dialer{Config: &tls.Config{RootCAs: pki().roots, ServerName: "localhost"}}
	nc, err := d.DialContext(testCtx(t), "tcp", addr)
	is.NoErr(err)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(testTimeout))
	_, err = io.WriteString(nc, "one\ntwo\n")
	is.NoErr(err)
	br := bufio.NewReader(nc)
	for _, want := range []string{"echo: one\n", "echo: two\n"} {
		line, err := br.ReadString('\n')
		is.NoErr(err)
		is.Equal(line, want)
	}
	is.NoErr(nc.(*tls.Conn).CloseWrite()) // close_notify: the server's Lines ends
	_, err = br.ReadByte()
	is.Equal(err, io.EOF) // the server's Close sent close_notify
	is.NoErr(recv(t, done))
}

func TestDialTLSVerifyFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   *tls.Config
		opts  []Option
		check func(error) bool
	}{
		{
			name:  "hostname mismatch",
			cfg:   clientTLS(),
			opts:  []Option{WithServerName("example.com")},
			check: func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) },
		},
		{
			name:  "unknown authority",
			cfg:   &tls.Config{RootCAs: x509.NewCertPool()},
			check: func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			addr, done := serveOne(t, nil, WithTLS(serverTLS()))
			c, err := Dial(testCtx(t), "tcp", addr, append(tc.opts, WithTLS(tc.cfg))...)
			is.True(c == nil)
			is.True(tc.check(err)) // the x509 error, within crypto/tls's
			var verr *tls.CertificateVerificationError
			is.True(errors.As(err, &verr))
			is.True(recv(t, done) != nil) // the server's handshake failed too (bad certificate alert)
		})
	}
}

func TestDialTLSHandshakeTimeout(t *testing.T) {
	t.Run("WithTLSHandshakeTimeout", func(t *testing.T) {
		is := is.New(t)
		addr := silentListener(t)
		start := time.Now()
		c, err := Dial(testCtx(t), "tcp", addr, WithTLS(clientTLS()), WithTLSHandshakeTimeout(200*time.Millisecond))
		is.True(c == nil)
		is.True(errors.Is(err, os.ErrDeadlineExceeded))
		var ne net.Error
		is.True(errors.As(err, &ne) && ne.Timeout())
		is.True(time.Since(start) < 5*time.Second) // promptly, not after 60 s
	})
	t.Run("ctx", func(t *testing.T) {
		is := is.New(t)
		addr := silentListener(t)
		ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
		defer cancel()
		c, err := Dial(ctx, "tcp", addr, WithTLS(clientTLS()))
		is.True(c == nil)
		is.Equal(err, context.DeadlineExceeded)
	})
}

// TestServerHandshakeTimeout: a client that connects and says nothing cannot
// hold the server past the handshake timeout.
func TestServerHandshakeTimeout(t *testing.T) {
	is := is.New(t)
	client, server := tcpPair(t)
	c := acceptedConn(server, WithTLS(serverTLS()), WithTLSHandshakeTimeout(200*time.Millisecond))
	start := time.Now()
	err := c.serverHandshake(testCtx(t))
	is.True(errors.Is(err, os.ErrDeadlineExceeded))
	is.True(time.Since(start) < 5*time.Second)
	is.True(errors.Is(c.Close(), net.ErrClosed)) // serverHandshake closed it already
	client.SetReadDeadline(time.Now().Add(testTimeout))
	_, err = client.Read(make([]byte, 1))
	is.Equal(err, io.EOF) // and the client sees the connection go
}

// pipelinedConn is a TLS client's raw connection that provokes the read-ahead
// case: it holds back the first write (a plaintext "STARTTLS" line) and sends it
// in one write with the second (the ClientHello), so both arrive in one segment.
// Its first read consumes exactly len(expect) plaintext bytes before TLS sees
// any, and keeps them in got.
type pipelinedConn struct {
	net.Conn
	held       []byte
	wroteFirst bool
	expect     int
	got        []byte
}

func (p *pipelinedConn) Write(b []byte) (int, error) {
	switch {
	case p.wroteFirst:
		return p.Conn.Write(b)
	case p.held == nil:
		p.held = bytes.Clone(b)
		return len(b), nil
	}
	p.wroteFirst = true
	if _, err := p.Conn.Write(append(p.held, b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (p *pipelinedConn) Read(b []byte) (int, error) {
	if p.got == nil && p.expect > 0 {
		p.got = make([]byte, p.expect)
		if _, err := io.ReadFull(p.Conn, p.got); err != nil {
			return 0, err
		}
	}
	return p.Conn.Read(b)
}

// TestStartTLSReadAhead: the ClientHello arrives in the same segment as the
// STARTTLS line, so reading the line reads part of the handshake too. Those
// bytes must reach the TLS layer (CPython issue 142352 loses them).
func TestStartTLSReadAhead(t *testing.T) {
	for _, tc := range []struct {
		name     string
		readLine func(ctx context.Context, c *Conn) (string, error)
	}{
		{"ReadLine", func(ctx context.Context, c *Conn) (string, error) {
			line, err := c.ReadLine(ctx)
			return string(line), err
		}},
		{"Lines", func(ctx context.Context, c *Conn) (string, error) {
			for line, err := range c.Lines(ctx) {
				return string(line) + "\n", err // break after one line
			}
			return "", io.EOF
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			rawClient, rawServer := tcpPair(t)
			srv := acceptedConn(rawServer) // StartTLS takes the server side by default
			defer srv.Abort()

			type result struct {
				ready, reply string
				err          error
			}
			res := make(chan result, 1)
			go func() {
				pc := &pipelinedConn{Conn: rawClient, expect: len("READY\n")}
				pc.SetDeadline(time.Now().Add(testTimeout))
				pc.Write([]byte("STARTTLS\n"))
				tc := tls.Client(pc, &tls.Config{RootCAs: pki().roots, ServerName: "localhost"})
				err := tc.HandshakeContext(ctx)
				var reply string
				if err == nil {
					_, err = io.WriteString(tc, "hello\n")
				}
				if err == nil {
					reply, err = bufio.NewReader(tc).ReadString('\n')
				}
				tc.Close()
				res <- result{string(pc.got), reply, err}
			}()

			line, err := tc.readLine(ctx, srv)
			is.NoErr(err)
			is.Equal(line, "STARTTLS\n")
			is.True(srv.Buffered() > 0) // part of the ClientHello was read ahead with the line
			_, err = srv.Write([]byte("READY\n"))
			is.NoErr(err)
			is.NoErr(srv.StartTLS(ctx, serverTLS()))
			is.Equal(srv.Buffered(), 0)
			hello, err := srv.ReadLine(ctx)
			is.NoErr(err)
			is.Equal(string(hello), "hello\n")
			_, err = srv.Write([]byte("world\n"))
			is.NoErr(err)
			r := recv(t, res)
			is.NoErr(r.err)
			is.Equal(r.ready, "READY\n") // queued before StartTLS: sent in plaintext, first
			is.Equal(r.reply, "world\n")
			st, ok := srv.ConnectionState()
			is.True(ok)
			is.Equal(st.ServerName, "localhost")
			is.NoErr(srv.Close())
		})
	}
}

// StartTLS after a read whose context has ended since (a Stream stopped, a
// per-read timeout cancelled by defer): the handshake's reads do not find the
// read deadline that context's end put in the past.
func TestStartTLSAfterEndedReadContext(t *testing.T) {
	for _, mode := range []string{"LineChan then Stop", "ReadLine with a cancelled ctx"} {
		t.Run(mode, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			rawClient, rawServer := tcpPair(t)
			srv := acceptedConn(rawServer)
			defer srv.Abort()
			res := make(chan error, 1)
			go func() {
				rawClient.SetDeadline(time.Now().Add(testTimeout))
				io.WriteString(rawClient, "STARTTLS\n")
				if _, err := bufio.NewReader(rawClient).ReadString('\n'); err != nil {
					res <- err
					return
				}
				tc := tls.Client(rawClient, &tls.Config{RootCAs: pki().roots, ServerName: "localhost"})
				res <- tc.HandshakeContext(ctx)
			}()
			if mode == "LineChan then Stop" {
				s := srv.LineChan(ctx)
				is.Equal(string(recv(t, s.C)), "STARTTLS")
				s.Stop()
			} else {
				rctx, cancel := context.WithCancel(ctx)
				line, err := srv.ReadLine(rctx)
				is.NoErr(err)
				is.Equal(string(line), "STARTTLS\n")
				cancel()
			}
			// The ended context's interrupt has run: the deadline is in the past.
			waitUntil(t, func() bool {
				srv.rd.dmu.Lock()
				defer srv.rd.dmu.Unlock()
				return srv.rd.interrupted
			})
			_, err := srv.Write([]byte("READY\n"))
			is.NoErr(err)
			is.NoErr(srv.StartTLS(ctx, serverTLS())) // an i/o timeout here: the deadline stayed
			is.NoErr(recv(t, res))
		})
	}
}

// TestStartTLSBothSides upgrades two Conns talking to each other: with the
// client pipelining its handshake behind queued plaintext, and with the server
// answering in plaintext before it upgrades. Lines, Drain and Close work over
// TLS afterwards.
func TestStartTLSBothSides(t *testing.T) {
	const plain, secret = 200, 500
	for _, tc := range []struct {
		name      string
		pipelined bool // the client does not wait for "OK" before its handshake
	}{
		{"client pipelines", true},
		{"server answers first", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			a, b := tcpPair(t)
			cli := NewConn(a, WithWriteBufferLimits(4<<10, 1<<10))
			srv := NewConn(b, WithWriteBufferLimits(4<<10, 1<<10))
			defer cli.Abort()
			defer srv.Abort()

			clientErr := make(chan error, 1)
			go func() { clientErr <- startTLSClient(ctx, cli, tc.pipelined, plain, secret) }()

			// Server: the plaintext lines, then TLS.
			for i := 0; i < plain; i++ {
				line, err := srv.ReadLine(ctx)
				is.NoErr(err)
				is.Equal(string(line), fmt.Sprintf("plain %d %s\n", i, filler))
			}
			line, err := srv.ReadLine(ctx)
			is.NoErr(err)
			is.Equal(string(line), "STARTTLS\n")
			if !tc.pipelined {
				_, err = srv.Write([]byte("OK\n")) // queued; StartTLS sends it first
				is.NoErr(err)
			}
			is.NoErr(srv.StartTLS(ctx, serverTLS(), WithTLSServerSide(true)))
			n := 0
			for line, err := range srv.Lines(ctx) {
				is.NoErr(err)
				is.Equal(string(line), fmt.Sprintf("secret %d %s", n, filler))
				n++
			}
			is.Equal(n, secret) // and Lines ended at the client's close_notify
			is.NoErr(recv(t, clientErr))
			st, ok := srv.ConnectionState()
			is.True(ok)
			is.Equal(st.ServerName, "localhost")
			is.Equal(st.Version, uint16(tls.VersionTLS13))
		})
	}
}

const filler = "................................................................................"

// startTLSClient is the client of TestStartTLSBothSides.
func startTLSClient(ctx context.Context, cli *Conn, pipelined bool, plain, secret int) error {
	for i := 0; i < plain; i++ {
		fmt.Fprintf(cli, "plain %d %s\n", i, filler)
	}
	cli.Write([]byte("STARTTLS\n"))
	if !pipelined {
		if line, err := cli.ReadLine(ctx); err != nil || string(line) != "OK\n" {
			return fmt.Errorf("want OK, got %q, %v", line, err)
		}
	}
	if err := cli.StartTLS(ctx, clientTLS(), WithServerName("localhost")); err != nil {
		return err
	}
	if _, ok := cli.ConnectionState(); !ok {
		return errors.New("no TLS after StartTLS")
	}
	for i := 0; i < secret; i++ {
		if _, err := fmt.Fprintf(cli, "secret %d %s\n", i, filler); err != nil {
			return err
		}
		if err := cli.Drain(ctx); err != nil {
			return err
		}
	}
	return cli.Close()
}

func TestStartTLSConcurrentRead(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	c, peer := connPair(t)
	got := make(chan string, 1)
	go func() {
		for {
			line, err := c.ReadLine(ctx)
			if errors.Is(err, ErrConcurrentRead) {
				continue // the probe below held the lock for an instant
			}
			got <- string(line)
			return
		}
	}()
	waitUntil(t, func() bool { // the reader holds the read lock
		if c.rd.mu.tryLock() {
			c.rd.mu.unlock()
			return false
		}
		return true
	})
	is.Equal(c.StartTLS(ctx, clientTLS()), ErrConcurrentRead)
	_, err := peer.Write([]byte("still plaintext\n"))
	is.NoErr(err)
	is.Equal(recv(t, got), "still plaintext\n")
	_, ok := c.ConnectionState()
	is.True(!ok)
}

// TestStartTLSWritesDuringUpgrade: a Write made while StartTLS runs waits and
// goes over TLS; Close during StartTLS ends both.
func TestStartTLSWritesDuringUpgrade(t *testing.T) {
	for _, closeEarly := range []bool{false, true} {
		name := map[bool]string{false: "handshake completes", true: "Close during handshake"}[closeEarly]
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			c, peer := connPair(t)
			upgraded := make(chan error, 1)
			go func() { upgraded <- c.StartTLS(ctx, clientTLS(), WithServerName("localhost")) }()
			waitUntil(t, func() bool { q := c.queue(); q.mu.Lock(); defer q.mu.Unlock(); return q.upgrading })
			is.Equal(c.WriteEOF(), errCannotEOF)
			wrote := make(chan error, 1)
			go func() { _, err := c.Write([]byte("during\n")); wrote <- err }()
			waitUntil(t, func() bool { // the Write waits on the queue
				q := c.queue()
				q.mu.Lock()
				defer q.mu.Unlock()
				return q.wake != nil
			})
			if closeEarly {
				c.Close()
				is.True(recv(t, upgraded) != nil)
				is.True(errors.Is(recv(t, wrote), net.ErrClosed))
				return
			}
			tp := tls.Server(peer, serverTLS())
			tp.SetDeadline(time.Now().Add(testTimeout))
			is.NoErr(tp.HandshakeContext(ctx))
			is.NoErr(recv(t, upgraded))
			is.NoErr(recv(t, wrote))
			line, err := bufio.NewReader(tp).ReadString('\n')
			is.NoErr(err)
			is.Equal(line, "during\n") // over TLS
		})
	}
}

// TestStartTLSFlushCancelled: ctx ending while the queued plaintext is still
// being sent leaves the Conn as it was.
func TestStartTLSFlushCancelled(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	_, err := c.Write(make([]byte, 8<<20)) // more than the socket buffers hold; the peer does not read yet
	is.NoErr(err)
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	is.Equal(c.StartTLS(ctx, clientTLS()), context.DeadlineExceeded)
	_, ok := c.ConnectionState()
	is.True(!ok)
	go io.Copy(io.Discard, peer)
	is.NoErr(c.Flush(testCtx(t))) // the writer goes on
	_, err = c.Write([]byte("x")) // and Write is not held
	is.NoErr(err)
}

func TestStartTLSErrors(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)

	c, _ := connPair(t)
	is.True(c.StartTLS(ctx, clientTLS(), WithTLSHandshakeTimeout(-1)) != nil) // invalid option
	c.Close()
	is.True(errors.Is(c.StartTLS(ctx, clientTLS()), net.ErrClosed))

	c, peer := connPair(t)
	peer.Close()
	_, err := c.ReadAll(ctx)
	is.NoErr(err)
	is.True(errors.Is(c.StartTLS(ctx, clientTLS()), io.EOF)) // the peer has gone

	addr, done := serveOne(t, echoLines, WithTLS(serverTLS()))
	c, err = Dial(ctx, "tcp", addr, WithTLS(clientTLS()))
	is.NoErr(err)
	is.Equal(c.StartTLS(ctx, clientTLS()), errAlreadyTLS)
	is.NoErr(c.Close())
	is.NoErr(recv(t, done))
}

func TestTLSExtraInfo(t *testing.T) {
	t.Run("plaintext", func(t *testing.T) {
		is := is.New(t)
		c, _ := connPair(t)
		_, ok := c.ConnectionState()
		is.True(!ok)
		for _, name := range []string{"sslcontext", "ssl_object", "peercert", "cipher", "compression"} {
			is.Equal(c.ExtraInfo(name, "def"), "def")
		}
		is.True(c.CanWriteEOF())
	})
	for _, tc := range []struct {
		name      string
		cfg       *tls.Config
		wantProto string
		wantBits  int
		wantSuite uint16 // 0: any
	}{
		{"TLS 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, "TLSv1.3", 0, 0},
		{"TLS 1.2 AES-128", &tls.Config{
			MaxVersion:   tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		}, "TLSv1.2", 128, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{"TLS 1.2 ChaCha20", &tls.Config{
			MaxVersion:   tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
		}, "TLSv1.2", 256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			serverInfo := make(chan []any, 1)
			addr, done := serveOne(t, func(ctx context.Context, c *Conn) {
				serverInfo <- []any{c.ExtraInfo("peercert", "none"), c.ExtraInfo("cipher", nil)}
				echoLines(ctx, c)
			}, WithTLS(serverTLS()))
			cfg := tc.cfg
			cfg.RootCAs = pki().roots
			c, err := Dial(ctx, "tcp", addr, WithTLS(cfg))
			is.NoErr(err)
			defer c.Abort()

			st, ok := c.ConnectionState()
			is.True(ok)
			if tc.wantSuite != 0 {
				is.Equal(st.CipherSuite, tc.wantSuite)
			}
			is.True(c.ExtraInfo("sslcontext", nil) == any(cfg)) // the caller's config
			tconn, ok := c.ExtraInfo("ssl_object", nil).(*tls.Conn)
			is.True(ok)
			is.True(tconn.NetConn().(*tlsBase).Conn == c.NetConn())
			cert, ok := c.ExtraInfo("peercert", nil).(*x509.Certificate)
			is.True(ok)
			is.True(cert.Equal(pki().leaf))
			cipher, ok := c.ExtraInfo("cipher", nil).([]any)
			is.True(ok)
			is.Equal(len(cipher), 3)
			is.Equal(cipher[0], tls.CipherSuiteName(st.CipherSuite))
			is.Equal(cipher[1], tc.wantProto)
			bits := cipher[2].(int)
			is.True(bits == 128 || bits == 256)
			if tc.wantBits != 0 {
				is.Equal(bits, tc.wantBits)
			}
			is.Equal(c.ExtraInfo("compression", "def"), nil)
			is.Equal(c.ExtraInfo("no such key", "def"), "def")
			is.True(!c.CanWriteEOF())
			is.Equal(c.WriteEOF(), errCannotEOF)

			si := recv(t, serverInfo)
			is.Equal(si[0], "none") // no client certificate
			is.Equal(si[1].([]any)[0], cipher[0])
			is.NoErr(c.Close())
			is.NoErr(recv(t, done))
		})
	}
}

// recordingConn keeps a copy of every byte read through it.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.got = append(r.got, p[:n]...)
	r.mu.Unlock()
	return n, err
}

// recordTypes returns the content type of each TLS record in b.
func recordTypes(b []byte) []byte {
	var types []byte
	for len(b) >= 5 {
		n := 5 + (int(b[3])<<8 | int(b[4]))
		types = append(types, b[0])
		if n > len(b) {
			break
		}
		b = b[n:]
	}
	return types
}

// TestTLSCloseNotify: Close sends close_notify, and the peer reads a clean EOF;
// Abort does not, and resets the TCP connection beneath, so the peer's read
// fails with a reset. With TLS 1.2 the alert's record type (21) shows on the
// wire.
func TestTLSCloseNotify(t *testing.T) {
	const recordAlert, recordData = 21, 23
	for _, tc := range []struct {
		name     string
		close    func(c *Conn)
		lastType byte
		reset    bool
	}{
		{"Close", func(c *Conn) { c.Close() }, recordAlert, false},
		{"Abort", func(c *Conn) { c.Abort() }, recordData, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			c, peer := connPair(t)
			rec := &recordingConn{Conn: peer}
			tp := tls.Server(rec, &tls.Config{Certificates: []tls.Certificate{pki().cert}, MaxVersion: tls.VersionTLS12})
			tp.SetDeadline(time.Now().Add(testTimeout))
			peerErr := make(chan error, 1)
			go func() {
				err := tp.HandshakeContext(ctx)
				if err == nil {
					_, err = io.ReadAll(tp) // nil at a clean EOF
				}
				peerErr <- err
			}()
			is.NoErr(c.StartTLS(ctx, clientTLS(), WithServerName("localhost")))
			_, err := c.Write([]byte("bye\n"))
			is.NoErr(err)
			is.NoErr(c.Flush(ctx))
			tc.close(c)
			if err := recv(t, peerErr); tc.reset {
				is.True(isReset(err)) // the reset came through
			} else {
				is.NoErr(err) // the peer read io.EOF, not an error
			}
			rec.mu.Lock()
			types := recordTypes(rec.got)
			rec.mu.Unlock()
			is.Equal(types[len(types)-1], tc.lastType)
		})
	}
}

// TestTLSShutdownTimeout: a peer that stops reading cannot hold Close past
// WithTLSShutdownTimeout (crypto/tls itself would wait 5 s). net.Pipe has no
// kernel buffer, so the close_notify write blocks.
func TestTLSShutdownTimeout(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	a, b := net.Pipe()
	defer b.Close()
	c := NewConn(a, WithTLSShutdownTimeout(200*time.Millisecond))
	defer c.Abort()
	cfg := serverTLS()
	cfg.SessionTicketsDisabled = true // so the peer's handshake writes nothing more
	tp := tls.Server(b, cfg)
	handshaken := make(chan error, 1)
	go func() { handshaken <- tp.HandshakeContext(ctx) }()
	is.NoErr(c.StartTLS(ctx, clientTLS(), WithServerName("localhost")))
	is.NoErr(recv(t, handshaken))
	start := time.Now()
	err := c.Close() // the peer never reads the alert
	is.True(errors.Is(err, os.ErrDeadlineExceeded))
	is.True(time.Since(start) < 3*time.Second)
}

// TestTLSAbortIsImmediate: Abort does not wait for the alert at all.
func TestTLSAbortIsImmediate(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	a, b := net.Pipe()
	defer b.Close()
	c := NewConn(a)
	cfg := serverTLS()
	cfg.SessionTicketsDisabled = true
	tp := tls.Server(b, cfg)
	handshaken := make(chan error, 1)
	go func() { handshaken <- tp.HandshakeContext(ctx) }()
	is.NoErr(c.StartTLS(ctx, clientTLS(), WithServerName("localhost")))
	is.NoErr(recv(t, handshaken))
	start := time.Now()
	c.Abort()
	is.True(time.Since(start) < time.Second) // not the default 30 s, nor crypto/tls's 5 s
	is.True(errors.Is(c.Close(), net.ErrClosed))
}

// TestTLSReadCancel: over TLS, a cancelled read loses nothing and the
// connection goes on, as in plaintext; the read deadline works too.
func TestTLSReadCancel(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	send := make(chan string)
	addr, done := serveOne(t, func(ctx context.Context, c *Conn) {
		for s := range send {
			c.Write([]byte(s))
		}
	}, WithTLS(serverTLS()))
	stop := sync.OnceFunc(func() { close(send) })
	defer stop()
	c, err := Dial(ctx, "tcp", addr, WithTLS(clientTLS()))
	is.NoErr(err)
	defer c.Abort()

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	send <- "par"
	_, err = c.ReadLine(short)
	is.Equal(err, context.DeadlineExceeded)
	send <- "tial\n"
	line, err := c.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "partial\n") // nothing lost

	is.NoErr(c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)))
	_, err = c.ReadLine(ctx)
	is.True(errors.Is(err, os.ErrDeadlineExceeded))
	is.NoErr(c.SetReadDeadline(time.Time{}))
	send <- "more\n"
	line, err = c.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "more\n")
	stop()
	is.NoErr(recv(t, done))
}

// laggyConn delays its first Write by lag: a slow link during the handshake.
type laggyConn struct {
	net.Conn
	lag  time.Duration
	once sync.Once
}

func (l *laggyConn) Write(p []byte) (int, error) {
	l.once.Do(func() { time.Sleep(l.lag) }) // simulated latency, not synchronisation
	return l.Conn.Write(p)
}

// The handshake's bytes restart the idle clock: a handshake that took lag
// leaves the Conn its whole idle timeout afterwards, though the reply, lag
// after it, comes more than idle after the Conn was made.
func TestIdleTimeoutCountsHandshake(t *testing.T) {
	slow(t)
	t.Parallel()
	is := is.New(t)
	ctx := testCtx(t)
	const lag, idle = 600 * time.Millisecond, time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(testTimeout))
		tc := tls.Server(&laggyConn{Conn: nc, lag: lag}, serverTLS())
		if err := tc.HandshakeContext(ctx); err != nil {
			srvErr <- err
			return
		}
		time.Sleep(lag) // the reply comes lag after the handshake: well within idle of it
		_, err = io.WriteString(tc, "hello\n")
		srvErr <- err
		io.Copy(io.Discard, tc)
	}()
	c, err := Dial(ctx, "tcp", ln.Addr().String(), WithTLS(clientTLS()), WithServerName("localhost"), WithIdleTimeout(idle))
	is.NoErr(err)
	defer c.Abort()
	line, err := c.ReadLine(ctx)
	is.NoErr(err) // ErrIdleTimeout: the clock never saw the handshake's bytes
	is.Equal(string(line), "hello\n")
	is.NoErr(recv(t, srvErr))
}

// Close or Abort during StartTLS's handshake: StartTLS's error says the Conn
// was closed, never that the handshake timed out.
func TestStartTLSCloseDuringHandshakeError(t *testing.T) {
	for _, how := range []string{"Close", "Abort"} {
		t.Run(how, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			for range 100 { // the wrong error comes in a few per cent of runs
				c, peer := connPair(t)
				upgraded := make(chan error, 1)
				go func() { upgraded <- c.StartTLS(ctx, clientTLS(), WithServerName("localhost")) }()
				peer.SetReadDeadline(time.Now().Add(testTimeout))
				_, err := peer.Read(make([]byte, 1)) // the ClientHello: the handshake waits for the server
				is.NoErr(err)
				if how == "Close" {
					c.Close()
				} else {
					c.Abort()
				}
				err = recv(t, upgraded)
				is.True(!errors.Is(err, os.ErrDeadlineExceeded)) // "i/o timeout": as if the handshake timeout had passed
				is.True(errors.Is(err, net.ErrClosed))
				peer.Close()
			}
		})
	}
}

// StartTLS with a ctx that has already ended returns ctx.Err() and leaves the
// Conn as it was.
func TestStartTLSEndedCtx(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	is.Equal(c.StartTLS(ctx, clientTLS(), WithServerName("localhost")), context.Canceled)
	is.True(!c.IsClosing()) // it was aborted
	_, err := peer.Write([]byte("still here\n"))
	is.NoErr(err)
	line, err := c.ReadLine(testCtx(t))
	is.NoErr(err)
	is.Equal(string(line), "still here\n")
}
