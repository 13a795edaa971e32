package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sluice-go/sluice"
)

// burstLines is how many lines alice sends at a time: about 90 KiB, more than
// a connection's write buffer holds (64 KiB) and well within maxQueued.
const burstLines = 100

// demo runs a room with three clients: bob reads everything, slow never reads,
// and alice talks, then floods the room in bursts until slow is dropped; bob
// gets every burst. It prints what bob sees.
func demo(ctx context.Context, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	room := newRoom()
	server, err := listen(ctx, "127.0.0.1:0", room)
	if err != nil {
		return err
	}
	defer server.Shutdown(ctx)
	defer room.Close() // first, so that no one hears of the others' closing
	addr := server.Addrs()[0].String()
	fmt.Fprintln(out, "chat room on", addr)

	var clients []*sluice.Conn
	for _, name := range []string{"bob", "slow", "alice"} { // slow never reads
		c, err := joinAs(ctx, addr, name)
		if err != nil {
			return err
		}
		defer c.Close()
		clients = append(clients, c)
		if _, err := readUntil(ctx, clients[0], "bob", out, "* "+name+" joined"); err != nil {
			return err
		}
	}
	bob, alice := clients[0], clients[2]

	fmt.Fprintln(alice, "Hello, everyone!")
	if _, err := readUntil(ctx, bob, "bob", out, "alice: Hello, everyone!"); err != nil {
		return err
	}

	// alice floods the room in bursts; bob and alice read each burst before
	// the next, as clients on a fast link would, while slow's queue fills.
	fmt.Fprintf(out, "alice floods the room in bursts of %d lines; slow reads nothing...\n", burstLines)
	filler := strings.Repeat("~", 900)
	dropped := "* slow was dropped: not reading"
	for burst := 0; ; burst++ {
		var lines bytes.Buffer
		for i := range burstLines {
			fmt.Fprintf(&lines, "flood %d.%d %s\n", burst, i, filler)
		}
		alice.Write(lines.Bytes())
		last := fmt.Sprintf("alice: flood %d.%d %s", burst, burstLines-1, filler)
		seen, err := readUntil(ctx, bob, "bob", out, last, dropped)
		if err == nil {
			_, err = readUntil(ctx, alice, "alice", io.Discard, last, dropped)
		}
		if err != nil {
			return err
		}
		if seen == dropped {
			fmt.Fprintf(out, "slow was dropped during burst %d; bob kept up\n", burst)
			break
		}
	}

	fmt.Fprintln(alice, "Still here, bob?")
	_, err = readUntil(ctx, bob, "bob", out, "alice: Still here, bob?")
	return err
}

// joinAs connects to the room and gives name.
func joinAs(ctx context.Context, addr, name string) (*sluice.Conn, error) {
	c, err := sluice.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(c, name)
	return c, c.Drain(ctx)
}

// readUntil reads c's lines until one of want, and returns it. It prints to
// out every line but alice's flood, as what who sees.
func readUntil(ctx context.Context, c *sluice.Conn, who string, out io.Writer, want ...string) (string, error) {
	for line, err := range c.Lines(ctx) {
		if err != nil {
			return "", err
		}
		if !bytes.HasPrefix(line, []byte("alice: flood ")) {
			fmt.Fprintf(out, "%s sees: %s\n", who, line)
		}
		if i := slices.Index(want, string(line)); i >= 0 {
			return want[i], nil
		}
	}
	return "", io.ErrUnexpectedEOF // the connection ended
}
