package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/sluice-go/sluice"
)

// A server ready for the internet: a peer that goes quiet is dropped after the
// idle timeout, one that sends a line a byte at a time after the message
// timeout, and the handler's ctx ends with its Conn either way. Stats says
// what happened. (Behind a proxy that sends a PROXY protocol header, add
// WithProxyProtocol(sluice.ProxyRequired).)
func ExampleWithIdleTimeout() {
	ctx := context.Background()
	ended := make(chan error, 1)
	srv, err := sluice.Listen(ctx, "tcp", "127.0.0.1:0",
		func(ctx context.Context, c *sluice.Conn) error {
			_, err := c.ReadLine(ctx)
			ended <- err
			return err
		},
		sluice.WithIdleTimeout(100*time.Millisecond),   // production: tens of seconds
		sluice.WithMessageTimeout(50*time.Millisecond), // production: seconds
		sluice.WithMaxConns(10_000),
	)
	if err != nil {
		log.Fatal(err)
	}

	nc, err := net.Dial("tcp", srv.Addrs()[0].String()) // connects, says nothing
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	err = <-ended
	fmt.Println("idle timeout:", errors.Is(err, sluice.ErrIdleTimeout))

	srv.Shutdown(ctx) // stop accepting, close clients gracefully, wait
	fmt.Println("timed out:", srv.Stats().TimedOut)
	// Output:
	// idle timeout: true
	// timed out: 1
}
