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

// burstLines is how many lines alice sends before bob reads: about 28 KiB,
// well within one outbox.
const burstLines = 30

// demo runs a room with three clients: bob reads everything, slow never reads,
// and alice talks, then floods the room until slow is dropped; bob keeps up
// all along. It prints what bob sees.
func demo(ctx context.Context, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	r, stopRoom := startRoom()
	defer stopRoom()
	server, err := listen(ctx, "127.0.0.1:0", r)
	if err != nil {
		return err
	}
	defer server.Shutdown(ctx) // before the room stops
	addr := server.Addrs()[0].String()
	fmt.Fprintln(out, "chat room on", addr)

	bob, err := joinAs(ctx, addr, "bob")
	if err != nil {
		return err
	}
	defer bob.Close()
	bobSees := func(want string) error {
		_, err := bobReads(ctx, bob, out, want)
		return err
	}
	if err := bobSees("* bob joined"); err != nil {
		return err
	}

	slow, err := joinAs(ctx, addr, "slow") // and never reads
	if err != nil {
		return err
	}
	defer slow.Close()
	if err := bobSees("* slow joined"); err != nil {
		return err
	}
	alice, err := joinAs(ctx, addr, "alice")
	if err != nil {
		return err
	}
	defer alice.Close()
	if err := bobSees("* alice joined"); err != nil {
		return err
	}

	fmt.Fprintln(alice, "Hello, everyone!")
	if err := bobSees("alice: Hello, everyone!"); err != nil {
		return err
	}

	// alice floods the room in bursts; bob reads each burst before the next,
	// as a client on a fast link would, while slow's outbox fills.
	fmt.Fprintln(out, "alice floods the room; slow reads nothing...")
	filler := strings.Repeat("~", 900)
	dropped := "* slow was dropped: not reading"
	for burst := 0; ; burst++ {
		for i := range burstLines {
			fmt.Fprintf(alice, "flood %d.%d %s\n", burst, i, filler)
		}
		last := fmt.Sprintf("alice: flood %d.%d %s", burst, burstLines-1, filler)
		seen, err := bobReads(ctx, bob, out, last, dropped)
		if err != nil {
			return err
		}
		if seen == dropped {
			fmt.Fprintf(out, "slow was dropped during burst %d; bob kept up\n", burst)
			break
		}
	}

	fmt.Fprintln(alice, "Still here, bob?")
	return bobSees("alice: Still here, bob?")
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

// bobReads reads lines until one of want, and returns it. It prints every
// line but alice's flood.
func bobReads(ctx context.Context, bob *sluice.Conn, out io.Writer, want ...string) (string, error) {
	for line, err := range bob.Lines(ctx) {
		if err != nil {
			return "", err
		}
		if !bytes.HasPrefix(line, []byte("alice: flood ")) {
			fmt.Fprintf(out, "bob sees: %s\n", line)
		}
		if i := slices.Index(want, string(line)); i >= 0 {
			return want[i], nil
		}
	}
	return "", io.ErrUnexpectedEOF // bob's connection ended
}
