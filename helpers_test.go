package sluice

import (
	"context"
	"net"
	"testing"
	"time"
)

// testTimeout bounds every wait in the tests, so a bug fails fast instead of
// hanging CI.
const testTimeout = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// tcpPair returns both ends of a loopback TCP connection, closed at cleanup.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = net.DialTimeout("tcp", ln.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		client.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// connPair returns a Conn over loopback TCP and the raw peer.
func connPair(t testing.TB, opts ...Option) (*Conn, net.Conn) {
	t.Helper()
	a, b := tcpPair(t)
	c := NewConn(a, opts...)
	t.Cleanup(func() { c.Abort() })
	return c, b
}

// feed returns a Conn whose peer writes parts, each a separate write, then
// half-closes (asyncio's feed_data and feed_eof over a real socketpair). The
// writer goroutine ends before the test does.
func feed(t testing.TB, limit int, parts ...string) *Conn {
	t.Helper()
	return feedOpts(t, true, []Option{WithLimit(limit)}, parts...)
}

// feedOpts is feed with options, and with eof false the peer stays open until
// cleanup.
func feedOpts(t testing.TB, eof bool, opts []Option, parts ...string) *Conn {
	t.Helper()
	c, peer, err := Pipe(opts...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range parts {
			if _, err := peer.NetConn().Write([]byte(p)); err != nil {
				return
			}
		}
		if eof {
			peer.NetConn().(interface{ CloseWrite() error }).CloseWrite()
		}
	}()
	t.Cleanup(func() {
		c.Abort()
		peer.Abort()
		<-done
	})
	total := 0
	for _, p := range parts {
		total += len(p)
	}
	if total < 32<<10 {
		// Small inputs fit the socket buffer: wait until all of it is there, so
		// the cases whose asyncio outcome depends on what is buffered (the
		// limit's cleanup) are deterministic.
		<-done
	}
	return c
}

// rest reads everything left on c up to EOF.
func rest(t testing.TB, c *Conn) string {
	t.Helper()
	b, err := c.ReadAll(testCtx(t))
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return string(b)
}
