package sluice

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/matryer/is"
	"golang.org/x/sys/unix"
)

// A peer's TCP urgent byte (MSG_OOB) does not stop a relay: the byte is left
// out, as read(2) leaves it out, and what follows it is relayed, on the
// splice path (TCP to TCP) as on the copy path (TCP to a Unix socket). The
// kernel's count of waiting bytes, and splice(2), stop at the urgent mark.
func TestRelayPastUrgentByte(t *testing.T) {
	for _, kind := range []string{"tcp", "unix"} {
		t.Run("tcp to "+kind, func(t *testing.T) {
			is := is.New(t)
			a, b := newRelayEnd(t, "tcp"), newRelayEnd(t, kind)
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			relayed := goRelay(ctx, a.c, b.c)
			b.peer.SetReadDeadline(time.Now().Add(testTimeout))
			expect := func(want string) {
				t.Helper()
				got := make([]byte, len(want))
				_, err := io.ReadFull(b.peer, got)
				is.NoErr(err) // a timeout: the relay stopped at the urgent byte
				is.Equal(string(got), want)
			}

			_, err := a.peer.Write([]byte("before|"))
			is.NoErr(err)
			expect("before|") // the relay is under way
			sendUrgent(t, a.peer, '!')
			_, err = a.peer.Write([]byte("after"))
			is.NoErr(err)
			expect("after")

			for _, peer := range []net.Conn{a.peer, b.peer} { // both directions end
				is.NoErr(peer.(interface{ CloseWrite() error }).CloseWrite())
			}
			r := recv(t, relayed)
			is.NoErr(r.err)
			is.Equal(r.aToB, int64(len("before|after")))
		})
	}
}

// sendUrgent sends b on nc as TCP urgent data.
func sendUrgent(t *testing.T, nc net.Conn, b byte) {
	t.Helper()
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), []byte{b}, unix.MSG_OOB, nil)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
}
