package sluice_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"time"

	"github.com/sluice-go/sluice"
)

// An upper-casing line server and a client (asyncio's start_server and
// open_connection).
func ExampleListen() {
	ctx := context.Background()
	shout := func(ctx context.Context, c *sluice.Conn) error {
		for line, err := range c.Lines(ctx) {
			if err != nil {
				return err
			}
			c.Writev(bytes.ToUpper(line), []byte("\n"))
		}
		return nil // the server flushes and closes c
	}
	server, err := sluice.Listen(ctx, "tcp", "127.0.0.1:0", shout)
	if err != nil {
		log.Fatal(err)
	}
	defer server.Shutdown(ctx)

	c, err := sluice.Dial(ctx, "tcp", server.Addrs()[0].String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "hello, server")
	line, err := c.ReadLine(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", line)
	// Output: HELLO, SERVER
}

// Serve until a signal (here, a cancelled context), then shut down: stop
// accepting, close every client gracefully, and wait for the handlers, within
// a time limit.
func ExampleServer_Shutdown() {
	ctx := context.Background()
	greet := func(ctx context.Context, c *sluice.Conn) error {
		fmt.Fprintln(c, "welcome")
		<-ctx.Done() // until the server closes this client
		return nil
	}
	server, err := sluice.Listen(ctx, "tcp", "127.0.0.1:0", greet, sluice.WithStartServing(false))
	if err != nil {
		log.Fatal(err)
	}
	signalCtx, signal := context.WithCancel(ctx) // as signal.NotifyContext
	served := make(chan error, 1)
	go func() { served <- server.Serve(signalCtx) }()

	c, err := sluice.Dial(ctx, "tcp", server.Addrs()[0].String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	line, _ := c.ReadLine(ctx)
	fmt.Printf("client: %s", line)

	signal() // Ctrl-C
	fmt.Println("Serve:", <-served)
	shutdownCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fmt.Println("Shutdown:", server.Shutdown(shutdownCtx))
	_, err = c.ReadLine(ctx)
	fmt.Println("client:", err)
	// Output:
	// client: welcome
	// Serve: context canceled
	// Shutdown: <nil>
	// client: EOF
}
