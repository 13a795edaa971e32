package sluice

import (
	"net"
	"testing"

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
