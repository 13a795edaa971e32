package sluice_test

import (
	"context"
	"fmt"
	"log"

	"github.com/sluice-go/sluice"
)

// A chat room: every line a client sends goes to every client. Publish never
// waits for a client: a client that stops reading is disconnected once 1 MiB is
// queued for it, so it can neither stall the room nor make it hold more.
func ExampleHub() {
	ctx := context.Background()
	room := sluice.NewHub(sluice.HubConfig{Slow: sluice.Disconnect})
	srv, err := sluice.Listen(ctx, "tcp", "127.0.0.1:0", func(ctx context.Context, c *sluice.Conn) error {
		leave := room.Join(c)
		defer leave()
		c.Write([]byte("welcome\n"))
		var msg []byte
		for line, err := range c.Lines(ctx) {
			if err != nil {
				return err
			}
			msg = append(append(msg[:0], line...), '\n')
			room.Publish(msg) // copies msg, which can be reused at once
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(ctx)

	var clients []*sluice.Conn
	for range 2 {
		c, err := sluice.Dial(ctx, "tcp", srv.Addrs()[0].String())
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		c.ReadLine(ctx) // welcome: c has joined
		clients = append(clients, c)
	}
	clients[0].Write([]byte("hello, room\n"))
	for i, c := range clients {
		line, err := c.ReadLine(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("client %d: %s", i, line)
	}
	// Output:
	// client 0: hello, room
	// client 1: hello, room
}

// Members come and go: leave ends a membership, and a member whose Conn is
// closed leaves by itself. Leaving does not close the Conn.
func ExampleHub_Join() {
	hub := sluice.NewHub(sluice.HubConfig{})
	a, aPeer, err := sluice.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	defer aPeer.Close()
	b, bPeer, err := sluice.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer bPeer.Close()

	leaveA := hub.Join(a)
	hub.Join(b)
	fmt.Println("queued for", hub.Publish([]byte("one\n")))
	leaveA()
	fmt.Println("queued for", hub.Publish([]byte("two\n")))
	b.Close() // sends what is queued; b leaves the hub
	fmt.Println("members:", hub.Members())
	fmt.Printf("%+v\n", hub.Stats())

	ctx := context.Background()
	line, _ := aPeer.ReadLine(ctx)
	fmt.Printf("a got %q\n", line)
	all, _ := bPeer.ReadAll(ctx)
	fmt.Printf("b got %q\n", all)
	// Output:
	// queued for 2
	// queued for 1
	// members: 0
	// {Published:2 Delivered:3 Dropped:0 Disconnected:0}
	// a got "one\n"
	// b got "one\ntwo\n"
}
