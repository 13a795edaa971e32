package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/sluice-go/sluice"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The whole program, checked line by line: every client reads each reply or
// message before the next command is sent, so the order is fixed.
func Example_main() {
	main()
	// Output:
	// alice> SUB news
	// alice< SUBSCRIBED news
	// alice> SUB weather
	// alice< SUBSCRIBED weather
	// bob> SUB news
	// bob< SUBSCRIBED news
	// carol> PUB news sluice has a Hub
	// carol< PUBLISHED news 2
	// alice< MSG news sluice has a Hub
	// bob< MSG news sluice has a Hub
	// carol> PUB weather sunny
	// carol< PUBLISHED weather 1
	// alice< MSG weather sunny
	// bob> UNSUB news
	// bob< UNSUBSCRIBED news
	// carol> PUB news bob has left
	// carol< PUBLISHED news 1
	// alice< MSG news bob has left
}

// client is a raw connection to the broker at addr that has sent cmds and read
// their replies. The caller closes it.
func client(t *testing.T, addr string, cmds ...string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for _, cmd := range cmds {
		fmt.Fprintf(c, "%s\n", cmd)
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	return c, r
}

// A subscriber that never reads misses messages once maxQueued bytes are
// queued for it; the publisher is never held up, and a subscriber that reads
// gets every message.
func TestSlowSubscriberMissesMessages(t *testing.T) {
	is := is.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := &broker{topics: map[string]*sluice.Hub{}}
	server, err := sluice.Listen(ctx, "tcp", "127.0.0.1:0", b.handle)
	is.NoErr(err)
	defer server.Shutdown(ctx)
	addr := server.Addrs()[0].String()
	// The clients close before the server shuts down, which would otherwise
	// wait to flush what is queued for slow.
	slow, _ := client(t, addr, "SUB news") // never reads again
	defer slow.Close()
	fastConn, fast := client(t, addr, "SUB news")
	defer fastConn.Close()
	pub, replies := client(t, addr)
	defer pub.Close()

	filler := strings.Repeat("~", 1000)
	const burst = 100
	missed := 0
	for n := 0; missed < 10; {
		is.True(n < 100*burst) // the kernel's socket buffers, then maxQueued
		for range burst {
			fmt.Fprintf(pub, "PUB news %d %s\n", n, filler)
			reply, err := replies.ReadString('\n')
			is.NoErr(err)
			if reply == "PUBLISHED news 1\n" {
				missed++
			} else {
				is.Equal(reply, "PUBLISHED news 2\n")
			}
			n++
		}
		for i := n - burst; i < n; i++ { // fast reads each burst whole
			msg, err := fast.ReadString('\n')
			is.NoErr(err)
			is.Equal(msg, fmt.Sprintf("MSG news %d %s\n", i, filler))
		}
	}
	st := b.topic("news").Stats()
	is.Equal(st.Dropped, int64(missed))
	is.Equal(st.Delivered, 2*st.Published-st.Dropped)
}
