//go:build !race && go1.26

package sluice

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
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
func TestHandlerStackStaysSmall(t *testing.T) {
	srvNoLeaks(t)
	const conns, rounds, batch = 64, 4, 16
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
	msg := strings.Repeat(fmt.Sprintf("%063d\n", 7), batch)
	echo := func(n int) {
		ncs := make([]net.Conn, n)
		brs := make([]*bufio.Reader, n)
		for i := range ncs {
			ncs[i] = srvDial(t, s.Addrs()[0])
			brs[i] = bufio.NewReader(ncs[i])
		}
		for range rounds {
			for _, nc := range ncs {
				if _, err := io.WriteString(nc, msg); err != nil {
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
	echo(16) // the pools warm up
	waitUntil(t, func() bool { return ended.Load() == 16 })
	ended.Store(0)
	grown.Store(0)
	echo(conns)
	waitUntil(t, func() bool { return ended.Load() == conns })
	t.Logf("%d of %d handlers' stacks grew", grown.Load(), conns)
	if grown.Load() > conns/2 {
		t.Errorf("%d of %d handlers' stacks grew past 2 KiB", grown.Load(), conns)
	}
}
