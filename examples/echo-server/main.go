// Command echo-server is the TCP echo server of the asyncio streams
// documentation ("TCP echo server using streams"), with sluice: it echoes the
// first message each client sends, then closes the connection.
//
//	go run ./examples/echo-server -port 8888
//	go run ./examples/echo-client -port 8888
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/sluice-go/sluice"
)

func main() {
	host := flag.String("host", "127.0.0.1", "host to listen on (\"\" for every interface)")
	port := flag.Int("port", 8888, "port to listen on")
	flag.Parse()

	// Serve until Ctrl-C, as the docs' server.serve_forever().
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	address := net.JoinHostPort(*host, strconv.Itoa(*port))
	if err := run(ctx, address, os.Stdout, nil); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// run serves on address until ctx ends, printing to out. If ready is not nil,
// it receives the server once it listens.
func run(ctx context.Context, address string, out io.Writer, ready chan<- *sluice.Server) error {
	server, err := sluice.Listen(ctx, "tcp", address, handleEcho(out))
	if err != nil {
		return err
	}
	defer server.Shutdown(context.Background())

	var addrs []string
	for _, a := range server.Addrs() {
		addrs = append(addrs, pyAddr(a))
	}
	fmt.Fprintf(out, "Serving on %s\n", strings.Join(addrs, ", "))
	if ready != nil {
		ready <- server
	}
	return server.Serve(ctx)
}

func handleEcho(out io.Writer) sluice.Handler {
	return func(ctx context.Context, c *sluice.Conn) error {
		data := make([]byte, 100)
		n, err := c.Read(data)
		if err != nil {
			return err
		}
		message := string(data[:n])
		addr := c.RemoteAddr()

		fmt.Fprintf(out, "Received '%s' from %s\n", message, pyAddr(addr))

		fmt.Fprintf(out, "Send: '%s'\n", message)
		c.Write(data[:n])
		if err := c.Drain(ctx); err != nil {
			return err
		}

		fmt.Fprintln(out, "Close the connection")
		return c.Close()
	}
}

// pyAddr prints a TCP address as Python prints a socket address tuple.
func pyAddr(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return fmt.Sprintf("('%s', %d)", t.IP, t.Port)
	}
	return a.String()
}
