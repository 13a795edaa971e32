// Command echo runs an echo server and a client in one process: the client
// sends a few lines, prints what comes back, and both shut down.
//
//	go run ./examples/echo
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/sluice-go/sluice"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// echo is the server's handler: it sends every line back. When it returns, the
// server flushes and closes the connection.
func echo(ctx context.Context, c *sluice.Conn) error {
	for line, err := range c.Lines(ctx) {
		if err != nil {
			return err
		}
		c.Writev(line, []byte("\n"))
		if err := c.Drain(ctx); err != nil {
			return err
		}
	}
	return nil
}

func run(ctx context.Context, out io.Writer) error {
	server, err := sluice.Listen(ctx, "tcp", "127.0.0.1:0", echo)
	if err != nil {
		return err
	}
	defer server.Shutdown(ctx)
	addr := server.Addrs()[0].String()
	fmt.Fprintln(out, "Serving on", addr)

	c, err := sluice.Dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	for _, message := range []string{"Hello World!", "How are you?", "Goodbye."} {
		fmt.Fprintf(out, "Send: '%s'\n", message)
		fmt.Fprintf(c, "%s\n", message)
		line, err := c.ReadLine(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Received: '%s'\n", bytes.TrimSuffix(line, []byte("\n")))
	}
	fmt.Fprintln(out, "Close the connection")
	if err := c.Close(); err != nil {
		return err
	}
	return server.Shutdown(ctx)
}
