package sluice_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"strconv"
	"time"

	"github.com/sluice-go/sluice"
)

// Map runs a slow step on several values at once and still hands the results
// over in the order the values came. Receive until C is closed, then ask Err why.
func ExampleMap() {
	ctx := context.Background()
	words := make(chan string)
	go func() {
		defer close(words)
		for _, w := range []string{"asyncio", "streams", "for", "go"} {
			words <- w
		}
	}()

	lengths := sluice.Map(ctx, words, 3, func(ctx context.Context, w string) (string, error) {
		time.Sleep(time.Duration(10-len(w)) * time.Millisecond) // short words take longer
		return fmt.Sprintf("%s has %d letters", w, len(w)), nil
	})
	for s := range lengths.C {
		fmt.Println(s)
	}
	fmt.Println("err:", lengths.Err())
	// Output:
	// asyncio has 7 letters
	// streams has 7 letters
	// for has 3 letters
	// go has 2 letters
	// err: <nil>
}

// A pipeline from a connection: LineChan's Stream feeds Map, which parses each
// line. A consumer that stops receiving stops Map, which stops the Stream, which
// leaves the rest of the bytes in the socket.
func ExampleMap_pipeline() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, server, err := sluice.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	go func() {
		client.Write([]byte("1\n2\n3\n"))
		client.Close()
	}()

	lines := server.LineChan(ctx)
	defer lines.Stop()
	squares := sluice.Map(ctx, lines.C, 2, func(ctx context.Context, line []byte) (int, error) {
		n, err := strconv.Atoi(string(line))
		return n * n, err
	})
	for sq := range squares.C {
		fmt.Println(sq)
	}
	fmt.Println("err:", squares.Err(), lines.Err())
	// Output:
	// 1
	// 4
	// 9
	// err: <nil> <nil>
}

// The first error from fn ends the flow: C is closed, results not yet received
// are dropped (so how many come before it depends on timing), and Err returns
// the error.
func ExampleMap_error() {
	ctx := context.Background()
	in := make(chan string, 4)
	for _, s := range []string{"1", "2", "three", "4"} {
		in <- s
	}
	close(in)

	nums := sluice.Map(ctx, in, 2, func(ctx context.Context, s string) (int, error) {
		return strconv.Atoi(s)
	})
	for range nums.C {
	}
	var numErr *strconv.NumError
	if errors.As(nums.Err(), &numErr) {
		fmt.Printf("bad input %q\n", numErr.Num)
	}
	// Output:
	// bad input "three"
}

// Merge fans several channels into one. Each input's values keep their order;
// different inputs interleave as their values arrive, so this example sorts.
func ExampleMerge() {
	ctx := context.Background()
	send := func(vs ...string) <-chan string {
		c := make(chan string)
		go func() {
			defer close(c)
			for _, v := range vs {
				c <- v
			}
		}()
		return c
	}

	all := sluice.Merge(ctx, send("a1", "a2"), send("b1"), send("c1", "c2", "c3"))
	var got []string
	for v := range all.C {
		got = append(got, v)
	}
	slices.Sort(got)
	fmt.Println(got, all.Err())
	// Output:
	// [a1 a2 b1 c1 c2 c3] <nil>
}

// A pipeline from one connection to another: lines from the source, a
// transform on four workers that keeps their order, and WriteFrom into the
// sink. Every stage holds a bounded number of values, so a sink that reads
// slowly slows the source's socket instead of filling memory.
func ExampleConn_WriteFrom() {
	ctx := context.Background()
	srcPeer, src, err := sluice.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	sink, sinkPeer, err := sluice.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	defer sinkPeer.Close()
	go func() {
		srcPeer.Write([]byte("alpha\nbeta\ngamma\n"))
		srcPeer.Close()
	}()

	lines := src.LineChan(ctx)
	defer lines.Stop()
	upper := sluice.Map(ctx, lines.C, 4, func(ctx context.Context, line []byte) ([]byte, error) {
		return append(bytes.ToUpper(line), '\n'), nil
	})
	defer upper.Stop()
	wrote := make(chan string, 1)
	go func() {
		n, err := sink.WriteFrom(ctx, upper.C) // returns once upper.C is closed, all flushed
		wrote <- fmt.Sprint("wrote ", n, " bytes, ", err)
		sink.Close()
	}()

	for line, err := range sinkPeer.Lines(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", line)
	}
	fmt.Println(<-wrote)
	// Output:
	// ALPHA
	// BETA
	// GAMMA
	// wrote 17 bytes, <nil>
}
