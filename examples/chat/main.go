// Command chat is a line-based chat room: a client sends its name, then every
// line it sends goes to every other client.
//
// A client that does not read is dropped: the room's goroutine is the only
// writer to every client, it never blocks, and each client's Conn write queue
// is its outbox, of at most outboxBytes. When a line does not fit in a client's
// outbox, the room disconnects that client and tells the others. So one slow
// client can neither stall the room nor make it hold more than outboxBytes
// for it.
//
//	go run ./examples/chat -port 8888   # then connect with: nc 127.0.0.1 8888
//	go run ./examples/chat -demo        # three clients, one slow; exits
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
	"sync"
	"time"

	"github.com/sluice-go/sluice"
)

const (
	lineLimit   = 1 << 10  // the longest line a client may send
	outboxBytes = 64 << 10 // what the room queues for one client before dropping it
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
	r, stop := startRoom()
	defer stop()
	server, err := listen(ctx, address, r)
	if err != nil {
		return err
	}
	log.Printf("chat room on %v", server.Addrs()[0])
	err = server.Serve(ctx) // until Ctrl-C
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	server.Shutdown(shutdownCtx) // before the room stops
	return err
}

// listen starts a server whose connections join room r. The write buffer's high
// watermark is the outbox's size, so the room's writes never block.
func listen(ctx context.Context, address string, r *room) (*sluice.Server, error) {
	return sluice.Listen(ctx, "tcp", address, r.handle,
		sluice.WithLimit(lineLimit),
		sluice.WithWriteBufferLimits(outboxBytes, outboxBytes/4))
}

// A room fans lines out to its members. Clients' handlers talk to its goroutine
// through the channels; only that goroutine writes to members.
type room struct {
	join  chan member
	leave chan *sluice.Conn
	say   chan message
	done  chan struct{} // closed when the room's goroutine should end
}

type member struct {
	conn *sluice.Conn
	name string
}

type message struct {
	from *sluice.Conn
	text []byte
}

// startRoom starts a room's goroutine; stop ends it and waits for it.
func startRoom() (r *room, stop func()) {
	r = &room{
		join:  make(chan member),
		leave: make(chan *sluice.Conn),
		say:   make(chan message),
		done:  make(chan struct{}),
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // ended by stop, which waits for it
		defer wg.Done()
		r.run()
	}()
	return r, func() { close(r.done); wg.Wait() }
}

// run is the room's goroutine: it keeps the members and does every write.
func (r *room) run() {
	members := map[*sluice.Conn]string{}
	for {
		select {
		case m := <-r.join:
			members[m.conn] = m.name
			broadcast(members, nil, fmt.Appendf(nil, "* %s joined\n", m.name))
		case c := <-r.leave:
			if name, ok := members[c]; ok {
				delete(members, c)
				broadcast(members, nil, fmt.Appendf(nil, "* %s left\n", name))
			}
		case m := <-r.say:
			broadcast(members, m.from, m.text)
		case <-r.done:
			return
		}
	}
}

// broadcast queues text for every member but from. A member whose outbox
// cannot take it is dropped: its connection is aborted, which ends its
// handler, and the others are told.
func broadcast(members map[*sluice.Conn]string, from *sluice.Conn, text []byte) {
	var dropped []string
	for c, name := range members {
		if c == from {
			continue
		}
		if c.WriteBufferSize()+len(text) > outboxBytes {
			c.Abort()
			delete(members, c)
			dropped = append(dropped, name)
			continue
		}
		c.Write(text) // fits under the high watermark: does not block
	}
	for _, name := range dropped {
		broadcast(members, nil, fmt.Appendf(nil, "* %s was dropped: not reading\n", name))
	}
}

// handle is a client's Handler: it reads the client's name, then its lines.
func (r *room) handle(ctx context.Context, c *sluice.Conn) error {
	c.Write([]byte("Welcome! Your name?\n"))
	name, err := c.ReadLine(ctx)
	if err != nil {
		return err
	}
	name = bytes.TrimSpace(name)
	if !send(ctx, r, r.join, member{c, string(name)}) {
		return nil
	}
	defer send(context.WithoutCancel(ctx), r, r.leave, c)
	for line, err := range c.Lines(ctx) {
		if errors.Is(err, net.ErrClosed) {
			return nil // dropped by the room
		}
		if err != nil {
			return err
		}
		if !send(ctx, r, r.say, message{c, fmt.Appendf(nil, "%s: %s\n", name, line)}) {
			return nil
		}
	}
	return nil
}

// send hands v to r's goroutine on ch; it reports false if ctx ended or the
// room stopped first.
func send[T any](ctx context.Context, r *room, ch chan<- T, v T) bool {
	select {
	case ch <- v:
		return true
	case <-ctx.Done():
	case <-r.done:
	}
	return false
}
