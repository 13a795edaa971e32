// Command proxy is a TCP proxy: it relays every connection it accepts to an
// upstream server with sluice.Relay. A client's half-close reaches the
// upstream as a half-close and the answer still comes back; a reset on either
// side reaches the other side as a reset. On Linux the bytes move in the
// kernel (splice), never through the proxy's memory.
//
//	go run ./examples/proxy -listen 127.0.0.1:8080 -upstream example.org:80
//	curl -H 'Host: example.org' http://127.0.0.1:8080/
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"

	"github.com/sluice-go/sluice"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	upstream := flag.String("upstream", "example.org:80", "address to relay each connection to")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *listen, *upstream, os.Stderr, nil); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// run relays connections on listen to upstream until ctx ends, logging a line
// per connection to out. If ready is not nil, it receives the address the
// proxy listens on.
func run(ctx context.Context, listen, upstream string, out io.Writer, ready chan<- string) error {
	logger := slog.New(slog.NewTextHandler(out, nil))
	relay := func(ctx context.Context, client *sluice.Conn) error {
		up, err := sluice.Dial(ctx, "tcp", upstream)
		if err != nil {
			return err
		}
		defer up.Close()
		sent, received, err := sluice.Relay(ctx, client, up)
		logger.Info("relayed", "client", client.RemoteAddr(), "up", sent, "down", received, "err", err)
		return err // the server closes client
	}
	proxy, err := sluice.Listen(ctx, "tcp", listen, relay, sluice.WithLogger(logger))
	if err != nil {
		return err
	}
	defer proxy.Shutdown(context.Background())
	if ready != nil {
		ready <- proxy.Addrs()[0].String()
	}
	return proxy.Serve(ctx)
}
