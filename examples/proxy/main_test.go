package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// A client's half-close goes through the proxy: the upstream reads the request
// to EOF, and its answer still comes back.
func TestHalfClose(t *testing.T) {
	is := is.New(t)
	up := upstream(t, func(c *net.TCPConn) {
		request, err := io.ReadAll(c) // until the client's half-close
		if err == nil {
			fmt.Fprintf(c, "got %q", request)
		}
	})
	addr, out := startProxy(t, up)
	c := dial(t, addr)
	_, err := c.Write([]byte("ping"))
	is.NoErr(err)
	is.NoErr(c.CloseWrite())
	answer, err := io.ReadAll(c)
	is.NoErr(err)
	is.Equal(string(answer), `got "ping"`)
	is.True(strings.Contains(out.next(t), "up=4 down=10 err=<nil>"))
}

// A reset by the upstream reaches the client as a reset, not a clean EOF.
func TestResetPassedOn(t *testing.T) {
	is := is.New(t)
	up := upstream(t, func(c *net.TCPConn) {
		if _, err := io.ReadFull(c, make([]byte, 4)); err == nil {
			c.SetLinger(0)
			c.Close()
		}
	})
	addr, out := startProxy(t, up)
	c := dial(t, addr)
	_, err := c.Write([]byte("ping"))
	is.NoErr(err)
	_, err = c.Read(make([]byte, 1))
	is.True(errors.Is(err, syscall.ECONNRESET))
	is.True(strings.Contains(out.next(t), "connection reset by peer"))
}

// upstream accepts one connection and runs serve on it, until the test ends.
func upstream(t *testing.T, serve func(*net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		serve(c.(*net.TCPConn))
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// startProxy runs the proxy in front of up until the test ends, and returns
// its address and log.
func startProxy(t *testing.T, up string) (string, *logLines) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &logLines{lines: make(chan string, 16)}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", up, out, ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case addr := <-ready:
		return addr, out
	case err := <-done:
		t.Fatal(err)
		return "", nil
	}
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

// logLines hands the proxy's log lines to the test as they are written.
type logLines struct{ lines chan string }

func (l *logLines) Write(p []byte) (int, error) {
	l.lines <- string(p)
	return len(p), nil
}

// next returns the next line logged: a handler logs when its relay is done.
func (l *logLines) next(t *testing.T) string {
	t.Helper()
	select {
	case line := <-l.lines:
		return line
	case <-time.After(10 * time.Second):
		t.Fatal("nothing logged")
		return ""
	}
}
