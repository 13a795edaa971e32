// Command pipeline moves lines from a source connection through a parallel,
// ordered transform into a sink connection, and shows what backpressure does:
// when the sink stops reading for a while, the source is held back instead of
// memory filling up.
//
//	source ──lines──▶ LineChan ──▶ Map (4 workers, order kept) ──▶ WriteFrom ──▶ sink
package main

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"os"
	"sync/atomic"
	"time"

	"github.com/sluice-go/sluice"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, 200_000, time.Second); err != nil {
		log.Fatal(err)
	}
}

// run sends n lines through the pipeline; the sink stalls for stall once a
// tenth of them have arrived.
func run(ctx context.Context, out io.Writer, n int, stall time.Duration) error {
	src, srcPeer, err := sluice.Pipe() // where the lines come from
	if err != nil {
		return err
	}
	defer src.Close()
	defer srcPeer.Close()
	sink, sinkPeer, err := sluice.Pipe() // where the results go
	if err != nil {
		return err
	}
	defer sink.Close()
	defer sinkPeer.Close()

	var sent atomic.Int64
	go produce(ctx, srcPeer, n, &sent) // ends after n lines, or with ctx

	// The pipeline: each stage holds a bounded number of values.
	lines := src.LineChan(ctx)
	defer lines.Stop()
	results := sluice.Map(ctx, lines.C, 4, func(ctx context.Context, line []byte) ([]byte, error) {
		return fmt.Appendf(nil, "%08x %s\n", crc32.ChecksumIEEE(line), line), nil
	})
	defer results.Stop()
	go func() { // ends when results closes, or with ctx
		sink.WriteFrom(ctx, results.C)
		sink.WriteEOF()
	}()

	// The sink's reader checks the order, and stalls once.
	got := 0
	for line, err := range sinkPeer.Lines(ctx) {
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("line %07d", got); !bytes.HasSuffix(line, []byte(want)) {
			return fmt.Errorf("line %d out of order: %q", got, line)
		}
		if got++; got == n/10 {
			before := sent.Load()
			time.Sleep(stall) // the sink stops reading
			fmt.Fprintf(out, "the sink stalled for %v: the source sent %d more lines meanwhile, then waited\n",
				stall, sent.Load()-before)
		}
	}
	fmt.Fprintf(out, "%d lines through Map in order\n", got)
	return nil
}

// produce writes n numbered lines, pacing itself with Drain, then half-closes.
func produce(ctx context.Context, c *sluice.Conn, n int, sent *atomic.Int64) {
	for i := range n {
		fmt.Fprintf(c, "line %07d\n", i)
		if c.Drain(ctx) != nil {
			return
		}
		sent.Add(1)
	}
	c.Flush(ctx)
	c.WriteEOF()
}
