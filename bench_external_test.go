package sluice_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/sluice-go/sluice"
)

// BenchmarkLines reads lines of 20, 100 and 1000 bytes, 1000 lines per write
// from a peer goroutine over loopback TCP: sluice's Lines with a cancellable
// ctx, without and with timeouts, beside bufio.Scanner with a 64 KiB buffer.
// It is in the external test package so that Lines is compiled as in a
// user's package: there the iterator's closure is inlined, and the compiler
// does not inline the closure's own calls (see Reader.lines); a benchmark in
// package sluice would not see that.
func BenchmarkLines(b *testing.B) {
	for _, size := range []int{20, 100, 1000} {
		block := bytes.Repeat(append(bytes.Repeat([]byte{'u'}, size-1), '\n'), 1000)
		for _, v := range []struct {
			name string
			opts []sluice.Option
		}{
			{"sluice", nil},
			{"sluice+timeouts", sluice.TimedOpts()},
		} {
			b.Run(fmt.Sprintf("size=%d/%s", size, v.name), func(b *testing.B) {
				c := sluice.NewConn(sluice.ReadSide(b, block, b.N*size), v.opts...)
				defer c.Abort()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				n := 0
				for line, err := range c.Lines(ctx) {
					if err != nil || len(line) != size-1 {
						b.Fatalf("line %d: %q, %v", n, line, err)
					}
					n++
				}
				if n != b.N {
					b.Fatalf("read %d lines, want %d", n, b.N)
				}
			})
		}
		b.Run(fmt.Sprintf("size=%d/bufio.Scanner", size), func(b *testing.B) {
			sc := bufio.NewScanner(sluice.ReadSide(b, block, b.N*size))
			sc.Buffer(make([]byte, 64<<10), 64<<10)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for sc.Scan() {
				if len(sc.Bytes()) != size-1 {
					b.Fatalf("line %d: %q", n, sc.Bytes())
				}
				n++
			}
			if sc.Err() != nil || n != b.N {
				b.Fatalf("read %d lines, want %d: %v", n, b.N, sc.Err())
			}
		})
	}
}
