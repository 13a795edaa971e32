package sluice_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"time"

	"github.com/sluice-go/sluice"
)

// Frames reads a stream of length-prefixed messages; WriteFrame writes them.
// Here one end of a socket pair sends three frames, and the other ranges over
// them. Each yielded frame is a view into the Conn's buffer, valid until the
// next step: copy it to keep it.
func ExampleConn_Frames() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b, err := sluice.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	defer b.Close()

	f := sluice.LengthPrefixed(sluice.LengthPrefix{}) // a 4-byte big-endian length, then the payload
	for _, msg := range []string{"hello", "", "frames"} {
		if err := a.WriteFrame(f, []byte(msg)); err != nil {
			log.Fatal(err)
		}
	}
	a.WriteEOF() // the loop below ends at EOF

	for frame, err := range b.Frames(ctx, f) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%q\n", frame)
	}
	// Output:
	// "hello"
	// ""
	// "frames"
}

// FrameChan hands frames to other goroutines as owned copies. A hostile
// length is an error reported from the header alone, before anything is
// allocated for the body.
func ExampleConn_FrameChan() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b, err := sluice.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	defer b.Close()

	f := sluice.Uvarint(1024) // protobuf-style delimited messages, at most 1 KiB
	a.WriteFrame(f, []byte("first"))
	a.Write([]byte{0x80, 0x80, 0x80, 0x01}) // announces 2 MiB...
	a.Write(bytes.Repeat([]byte{'x'}, 100)) // ...of which 100 bytes arrive
	a.WriteEOF()

	s := b.FrameChan(ctx, f)
	for frame := range s.C {
		fmt.Printf("got %q\n", frame)
	}
	fmt.Println("error:", s.Err())
	// Output:
	// got "first"
	// error: sluice: frame too large: 2097152 bytes announced, maximum 1024
}
