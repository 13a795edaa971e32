package sluice

import (
	"bytes"
	"context"
	"sync"
	"testing"
)

// benchWorkers is the pool size both sides of BenchmarkMap use.
const benchWorkers = 4

// square is the cheap step both sides run, so the benchmark measures the
// machinery around it.
func square(_ context.Context, v int) (int, error) { return v*v + v>>3, nil }

// BenchmarkMap measures Map against the ordered worker pool a user would write
// by hand, with the same step and workers; ns/op is per value.
func BenchmarkMap(b *testing.B) {
	b.Run("Map", func(b *testing.B) {
		benchOrdered(b, func(ctx context.Context, in <-chan int) (<-chan int, func() error) {
			f := Map(ctx, in, benchWorkers, square)
			return f.C, f.Err
		})
	})
	b.Run("hand-written", func(b *testing.B) {
		benchOrdered(b, func(ctx context.Context, in <-chan int) (<-chan int, func() error) {
			return handOrderedPool(ctx, in, benchWorkers, square)
		})
	})
}

// benchOrdered feeds b.N values through the stage and checks they come out in
// order.
func benchOrdered(b *testing.B, stage func(context.Context, <-chan int) (<-chan int, func() error)) {
	b.ReportAllocs()
	ctx := testCtx(b)
	in := make(chan int)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(in)
		for i := 0; i < b.N; i++ {
			in <- i
		}
	}()
	b.ResetTimer()
	out, wait := stage(ctx, in)
	n := 0
	for v := range out {
		if want, _ := square(ctx, n); v != want {
			b.Fatalf("value %d is %d, want %d", n, v, want)
		}
		n++
	}
	if err := wait(); err != nil || n != b.N {
		b.Fatalf("got %d values, want %d: %v", n, b.N, err)
	}
	b.StopTimer()
	<-done
}

// handOrderedPool is the baseline: a dispatcher sends each value with its own
// result channel to the workers and queues that channel, a bounded queue, for a
// collector that reads the results in order. It is the lean version a user
// writes when nothing fails: on an error the collector stops and the dispatcher
// is left blocked, which the benchmark never provokes.
func handOrderedPool(ctx context.Context, in <-chan int, workers int, fn func(context.Context, int) (int, error)) (<-chan int, func() error) {
	type result struct {
		v   int
		err error
	}
	type job struct {
		v   int
		res chan result
	}
	jobs := make(chan job, workers)
	queue := make(chan chan result, workers)
	out := make(chan int)
	var wg sync.WaitGroup
	var err error
	wg.Add(2 + workers)
	go func() { // dispatcher
		defer wg.Done()
		defer close(queue)
		defer close(jobs)
		for v := range in {
			res := make(chan result, 1)
			jobs <- job{v, res}
			queue <- res
		}
	}()
	for i := 0; i < workers; i++ {
		go func() { // worker
			defer wg.Done()
			for j := range jobs {
				v, err := fn(ctx, j.v)
				j.res <- result{v, err}
			}
		}()
	}
	go func() { // collector
		defer wg.Done()
		defer close(out)
		for res := range queue {
			r := <-res
			if r.err != nil {
				err = r.err
				return
			}
			select {
			case out <- r.v:
			case <-ctx.Done():
				err = ctx.Err()
				return
			}
		}
	}()
	return out, func() error { wg.Wait(); return err }
}

// BenchmarkWriteFrom measures WriteFrom against the loop a user writes by hand
// (Write and Drain for each value received), both sending 64-byte values from
// a channel over loopback TCP to a peer that reads everything; ns/op is per
// value.
func BenchmarkWriteFrom(b *testing.B) {
	run := func(b *testing.B, write func(ctx context.Context, c *Conn, in <-chan []byte) error) {
		nc, wait := writeSide(b)
		c := NewConn(nc)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		msg := bytes.Repeat([]byte("v"), 64)
		in := make(chan []byte, 64)
		b.SetBytes(64)
		b.ReportAllocs()
		b.ResetTimer()
		go func() { // ends after b.N values
			defer close(in)
			for i := 0; i < b.N; i++ {
				in <- msg
			}
		}()
		if err := write(ctx, c, in); err != nil {
			b.Fatal(err)
		}
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
		if n := wait(); n != int64(b.N)*64 {
			b.Fatalf("peer got %d bytes, want %d", n, b.N*64)
		}
	}
	b.Run("WriteFrom", func(b *testing.B) {
		run(b, func(ctx context.Context, c *Conn, in <-chan []byte) error {
			_, err := c.WriteFrom(ctx, in)
			return err
		})
	})
	b.Run("Write+Drain", func(b *testing.B) {
		run(b, func(ctx context.Context, c *Conn, in <-chan []byte) error {
			for v := range in {
				if _, err := c.Write(v); err != nil {
					return err
				}
				if err := c.Drain(ctx); err != nil {
					return err
				}
			}
			return c.Flush(ctx)
		})
	})
}
