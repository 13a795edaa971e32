//go:build unix

package sluice

import (
	"testing"
	"unsafe"

	"github.com/matryer/is"
	"golang.org/x/sys/unix"
)

// A socket's state stays in the 112-byte size class on 64-bit systems, and a
// Conn that only reads never binds the send callback.
func TestRawSockFootprint(t *testing.T) {
	is := is.New(t)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		is.True(unsafe.Sizeof(rawSock{}) <= 112)
	}
	c, peer := connPair(t)
	_, err := peer.Write([]byte("hello\n"))
	is.NoErr(err)
	_, err = c.ReadLine(testCtx(t))
	is.NoErr(err)
	is.True(c.rd.sock != nil)
	is.True(c.rd.sock.writeFn == nil)
}

// Test helpers for what the Unix systems spell their own way; sock_windows_test.go
// has Windows's.

// errTooManyFiles is the error number of a process out of descriptors.
const errTooManyFiles = unix.EMFILE

// rawSocket is a socket the tests hold without net: a client that costs the Go
// heap nothing (BenchmarkIdleConn).
type rawSocket = int

// dialRaw connects a bare socket to 127.0.0.1:port and sends msg.
func dialRaw(port int, msg []byte) (rawSocket, error) {
	fd, err := cloexecSocket(unix.AF_INET)
	if err != nil {
		return -1, err
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	if err == nil {
		_, err = unix.Write(fd, msg)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func closeRaw(s rawSocket) { unix.Close(s) }

// getsockoptInt reads an integer socket option.
func getsockoptInt(fd uintptr, level, opt int) (int, error) {
	return unix.GetsockoptInt(int(fd), level, opt)
}

// relisten calls listen(2) again on a listening socket, which sets its backlog
// anew.
func relisten(fd uintptr, backlog int) error { return unix.Listen(int(fd), backlog) }

// keepAliveOf returns a TCP socket's keep-alive idle time and interval in
// seconds and its probe count, as the kernel holds them.
func keepAliveOf(fd uintptr) (v [3]int) {
	v[0], _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, tcpKeepIdle)
	v[1], _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
	v[2], _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
	return v
}

// platformErrors are TestErrorClassification's error numbers: a peer gone,
// and accept(2)'s passing troubles.
func platformErrors() []errorCase {
	return []errorCase{
		{"ECONNRESET", wrapErrno("read", unix.ECONNRESET), true, true},
		{"EPIPE", wrapErrno("write", unix.EPIPE), true, false},
		{"EMFILE", wrapErrno("accept4", unix.EMFILE), false, true},
		{"ECONNABORTED", wrapErrno("accept4", unix.ECONNABORTED), false, true},
		{"EINVAL", wrapErrno("accept4", unix.EINVAL), false, false},
	}
}

// A read woken after a wait reads in the poller's callback that woke it, into
// a buffer from the pool's shelf; where the shelf has none of the Reader's
// size, as after a frame past the largest pooled size, the callback returns
// for the Reader to make one, and the read goes on from there. Either way the line
// arrives whole.
func TestWokenReadTakesABuffer(t *testing.T) {
	is := is.New(t)
	const big = maxPooled + maxPooled/2 // no pool has buffers of this size
	c, peer := connPair(t, WithLimit(2*maxPooled))
	ctx := testCtx(t)
	for _, pooled := range []bool{true, false} {
		if !pooled {
			sent := make(chan error, 1)
			go func() {
				_, err := peer.Write(make([]byte, big))
				sent <- err
			}()
			p, err := c.ReadExactly(ctx, big)
			is.NoErr(err)
			is.Equal(len(p), big)
			is.NoErr(recv(t, sent))
		}
		is.Equal(poolIndex(c.rd.size) >= 0, pooled) // the buffer the woken read looks for on its shelf
		type result struct {
			line []byte
			err  error
		}
		got := make(chan result, 1)
		go func() {
			line, err := c.ReadLine(ctx)
			got <- result{line, err}
		}()
		waitUntil(t, func() bool { return c.reads.has(readerWaiting) })
		_, err := peer.Write([]byte("woken\n"))
		is.NoErr(err)
		r := recv(t, got)
		is.NoErr(r.err)
		is.Equal(string(r.line), "woken\n")
	}
}
