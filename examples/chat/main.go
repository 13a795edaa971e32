// Command chat is a line-based chat room: a client sends its name, then every
// line it sends goes to every client, itself included.
//
// The room is a sluice.Hub. A line is queued on every client's connection at
// once, without waiting for any client, up to maxQueued bytes per client. So a
// client that reads gets every line of a burst that size, even one far past its
// connection's write buffer (64 KiB), and a client that stops reading is
// dropped once that much is queued for it (the Disconnect policy): it can
// neither stall the room nor make it hold more.
//
//	go run ./examples/chat -port 8888   # then connect with: nc 127.0.0.1 8888
//	go run ./examples/chat -demo        # three clients, one never reads; exits
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/sluice-go/sluice"
)

const (
	lineLimit = 1 << 10 // the longest line a client may send
	maxQueued = 1 << 20 // what the room queues for one client before dropping it
)

func main() {
	host := flag.String("host", "127.0.0.1", "host to listen on")
	port := flag.Int("port", 8888, "port to listen on")
	demoMode := flag.Bool("demo", false, "run a short demo with three clients, then exit")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if *demoMode {
		err = demo(ctx, os.Stdout)
	} else {
		err = serve(ctx, net.JoinHostPort(*host, strconv.Itoa(*port)))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// serve runs a chat room on address until ctx ends.
func serve(ctx context.Context, address string) error {
	room := newRoom()
	server, err := listen(ctx, address, room)
	if err != nil {
		return err
	}
	log.Printf("chat room on %v", server.Addrs()[0])
	err = server.Serve(ctx) // until Ctrl-C
	room.Close()            // first, so that no one hears of the others' closing
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	server.Shutdown(shutdownCtx)
	return err
}

// newRoom returns an empty chat room.
func newRoom() *sluice.Hub {
	return sluice.NewHub(sluice.HubConfig{MaxQueued: maxQueued, Slow: sluice.Disconnect})
}

// listen starts a server whose clients join room.
func listen(ctx context.Context, address string, room *sluice.Hub) (*sluice.Server, error) {
	return sluice.Listen(ctx, "tcp", address, handler(room), sluice.WithLimit(lineLimit))
}

// handler returns the Handler of room's clients: it reads a client's name,
// then passes its lines on to the room.
func handler(room *sluice.Hub) sluice.Handler {
	return func(ctx context.Context, c *sluice.Conn) error {
		c.Write([]byte("Welcome! Your name?\n"))
		name, err := c.ReadLine(ctx)
		if err != nil {
			return err
		}
		name = bytes.TrimSpace(name)
		leave := room.Join(c)
		say(room, "* %s joined", name)
		err = talk(ctx, room, c, name)
		leave()
		if c.IsClosing() { // the room aborted c: it did not read
			say(room, "* %s was dropped: not reading", name)
			return nil
		}
		say(room, "* %s left", name)
		return err
	}
}

// talk says each line the client sends, until it leaves.
func talk(ctx context.Context, room *sluice.Hub, c *sluice.Conn, name []byte) error {
	for line, err := range c.Lines(ctx) {
		if err != nil {
			return err
		}
		say(room, "%s: %s", name, line)
	}
	return nil
}

// say sends a line to everyone in room. It never waits for anyone.
func say(room *sluice.Hub, format string, args ...any) {
	room.Publish(append(fmt.Appendf(nil, format, args...), '\n'))
}
