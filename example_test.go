package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os/exec"
	"strings"
	"time"

	"github.com/sluice-go/sluice"
)

// Range over a connection's lines. The loop ends at EOF; an error is yielded
// once and ends it.
func ExampleConn_Lines() {
	client, server, err := sluice.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()

	go func() {
		client.Write([]byte("HELO example.org\r\nMAIL FROM:<a@example.org>\r\nQUIT\r\n"))
		client.Close() // flushes, then closes: the server sees EOF
	}()

	ctx := context.Background()
	for line, err := range server.Lines(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", line)
	}
	// Output:
	// HELO example.org
	// MAIL FROM:<a@example.org>
	// QUIT
}

// The channel form of Lines, for select: here a line-reading goroutine feeds a
// loop that also watches a timer. Values on C are owned copies.
func ExampleReader_LineChan() {
	client, server, err := sluice.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	go func() {
		client.Write([]byte("ping\nping\n"))
		client.Close()
	}()

	lines := server.LineChan(context.Background())
	defer lines.Stop()
	idle := time.NewTimer(5 * time.Second)
	defer idle.Stop()
	for {
		select {
		case line, ok := <-lines.C:
			if !ok {
				fmt.Println("done, err:", lines.Err())
				return
			}
			fmt.Printf("got %s\n", line)
		case <-idle.C:
			fmt.Println("idle for too long")
			return
		}
	}
	// Output:
	// got ping
	// got ping
	// done, err: <nil>
}

// Write as fast as you like and let Drain pace you: it returns at once while the
// queue is below its high watermark, and waits for the low one once it passed
// (asyncio's "writer.write(data); await writer.drain()").
func ExampleConn_Drain() {
	client, server, err := sluice.Pipe(sluice.WithWriteBufferLimits(4096, 1024))
	if err != nil {
		log.Fatal(err)
	}
	received := make(chan int)
	go func() {
		b, _ := server.ReadAll(context.Background())
		received <- len(b)
		server.Close()
	}()

	ctx := context.Background()
	msg := []byte(strings.Repeat("x", 63) + "\n")
	for i := 0; i < 10000; i++ {
		if _, err := client.Write(msg); err != nil {
			log.Fatal(err)
		}
		if err := client.Drain(ctx); err != nil {
			log.Fatal(err)
		}
	}
	if err := client.Close(); err != nil { // sends what is still queued
		log.Fatal(err)
	}
	fmt.Println("received", <-received, "bytes")
	// Output: received 640000 bytes
}

// NewReader is asyncio's standalone StreamReader: here over a child process's
// standard output.
func ExampleNewReader() {
	cmd := exec.Command("printf", `first\nsecond\nthird`)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for line, err := range sluice.NewReader(stdout).Lines(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("child said %q\n", line)
	}
	if err := cmd.Wait(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// child said "first"
	// child said "second"
	// child said "third"
}

// ReadExactly, ReadUntil and their errors, as asyncio's readexactly and
// readuntil.
func ExampleConn_ReadUntil() {
	client, server, err := sluice.Pipe(sluice.WithLimit(16))
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	go func() {
		client.Write([]byte("GET /\r\n\r\nbody"))
		client.Close()
	}()

	ctx := context.Background()
	head, _ := server.ReadUntil(ctx, []byte("\r\n\r\n"))
	fmt.Printf("head %q\n", head)

	_, err = server.ReadExactly(ctx, 10)
	var short *sluice.IncompleteReadError
	if errors.As(err, &short) {
		fmt.Printf("stream ended after %q, wanted %d bytes\n", short.Partial, short.Expected)
	}
	fmt.Println(errors.Is(err, io.ErrUnexpectedEOF))
	// Output:
	// head "GET /\r\n\r\n"
	// stream ended after "body", wanted 10 bytes
	// true
}

// Dial connects (resolving names and racing addresses per RFC 8305); the Conn is
// a net.Conn, so it also works wherever one is expected.
func ExampleDial() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		c := sluice.NewConn(nc)
		defer c.Close()
		line, _ := c.ReadLine(context.Background())
		c.Write([]byte("echo: " + string(line)))
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sluice.Dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello\n"))
	reply, err := c.ReadLine(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", reply)
	// Output: echo: hello
}
