//go:build unix

package sluice

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/matryer/is"
)

// Every listen option is honoured on the Unix systems: none is refused.
func TestListenOptionsSupported(t *testing.T) {
	is := is.New(t)
	cfg, err := newConfig([]Option{WithBacklog(16), WithReusePort(true), WithReuseAddress(false)})
	is.NoErr(err)
	is.NoErr(checkListenOptions(cfg))
}

func TestReusePort(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	serverID := func(id string) Handler {
		return func(ctx context.Context, c *Conn) error {
			_, err := io.WriteString(c, id)
			return err
		}
	}
	a := srvListen(t, "tcp4", "127.0.0.1:0", serverID("a"), WithReusePort(true))
	addr := a.Addrs()[0].String()
	b := srvListen(t, "tcp4", addr, serverID("b"), WithReusePort(true))
	is.Equal(b.Addrs()[0].String(), addr)

	_, err := Listen(testCtx(t), "tcp4", addr, srvEcho) // without it: taken
	is.True(errors.Is(err, errAddrInUse))

	seen := map[string]int{}
	for range 32 {
		c := srvDial(t, a.Addrs()[0])
		id, err := io.ReadAll(c)
		is.NoErr(err)
		seen[string(id)]++
		c.Close()
	}
	t.Logf("connections per server: %v", seen)
	skipUnlessLinux(t, "spreading connections over SO_REUSEPORT sockets")
	is.Equal(len(seen), 2) // the kernel spread the clients over both
}
