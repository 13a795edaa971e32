package sluice

import (
	"bytes"
	"context"
	"iter"

	"github.com/sourcegraph/conc"
)

// A Stream is the channel form of an iterator, for select and goroutine
// pipelines. One producer goroutine runs the iterator and sends an owned copy of
// each value on C; it is C's only sender and closes C when it ends: at EOF, on the
// first error, or when the context ends or Stop is called.
//
// Receive from C until it is closed, then call Err for the ending error; or call
// Stop to walk away early. A value the producer had read but not yet handed over
// when the Stream stopped is dropped with it; use the iterator itself where every
// byte must stay in the Conn.
type Stream struct {
	// C delivers the values, each a new slice the receiver owns. It is closed
	// when the producer ends.
	C <-chan []byte

	c      chan<- []byte
	cancel context.CancelFunc
	wg     conc.WaitGroup // the producer
	err    error          // written by the producer before it ends; read after wg.Wait
}

// newStream starts a producer that runs seq(ctx) and feeds a Stream.
func newStream(ctx context.Context, seq func(context.Context) iter.Seq2[[]byte, error]) *Stream {
	ctx, cancel := context.WithCancel(ctx)
	c := make(chan []byte)
	s := &Stream{C: c, c: c, cancel: cancel}
	// Owned by the Stream: Err and Stop wait for it. It ends at EOF, on the first
	// error, or when ctx ends (Stop cancels ctx), and every send selects on ctx.
	s.wg.Go(func() { s.produce(ctx, seq(ctx)) })
	return s
}

func (s *Stream) produce(ctx context.Context, seq iter.Seq2[[]byte, error]) {
	defer s.cancel()
	defer close(s.c)
	for v, err := range seq {
		if err != nil {
			s.err = err
			return
		}
		select {
		case s.c <- bytes.Clone(v):
		case <-ctx.Done():
			s.err = ctx.Err()
			return
		}
	}
}

// Err waits for the producer to end and returns why it ended: nil at EOF, else
// the error the iterator yielded (ctx.Err() when the context ended, including
// context.Canceled after Stop). Call it once C is closed, or after Stop; called
// while values wait unreceived on C it blocks until the context ends.
func (s *Stream) Err() error {
	s.wg.Wait()
	return s.err
}

// Stop ends the producer, waits for it, and returns Err. It interrupts a blocked
// read where the stream supports read deadlines (see NewReader). Safe to call more
// than once and concurrently with receives.
func (s *Stream) Stop() error {
	s.cancel()
	return s.Err()
}

// LineChan is the channel form of Lines: a Stream of owned line copies, without
// line endings. See Stream for its lifecycle.
func (r *Reader) LineChan(ctx context.Context) *Stream {
	return newStream(ctx, r.Lines)
}

// ChunkChan is the channel form of Chunks: a Stream of owned chunks of at most n
// bytes. See Stream for its lifecycle.
func (r *Reader) ChunkChan(ctx context.Context, n int) *Stream {
	return newStream(ctx, func(ctx context.Context) iter.Seq2[[]byte, error] { return r.Chunks(ctx, n) })
}
