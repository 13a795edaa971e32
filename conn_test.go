package sluice

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matryer/is"

	"golang.org/x/net/nettest"
)

func TestNetConnPipe(t *testing.T) {
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		a, b, err := Pipe()
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
