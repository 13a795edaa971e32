package sluice_test

import (
	"context"
	"expvar"
	"fmt"
	"log"

	"github.com/sluice-go/sluice"
)

// Publish a Server's counters through the standard library's expvar: a program
// that serves HTTP shows them at /debug/vars, with no other dependency.
func ExampleServer_Stats() {
	ctx := context.Background()
	srv, err := sluice.Listen(ctx, "tcp", "127.0.0.1:0", func(ctx context.Context, c *sluice.Conn) error {
		line, err := c.ReadLine(ctx)
		if err != nil {
			return err
		}
		_, err = c.Write(line)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	expvar.Publish("sluice", expvar.Func(func() any { return srv.Stats() }))

	c, err := sluice.Dial(ctx, "tcp", srv.Addrs()[0].String())
	if err != nil {
		log.Fatal(err)
	}
	c.Write([]byte("hello\n"))
	if _, err := c.ReadLine(ctx); err != nil {
		log.Fatal(err)
	}
	c.Close()
	srv.Shutdown(ctx) // waits for the handler: the figures are final

	fmt.Println(expvar.Get("sluice"))
	// Output: {"Accepted":1,"Active":0,"Errors":0,"Panics":0,"TimedOut":0,"Rejected":0,"BytesRead":6,"BytesWritten":6}
}
