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
