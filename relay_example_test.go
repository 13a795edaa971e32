package sluice_test

import (
	"bytes"
	"context"
	"fmt"
	"log"

	"github.com/sluice-go/sluice"
)

// A TCP proxy: each connection it accepts is relayed to an upstream server.
// The upstream here reads its request until EOF and answers in capitals; the
// client's half-close reaches it through the proxy, and the answer comes back
// the same way.
func ExampleRelay() {
	ctx := context.Background()
	shout := func(ctx context.Context, c *sluice.Conn) error {
		request, err := c.ReadAll(ctx) // until the client's WriteEOF
		if err != nil {
			return err
		}
		_, err = c.Write(bytes.ToUpper(request))
		return err // the server flushes and closes c
	}
	upstream, err := sluice.Listen(ctx, "tcp", "127.0.0.1:0", shout)
	if err != nil {
		log.Fatal(err)
	}
	defer upstream.Shutdown(ctx)

	relay := func(ctx context.Context, client *sluice.Conn) error {
		up, err := sluice.Dial(ctx, "tcp", upstream.Addrs()[0].String())
		if err != nil {
			return err
		}
		defer up.Close()
		_, _, err = sluice.Relay(ctx, client, up)
		return err
	}
	proxy, err := sluice.Listen(ctx, "tcp", "127.0.0.1:0", relay)
	if err != nil {
		log.Fatal(err)
	}
	defer proxy.Shutdown(ctx)

	c, err := sluice.Dial(ctx, "tcp", proxy.Addrs()[0].String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello through the proxy"))
	c.WriteEOF()
	answer, err := c.ReadAll(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", answer)
	// Output: HELLO THROUGH THE PROXY
}
