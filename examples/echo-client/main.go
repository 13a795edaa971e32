// Command echo-client is the TCP echo client of the asyncio streams
// documentation ("TCP echo client using streams"), with sluice: it sends a
// message, prints the reply, and closes the connection.
//
//	go run ./examples/echo-server &
//	go run ./examples/echo-client -message 'Hello World!'
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/sluice-go/sluice"
)

func main() {
	host := flag.String("host", "127.0.0.1", "server host")
	port := flag.Int("port", 8888, "server port")
	message := flag.String("message", "Hello World!", "what to send")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	address := net.JoinHostPort(*host, strconv.Itoa(*port))
	if err := tcpEchoClient(ctx, address, *message, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func tcpEchoClient(ctx context.Context, address, message string, out io.Writer) error {
	c, err := sluice.Dial(ctx, "tcp", address)
	if err != nil {
		return err
	}
	defer c.Abort() // on an early return; a no-op after Close
	if deadline, ok := ctx.Deadline(); ok {
		c.SetDeadline(deadline) // bounds Read, as ctx bounds Drain
	}

	fmt.Fprintf(out, "Send: '%s'\n", message)
	c.Write([]byte(message))
	if err := c.Drain(ctx); err != nil {
		return err
	}

	data := make([]byte, 100)
	n, err := c.Read(data)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Received: '%s'\n", data[:n])

	fmt.Fprintln(out, "Close the connection")
	return c.Close()
}
