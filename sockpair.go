package sluice

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// A socket pair made the long way, by listening, dialling and accepting: what
// Pipe uses where the system has no socketpair(2) (Windows). It is plain net
// code, so it builds, and is tested, everywhere.

// pairTimeout bounds the making of a pair: the dial, and the wait for its
// connection to be accepted.
const pairTimeout = 10 * time.Second

var errPairTimeout = errors.New("sluice: pipe: the pair's own connection was not accepted in time")

// unixListenedPair returns the two ends of an AF_UNIX stream connection made
// through a listener on a socket file in a new temporary directory; the file
// and the directory are gone when it returns.
func unixListenedPair() (net.Conn, net.Conn, error) {
	dir, err := os.MkdirTemp("", "sluice-pipe-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	// The directory is the user's own, and the file lives only while the pair
	// connects: the first connection accepted is taken to be the pair's.
	return connectPair(ln, func(dialled, accepted net.Conn) bool { return true })
}

// tcpListenedPair returns the two ends of a loopback TCP connection.
func tcpListenedPair() (net.Conn, net.Conn, error) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, nil, err
	}
	return connectPair(ln, sameEnds)
}

// sameEnds reports whether accepted is the far end of dialled. Any process on
// the machine may connect to a loopback port, so tcpListenedPair takes only
// that connection, as CPython's socketpair fallback checks.
func sameEnds(dialled, accepted net.Conn) bool {
	return dialled.LocalAddr().String() == accepted.RemoteAddr().String()
}

// connectPair dials ln and returns the connection dialled and the one
// accepted for it, the first accepted that ours approves; it closes those it
// rejects, and ln. It waits at most pairTimeout.
func connectPair(ln net.Listener, ours func(dialled, accepted net.Conn) bool) (net.Conn, net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	accepted := make(chan result) // one send per Accept, until stop is closed
	stop := make(chan struct{})   // closed when connectPair takes no more
	var wg sync.WaitGroup
	wg.Add(1)
	// Accepts while the dial is under way, in case a connect waits for its
	// accept. connectPair waits for it before it returns; closing ln ends it.
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			select {
			case accepted <- result{c, err}:
			case <-stop:
				if c != nil {
					c.Close()
				}
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		ln.Close()
		wg.Wait()
	}()

	a, err := net.DialTimeout(ln.Addr().Network(), ln.Addr().String(), pairTimeout)
	if err != nil {
		return nil, nil, err
	}
	timer := time.NewTimer(pairTimeout)
	defer timer.Stop()
	for {
		select {
		case r := <-accepted:
			switch {
			case r.err != nil:
				a.Close()
				return nil, nil, r.err
			case ours(a, r.c):
				return a, r.c, nil
			}
			r.c.Close() // a stranger's
		case <-timer.C:
			a.Close()
			return nil, nil, errPairTimeout
		}
	}
}
