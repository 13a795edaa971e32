//go:build !race && go1.26

package sluice

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

// A Server handler that loops over Lines, writes each line back and drains
// once nothing more is buffered, shaped as the scale harness's handler, keeps
// its goroutine's 2 KiB stack, but for a few handlers that take a rarer,
// deeper path once (an allocation where a pool is empty): the library's frames
// beneath its reads, its Writes and its Drain fit in what 2 KiB leaves (see
// Server.serveConn). A goroutine whose stack grows has it copied elsewhere, so
// the handler tells by the address of one of its locals. Its own frames take
// about 0.45 KiB here: the harness's, with its line buffer on the stack, take
// 0.55 KiB, which the Drain path fits by only a few bytes; this margin catches
// library frames that grow by more than about 100 B, not less. Not under the
// race detector, whose instrumentation makes frames larger, nor under Go
// releases before 1.26, whose frames differ.
//
// With the clients at once, at GOMAXPROCS=2, the handlers run on both Ps and a
// read's buffer is often given back on another P than it was taken on, where
// sync.Pool's Get and Put go deeper; beneath the poller's RawRead that
// overflowed 2 KiB (30-38 handlers of 64 grew, against 13-18 since the reads
// use the pool's shelf: see shelf). Here more handlers take the deeper path
// once: 64 connections start at once, and the buffers of those that warmed
// the pools up were dropped with their Conns.
func TestHandlerStackStaysSmall(t *testing.T) {
	t.Run("one client at a time", func(t *testing.T) {
		testHandlerStack(t, handlerStackRun{warm: 16, rounds: 4, most: 32})
	})
	t.Run("clients at once", func(t *testing.T) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
		testHandlerStack(t, handlerStackRun{warm: 64, rounds: 300, atOnce: true, most: 24})
	})
}

// A handlerStackRun is how TestHandlerStackStaysSmall's clients exchange
// lines with the handlers: warm connections first, then 64, each for rounds
// batches of 16 lines, one connection after another or all at once; and how
// many of the 64 handlers' stacks may grow.
type handlerStackRun struct {
	warm, rounds int
	atOnce       bool
	most         int64
}

func testHandlerStack(t *testing.T, run handlerStackRun) {
	srvNoLeaks(t)
	const conns, batch = 64, 16
	type buffered interface{ Buffered() int }
	var ended, grown atomic.Int64
	every := batch
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		var here byte
		at := uintptr(unsafe.Pointer(&here))
		n := every
		b, hasBuffered := any(c).(buffered)
		out := make([]byte, 0, 8*n) // on the heap: the size is not a constant
		k := 0
		moved := false
		for line, err := range c.Lines(ctx) {
			if err != nil {
				return err
			}
			out = append(append(out[:0], line...), '\n')
			if _, err := c.Write(out); err != nil {
				return err
			}
			k++
			if (hasBuffered && b.Buffered() == 0) || k >= n {
				k = 0
				if err := c.Drain(ctx); err != nil {
					return err
				}
				moved = moved || uintptr(unsafe.Pointer(&here)) != at // before the stream's end, whose error path may grow it
			}
		}
		if moved {
			grown.Add(1)
		}
		ended.Add(1)
		return nil
	})
	msg := []byte(strings.Repeat(fmt.Sprintf("%063d\n", 7), batch))
	echo := func(n int) {
		ncs := make([]net.Conn, n)
		brs := make([]*bufio.Reader, n)
		for i := range ncs {
			ncs[i] = srvDial(t, s.Addrs()[0])
			brs[i] = bufio.NewReader(ncs[i])
		}
		if run.atOnce {
			var wg sync.WaitGroup
			for i := range ncs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer ncs[i].Close()
					for range run.rounds {
						if _, err := ncs[i].Write(msg); err != nil {
							t.Error(err)
							return
						}
						for range batch {
							if _, err := brs[i].ReadSlice('\n'); err != nil {
								t.Error(err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			return
		}
		for range run.rounds {
			for _, nc := range ncs {
				if _, err := nc.Write(msg); err != nil {
					t.Fatal(err)
				}
			}
			for _, br := range brs {
				for range batch {
					if _, err := br.ReadSlice('\n'); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		for _, nc := range ncs {
			nc.Close()
		}
	}
	echo(run.warm) // the pools warm up
	waitUntil(t, func() bool { return ended.Load() == int64(run.warm) })
	ended.Store(0)
	grown.Store(0)
	echo(conns)
	waitUntil(t, func() bool { return ended.Load() == conns })
	t.Logf("%d of %d handlers' stacks grew", grown.Load(), conns)
	if grown.Load() > run.most {
		t.Errorf("%d of %d handlers' stacks grew past 2 KiB", grown.Load(), conns)
	}
}
