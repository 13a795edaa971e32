package main

import (
	"bufio"
	"bytes"
	"context"
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

// TestSlowMemberIsDropped floods a member whose peer never reads: what the room
// holds for it stays within outboxBytes, then it is dropped and the others told.
func TestSlowMemberIsDropped(t *testing.T) {
	is := is.New(t)
	slow, slowPeer, err := sluice.Pipe()
	is.NoErr(err)
	defer slowPeer.Close()
	bob, bobPeer, err := sluice.Pipe()
	is.NoErr(err)
	defer bob.Close()
	defer bobPeer.Close()

	members := map[*sluice.Conn]string{slow: "slow", bob: "bob"}
	line := []byte(strings.Repeat("x", 1000) + "\n")
	for i := 0; members[slow] != ""; i++ {
		is.True(i < 100_000) // about the kernel's socket buffers, then the outbox
		is.True(slow.WriteBufferSize() <= outboxBytes)
		broadcast(members, bob, line) // from bob: only slow gets it
	}
	is.True(slow.IsClosing())
	is.Equal(members, map[*sluice.Conn]string{bob: "bob"})

	bobPeer.SetReadDeadline(time.Now().Add(10 * time.Second))
	notice, err := bufio.NewReader(bobPeer).ReadString('\n')
	is.NoErr(err)
	is.Equal(notice, "* slow was dropped: not reading\n")
}
