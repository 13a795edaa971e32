package sluice

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/matryer/is"

	"golang.org/x/net/nettest"
)

// A Conn and its write queue stay in their size classes on 64-bit systems
// (320 and 288 bytes): every accepted connection holds a Conn, and every one
// that writes a queue, so a field more costs each of them a class more.
func TestConnFootprint(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit systems")
	}
	is := is.New(t)
	is.True(unsafe.Sizeof(Conn{}) <= 320)
	is.True(unsafe.Sizeof(writeQueue{}) <= 288)
}

func TestNetConnPipe(t *testing.T) {
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		// nettest closes a Conn whose peer has stopped reading: a short close
		// timeout keeps that case from waiting out the default 30 s.
		a, b, err := Pipe(WithCloseTimeout(time.Second))
		if err != nil {
			return nil, nil, nil, err
		}
		return a, b, func() { a.Close(); b.Close() }, nil
	})
}

func TestNetConnTCP(t *testing.T) {
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		a, b := tcpPair(t)
		ca, cb := NewConn(a), NewConn(b)
		return ca, cb, func() { ca.Abort(); cb.Abort() }, nil
	})
}

// Dial over tcp, tcp4 and unix returns a working Conn whose addresses and
// asyncio-style extra info describe the socket.
func TestDialNetworks(t *testing.T) {
	dir, err := os.MkdirTemp("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, tc := range []struct{ network, listen string }{
		{"tcp", "127.0.0.1:0"},
		{"tcp4", "127.0.0.1:0"},
		{"unix", filepath.Join(dir, "s")},
	} {
		t.Run(tc.network, func(t *testing.T) {
			is := is.New(t)
			ln, err := net.Listen(tc.network, tc.listen)
			is.NoErr(err)
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				nc, _ := ln.Accept()
				accepted <- nc
			}()
			c, err := Dial(testCtx(t), tc.network, ln.Addr().String())
			is.NoErr(err)
			defer c.Close()
			peer := <-accepted
			is.True(peer != nil)
			defer peer.Close()

			is.Equal(c.RemoteAddr().String(), ln.Addr().String())
			is.Equal(c.ExtraInfo("peername", nil), c.RemoteAddr())
			is.Equal(c.ExtraInfo("sockname", nil), c.LocalAddr())
			is.Equal(c.ExtraInfo("socket", nil), c.NetConn())
			is.Equal(c.ExtraInfo("no such key", "def"), "def")
			is.Equal(c.ExtraInfo("peercert", "def"), "def") // not TLS
			_, tlsOn := c.ConnectionState()
			is.True(!tlsOn)
			is.True(c.CanWriteEOF())

			_, err = c.Write([]byte("ping\n"))
			is.NoErr(err)
			line, err := NewReader(peer).ReadLine(testCtx(t))
			is.NoErr(err)
			is.Equal(string(line), "ping\n")
		})
	}
}

// Invalid options fail Dial before it connects: the address is live, so only
// the validation can make these calls fail.
func TestInvalidOptions(t *testing.T) {
	is := is.New(t)
	addr := silentListener(t)
	c, err := Dial(testCtx(t), "tcp", addr)
	is.NoErr(err) // the address itself is fine
	c.Close()
	_, err = Dial(testCtx(t), "tcp", addr, WithWriteBufferLimits(1, 2))
	is.True(err != nil && strings.Contains(err.Error(), "write buffer limits"))
	_, err = Dial(testCtx(t), "tcp", addr, WithInterleave(0))
	is.True(err != nil && strings.Contains(err.Error(), "interleave"))
	for name, f := range map[string]func(){
		"NewConn":   func() { NewConn(nil, WithLimit(0)) },
		"NewReader": func() { NewReader(nil, WithLimit(-1)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with an invalid option did not panic", name)
				}
			}()
			f()
		}()
	}
}

// Abort resets a TCP connection: the peer's read fails with ECONNRESET
// instead of a clean EOF, so a proxy can pass the reset on.
func TestAbortResets(t *testing.T) {
	for _, queued := range []bool{false, true} {
		is := is.New(t)
		c, peer := connPair(t)
		if queued {
			c.Write([]byte("dropped"))
		}
		c.Abort()
		peer.SetReadDeadline(time.Now().Add(testTimeout))
		_, err := io.ReadAll(peer)
		is.True(errors.Is(err, syscall.ECONNRESET))
	}
}

// Once the Conn's own send has met a reset, a read that finds no more data
// returns the reset, never a clean EOF: no truncated last line, no io.EOF.
func TestResetIsNeverEOF(t *testing.T) {
	for _, read := range []string{"ReadLine", "ReadFrame", "Lines"} {
		t.Run(read, func(t *testing.T) {
			is := is.New(t)
			c, peer := connPair(t)
			partial := []byte("partial") // a line cut short
			if read == "ReadFrame" {
				partial = append([]byte{0, 0, 0, 100}, partial...) // a frame cut short
			}
			peer.Write(partial)
			ctx := testCtx(t)
			for c.Buffered() == 0 { // the partial data is in; read no more
				c.SetReadDeadline(time.Now().Add(time.Millisecond))
				c.ReadLine(ctx)
			}
			c.SetReadDeadline(time.Time{})
			peer.(*net.TCPConn).SetLinger(0)
			peer.Close() // a reset
			// The Conn's own send meets the reset first and consumes it.
			var err error
			for i := 0; i < 100 && err == nil; i++ {
				c.Write([]byte("request\n"))
				err = c.Flush(ctx)
			}
			is.True(err != nil)
			switch read {
			case "ReadLine":
				line, err := c.ReadLine(ctx)
				is.Equal(line, nil)
				is.True(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
			case "ReadFrame":
				_, err := c.ReadFrame(ctx, LengthPrefixed(LengthPrefix{}))
				is.True(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
			case "Lines":
				var last error
				for _, err := range c.Lines(ctx) {
					last = err
				}
				is.True(errors.Is(last, syscall.ECONNRESET) || errors.Is(last, syscall.EPIPE))
			}
		})
	}
}

// Every method a user calls on a Conn is the Conn's own, so that
// go doc sluice Conn.NAME finds it: every exported method of *Reader is
// defined on *Conn too.
func TestConnHasEveryReadMethod(t *testing.T) {
	conn, reader := reflect.TypeOf(&Conn{}), reflect.TypeOf(&Reader{})
	for i := 0; i < reader.NumMethod(); i++ {
		m := reader.Method(i)
		cm, ok := conn.MethodByName(m.Name)
		if !ok {
			t.Errorf("Conn lacks %s", m.Name)
			continue
		}
		if cm.Type.NumIn() != m.Type.NumIn() {
			t.Errorf("Conn.%s and Reader.%s differ", m.Name, m.Name)
		}
	}
	// An embedded Reader would promote its methods: go doc would not list them.
	for i := 0; i < conn.Elem().NumField(); i++ {
		if f := conn.Elem().Field(i); f.Anonymous {
			t.Errorf("Conn embeds %s", f.Name)
		}
	}
}
