//go:build linux && !386 && !race && !msan && !asan

package sluice

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/matryer/is"
	"golang.org/x/sys/unix"
)

// os.File's Fd sets its descriptor blocking, and with it every descriptor
// that shares the open file: here the Conn's. Its reads and writes are made
// with MSG_DONTWAIT and still wait on the runtime's poller, so a read that
// finds nothing ends with its ctx, instead of sleeping in read(2) (or, made
// without telling the runtime, holding its P) until data comes.
func TestBlockingDescriptorStillWaitsOnThePoller(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	f, err := c.raw.(*net.TCPConn).File()
	is.NoErr(err)
	defer f.Close()
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0) // Fd sets it blocking
	is.NoErr(err)
	is.Equal(flags&unix.O_NONBLOCK, 0) // the precondition: the shared open file blocks

	ended := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(testCtx(t), 20*time.Millisecond)
		defer cancel()
		_, err := c.ReadLine(ctx)
		ended <- err
	}()
	select {
	case err := <-ended:
		is.True(errors.Is(err, context.DeadlineExceeded))
	case <-time.After(testTimeout):
		peer.Write([]byte("unblock\n")) // let a read stuck in read(2) return, and fail
		t.Fatal("a read on a blocking descriptor did not end with its ctx")
	}

	// Bytes still flow both ways, and no byte is lost.
	_, err = peer.Write([]byte("ping\n"))
	is.NoErr(err)
	line, err := c.ReadLine(testCtx(t))
	is.NoErr(err)
	is.Equal(string(line), "ping\n")
	_, err = c.Write([]byte("pong\n"))
	is.NoErr(err)
	is.NoErr(c.Drain(testCtx(t)))
	buf := make([]byte, 5)
	peer.SetReadDeadline(time.Now().Add(testTimeout))
	_, err = io.ReadFull(peer, buf)
	is.NoErr(err)
	is.Equal(string(buf), "pong\n")
}
