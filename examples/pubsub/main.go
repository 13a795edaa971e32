// Command pubsub is a publish/subscribe server over lines, with a sluice.Hub
// per topic. A client sends:
//
//	SUB topic            to get "MSG topic message" for every message published to topic
//	UNSUB topic          to stop
//	PUB topic message    to publish; the reply says how many subscribers it was queued for
//
// Publishing never waits for a subscriber: the message is queued on each
// subscriber's connection, up to maxQueued bytes per subscriber. One that falls
// further behind misses messages until it catches up (the DropMessages
// policy), and never holds up the publisher or the other subscribers.
//
// The program runs the server and three clients, and prints what they say and
// hear:
//
//	go run ./examples/pubsub
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sluice-go/sluice"
)

const maxQueued = 256 << 10 // how far a subscriber may fall behind before it misses messages

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// A broker keeps the topics.
type broker struct {
	mu     sync.Mutex
	topics map[string]*sluice.Hub // guarded by mu; a topic is made when first named
}

// topic returns the Hub of the topic called name.
func (b *broker) topic(name string) *sluice.Hub {
	b.mu.Lock()
	defer b.mu.Unlock()
	h, ok := b.topics[name]
	if !ok {
		h = sluice.NewHub(sluice.HubConfig{MaxQueued: maxQueued, Slow: sluice.DropMessages})
		b.topics[name] = h
	}
	return h
}

// handle is a client's Handler: it runs the client's commands. When the client
// goes, it leaves every topic it subscribed to.
func (b *broker) handle(ctx context.Context, c *sluice.Conn) error {
	subs := map[string]func(){} // topic → leave
	defer func() {
		for _, leave := range subs {
			leave()
		}
	}()
	for line, err := range c.Lines(ctx) {
		if err != nil {
			return err
		}
		cmd, arg, _ := strings.Cut(string(line), " ")
		switch cmd {
		case "SUB":
			if subs[arg] == nil {
				subs[arg] = b.topic(arg).Join(c)
			}
			fmt.Fprintf(c, "SUBSCRIBED %s\n", arg)
		case "UNSUB":
			if leave := subs[arg]; leave != nil {
				leave()
				delete(subs, arg)
			}
			fmt.Fprintf(c, "UNSUBSCRIBED %s\n", arg)
		case "PUB":
			topic, msg, _ := strings.Cut(arg, " ")
			n := b.topic(topic).Publish(fmt.Appendf(nil, "MSG %s %s\n", topic, msg))
			fmt.Fprintf(c, "PUBLISHED %s %d\n", topic, n)
		default:
			fmt.Fprintf(c, "ERR unknown command %q\n", cmd)
		}
	}
	return nil
}

// run starts a broker and three clients: alice and bob subscribe, carol
// publishes.
func run(ctx context.Context, out io.Writer) error {
	b := &broker{topics: map[string]*sluice.Hub{}}
	server, err := sluice.Listen(ctx, "tcp", "127.0.0.1:0", b.handle)
	if err != nil {
		return err
	}
	defer server.Shutdown(ctx)
	clients := map[string]*sluice.Conn{}
	for _, name := range []string{"alice", "bob", "carol"} {
		c, err := sluice.Dial(ctx, "tcp", server.Addrs()[0].String())
		if err != nil {
			return err
		}
		defer c.Close()
		clients[name] = c
	}

	// Each step is a client sending a command and reading its reply (">"), or
	// reading a message (with no command).
	for _, step := range [][2]string{
		{"alice", "SUB news"}, {"alice", "SUB weather"}, {"bob", "SUB news"},
		{"carol", "PUB news sluice has a Hub"}, {"alice", ""}, {"bob", ""},
		{"carol", "PUB weather sunny"}, {"alice", ""},
		{"bob", "UNSUB news"},
		{"carol", "PUB news bob has left"}, {"alice", ""},
	} {
		who, cmd := step[0], step[1]
		c := clients[who]
		if cmd != "" {
			fmt.Fprintf(out, "%s> %s\n", who, cmd)
			fmt.Fprintf(c, "%s\n", cmd)
		}
		line, err := c.ReadLine(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s< %s", who, line)
	}
	return nil
}
