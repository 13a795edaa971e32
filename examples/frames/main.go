// Command frames runs a length-prefixed request/response exchange over loopback
// TCP: a server that answers each request frame with one response frame, and a
// client that sends a few requests and prints the replies. Both run in this
// process; it exits when the exchange is done.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/sluice-go/sluice"
)

// framing is the wire format both ends use: a 2-byte big-endian length, then
// the payload, at most 4 KiB (Netty's LengthFieldBasedFrameDecoder(4096, 0, 2,
// 0, 2) with a LengthFieldPrepender(2), tokio's LengthDelimitedCodec with a u16
// length).
var framing = sluice.LengthPrefixed(sluice.LengthPrefix{Size: 2, Max: 4 << 10})

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- serveOne(ctx, ln) }()

	if err := client(ctx, ln.Addr().String()); err != nil {
		log.Fatal(err)
	}
	if err := <-served; err != nil {
		log.Fatal(err)
	}
}

// serveOne accepts one connection and answers each request frame until the
// client half-closes.
func serveOne(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	nc, err := ln.Accept()
	if err != nil {
		return err
	}
	c := sluice.NewConn(nc)
	defer c.Close() // flushes the last replies
	for req, err := range c.Frames(ctx, framing) {
		if err != nil {
			return err
		}
		fmt.Printf("server: got %q\n", req)
		// req is only valid until the next step, so reply now: WriteFrame
		// copies it into the write queue.
		if err := c.WriteFrame(framing, bytes.ToUpper(req)); err != nil {
			return err
		}
	}
	return nil
}

// client sends requests one at a time and waits for each reply.
func client(ctx context.Context, addr string) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c := sluice.NewConn(nc)
	defer c.Close()
	for _, req := range []string{"hello", "length-prefixed", "frames"} {
		fmt.Printf("client: send %q\n", req)
		if err := c.WriteFrame(framing, []byte(req)); err != nil {
			return err
		}
		resp, err := c.ReadFrame(ctx, framing) // an owned copy
		if err != nil {
			return err
		}
		fmt.Printf("client: reply %q\n", resp)
	}
	if err := c.WriteEOF(); err != nil { // ends the server's loop
		return err
	}
	// The server closes once it has seen our EOF.
	if _, err := c.ReadFrame(ctx, framing); err != io.EOF {
		return fmt.Errorf("client: want EOF from the server, got %v", err)
	}
	return nil
}
