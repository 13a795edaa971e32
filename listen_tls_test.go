package sluice

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

// Listen WithTLS handshakes before the handler runs; a client that never
// speaks is cut off at the handshake timeout without holding up the others.
func TestListenTLS(t *testing.T) {
	is := is.New(t)
	logger, logs := srvLogger()
	ctx := testCtx(t)
	srv, err := Listen(ctx, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		st, ok := c.ConnectionState()
		if !ok || !st.HandshakeComplete {
			c.Write([]byte("not TLS\n"))
			return nil
		}
		echoLines(ctx, c)
		return nil
	}, WithTLS(serverTLS()), WithTLSHandshakeTimeout(200*time.Millisecond), WithLogger(logger))
	is.NoErr(err)
	defer srv.Shutdown(context.Background())
	addr := srv.Addrs()[0].String()

	silent, err := net.Dial("tcp", addr) // never sends a ClientHello
	is.NoErr(err)
	defer silent.Close()

	c, err := Dial(ctx, "tcp", addr, WithTLS(clientTLS()))
	is.NoErr(err)
	defer c.Close()
	_, err = c.Write([]byte("over tls\n"))
	is.NoErr(err)
	line, err := c.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "echo: over tls\n")

	// The silent client's connection is closed by the server once the
	// handshake timeout passes.
	silent.SetReadDeadline(time.Now().Add(testTimeout))
	n, err := silent.Read(make([]byte, 1))
	is.Equal(n, 0)
	is.True(err != nil)
	var ne net.Error
	is.True(!(errors.As(err, &ne) && ne.Timeout())) // closed by the server, not our deadline
	srv.Shutdown(context.Background())
	is.True(strings.Contains(logs.String(), "TLS handshake"))
}
