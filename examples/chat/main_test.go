package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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

func TestDemo(t *testing.T) {
	is := is.New(t)
	var out bytes.Buffer
	is.NoErr(demo(context.Background(), &out))
	for _, want := range []string{
		"bob sees: * alice joined\n",
		"bob sees: alice: Hello, everyone!\n",
		"bob sees: * slow was dropped: not reading\n",
		"bob kept up\n",
		"bob sees: alice: Still here, bob?\n",
	} {
		is.True(strings.Contains(out.String(), want))
	}
}

// line returns the room's line n: about 1 KiB.
func line(n int) string {
	return fmt.Sprintf("alice: %d %s\n", n, strings.Repeat("~", 1000))
}

// client joins a client to room over a socket pair and returns the room's end
// and the client's, both closed at cleanup.
func client(t *testing.T, room *sluice.Hub) (*sluice.Conn, *bufio.Reader) {
	t.Helper()
	c, peer, err := sluice.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Abort(); peer.Abort() })
	room.Join(c)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(peer)
}

// readLines reads lines from..to-1 from r and checks each one.
func readLines(r *bufio.Reader, from, to int) error {
	for n := from; n < to; n++ {
		got, err := r.ReadString('\n')
		if err != nil || got != line(n) {
			return fmt.Errorf("line %d: %.20q, %v", n, got, err)
		}
	}
	return nil
}

// A client that reads gets every line of a burst larger than its write
// buffer (64 KiB) and is not dropped, whether it reads as the burst comes or
// only once all of it is queued.
func TestBurstReachesReader(t *testing.T) {
	const lines = 500 // about 500 KiB: past the write buffer, within maxQueued
	for _, late := range []bool{false, true} {
		t.Run(map[bool]string{false: "reading", true: "reading after the burst"}[late], func(t *testing.T) {
			is := is.New(t)
			room := newRoom()
			bob, bobReads := client(t, room)
			read := make(chan error, 1)
			if !late {
				go func() { read <- readLines(bobReads, 0, lines) }()
			}
			for n := range lines {
				is.Equal(room.Publish([]byte(line(n))), 1)
			}
			if late {
				is.True(bob.WriteBufferSize() > 64<<10) // past the high watermark
				go func() { read <- readLines(bobReads, 0, lines) }()
			}
			is.NoErr(<-read) // bounded by the read deadline
			is.True(!bob.IsClosing())
			is.Equal(room.Members(), 1)
			is.Equal(room.Stats(), sluice.HubStats{Published: lines, Delivered: lines})
		})
	}
}

// A client that never reads is dropped once maxQueued bytes are queued for it,
// and never more; the room goes on, and bob, who reads each burst, gets every
// line.
func TestSilentClientIsDropped(t *testing.T) {
	is := is.New(t)
	room := newRoom()
	slow, slowReads := client(t, room) // never reads, until the end
	_, bobReads := client(t, room)
	const burst = 100
	n := 0
	for !slow.IsClosing() {
		is.True(n < 100*burst) // the kernel's socket buffers, then maxQueued
		for range burst {
			is.True(slow.WriteBufferSize() <= maxQueued+len(line(n)))
			room.Publish([]byte(line(n)))
			n++
		}
		is.NoErr(readLines(bobReads, n-burst, n))
	}
	is.Equal(room.Members(), 1)
	is.Equal(room.Stats().Disconnected, int64(1))

	is.Equal(room.Publish([]byte(line(n))), 1)
	is.NoErr(readLines(bobReads, n, n+1))
	_, err := io.Copy(io.Discard, slowReads) // what reached slow, then EOF
	is.NoErr(err)
}
