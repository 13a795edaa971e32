package sluice

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// Each benchmark runs sluice beside the plain-Go code a user would otherwise
// write, doing the same work over loopback TCP in the same run. Compare them as
// ratios (benchstat, or the medians of -count 5).

const benchLineSize = 100

// benchLines returns k lines of benchLineSize bytes, "\n" included.
func benchLines(k int) []byte { return benchLinesOf(k, benchLineSize) }

// benchLinesOf returns k lines of size bytes, "\n" included.
func benchLinesOf(k, size int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	out := make([]byte, 0, k*size)
	for i := 0; i < k; i++ {
		for j := 0; j < size-1; j++ {
			out = append(out, alphabet[(i+j)%len(alphabet)])
		}
		out = append(out, '\n')
	}
	return out
}

// scannerBufSize is the strong baseline's buffer: bufio.Scanner with 64 KiB
// from the start, as a server tuned for throughput has.
const scannerBufSize = 64 << 10

// cancellable returns a ctx that can be cancelled, as a real server's is: a
// context.Background would let a read skip the work a cancellable one costs.
func cancellable(b *testing.B) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	return ctx
}

// sendRepeated writes block to w again and again until total bytes are sent
// (the last block cut short), then closes w. It runs on its own goroutine and
// ends by itself; the returned channel is closed when it has.
func sendRepeated(w net.Conn, block []byte, total int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Close()
		for total > 0 {
			n := min(total, len(block))
			if _, err := w.Write(block[:n]); err != nil {
				return
			}
			total -= n
		}
	}()
	return done
}

// readSide returns the receiving end of a loopback TCP connection whose other
// end sends total bytes of block, repeated.
func readSide(b *testing.B, block []byte, total int) net.Conn {
	client, server := tcpPair(b)
	done := sendRepeated(server, block, total)
	b.Cleanup(func() {
		client.Close()
		<-done
	})
	return client
}

// timedOpts returns the options of the benchmarks' "sluice+timeouts" runs:
// the idle and message timeouts a production server sets, far enough off that
// they never fire, so the runs measure what keeping their clock costs.
// Statistics are always on.
func timedOpts() []Option {
	return []Option{WithIdleTimeout(time.Minute), WithMessageTimeout(time.Minute)}
}

// BenchmarkReadUntil reads records ending in "\r\n" or "\n" (half of each).
func BenchmarkReadUntil(b *testing.B) {
	block := benchLines(1000)
	for i := 0; i < len(block); i += 2 * benchLineSize {
		block[i+benchLineSize-2] = '\r'
	}
	seps := [][]byte{[]byte("\r\n"), []byte("\n")}
	benchRecordReads(b, block, func(c *Conn, ctx context.Context) ([]byte, error) {
		return c.ReadUntil(ctx, seps...)
	})
}

// BenchmarkReadLine reads lines one call at a time, as asyncio's readline
// does, each the caller's own copy.
func BenchmarkReadLine(b *testing.B) {
	benchRecordReads(b, benchLines(1000), (*Conn).ReadLine)
}

// benchRecordReads reads block's records of benchLineSize bytes, each ending
// in "\n", one call of read at a time, against the hand-written equivalent:
// bufio.Reader's ReadBytes('\n'), which finds "\r\n" too. Both copy each record.
func benchRecordReads(b *testing.B, block []byte, read func(*Conn, context.Context) ([]byte, error)) {
	b.Run("sluice", func(b *testing.B) {
		c := NewConn(readSide(b, block, b.N*benchLineSize))
		defer c.Abort()
		ctx := cancellable(b)
		b.SetBytes(benchLineSize)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if rec, err := read(c, ctx); err != nil || len(rec) != benchLineSize {
				b.Fatalf("record %d: %q, %v", i, rec, err)
			}
		}
	})
	b.Run("bufio.Reader", func(b *testing.B) {
		br := bufio.NewReader(readSide(b, block, b.N*benchLineSize))
		b.SetBytes(benchLineSize)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if rec, err := br.ReadBytes('\n'); err != nil || len(rec) != benchLineSize {
				b.Fatalf("record %d: %q, %v", i, rec, err)
			}
		}
	})
}

const benchFrameSize = 128

func benchFrames(k int) []byte {
	frame := make([]byte, 4+benchFrameSize)
	binary.BigEndian.PutUint32(frame, benchFrameSize)
	for i := 4; i < len(frame); i++ {
		frame[i] = 'f'
	}
	out := make([]byte, 0, k*len(frame))
	for i := 0; i < k; i++ {
		out = append(out, frame...)
	}
	return out
}

// BenchmarkReadExactly reads 4-byte big-endian length-prefixed 128-byte frames
// the way asyncio users do, with readexactly.
func BenchmarkReadExactly(b *testing.B) {
	block := benchFrames(1000)
	const frameLen = 4 + benchFrameSize
	b.Run("sluice", func(b *testing.B) {
		c := NewConn(readSide(b, block, b.N*frameLen))
		defer c.Abort()
		ctx := cancellable(b)
		b.SetBytes(frameLen)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			hdr, err := c.ReadExactly(ctx, 4)
			if err != nil {
				b.Fatal(err)
			}
			body, err := c.ReadExactly(ctx, int(binary.BigEndian.Uint32(hdr)))
			if err != nil || len(body) != benchFrameSize {
				b.Fatalf("frame %d: %d bytes, %v", i, len(body), err)
			}
		}
	})
	for _, fresh := range []bool{true, false} {
		name := "io.ReadFull-reused"
		if fresh {
			name = "io.ReadFull-fresh" // the same work: a body the caller owns
		}
		b.Run(name, func(b *testing.B) {
			br := bufio.NewReaderSize(readSide(b, block, b.N*frameLen), scannerBufSize)
			b.SetBytes(frameLen)
			b.ReportAllocs()
			b.ResetTimer()
			var hdr [4]byte
			body := make([]byte, 64<<10)
			for i := 0; i < b.N; i++ {
				if _, err := io.ReadFull(br, hdr[:]); err != nil {
					b.Fatal(err)
				}
				n := binary.BigEndian.Uint32(hdr[:])
				p := body[:n]
				if fresh {
					p = make([]byte, n)
				}
				if _, err := io.ReadFull(br, p); err != nil || n != benchFrameSize {
					b.Fatalf("frame %d: %d bytes, %v", i, n, err)
				}
			}
		})
	}
}

// writeSide returns the sending end of a loopback TCP connection whose peer
// discards everything; the returned func waits until the peer has seen EOF and
// reports how many bytes it received.
func writeSide(b *testing.B) (net.Conn, func() int64) {
	client, server := tcpPair(b)
	got := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, server)
		got <- n
	}()
	return client, func() int64 { return <-got }
}

// BenchmarkSmallWrites writes 64-byte messages: sluice with Drain every 64
// writes (asyncio's idiom), beside a Write syscall per message and beside a
// bufio.Writer flushed every 64 messages.
func BenchmarkSmallWrites(b *testing.B) {
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = 'w'
	}
	check := func(b *testing.B, wait func() int64) {
		if n := wait(); n != int64(b.N)*64 {
			b.Fatalf("peer got %d bytes, want %d", n, b.N*64)
		}
	}
	b.Run("sluice-drain", func(b *testing.B) {
		nc, wait := writeSide(b)
		c := NewConn(nc)
		ctx := cancellable(b)
		b.SetBytes(64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if i%64 == 63 {
				if err := c.Drain(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		check(b, wait)
	})
	b.Run("net.Conn.Write", func(b *testing.B) {
		nc, wait := writeSide(b)
		b.SetBytes(64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := nc.Write(msg); err != nil {
				b.Fatal(err)
			}
		}
		nc.Close()
		b.StopTimer()
		check(b, wait)
	})
	b.Run("bufio.Writer", func(b *testing.B) {
		nc, wait := writeSide(b)
		bw := bufio.NewWriter(nc)
		b.SetBytes(64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := bw.Write(msg); err != nil {
				b.Fatal(err)
			}
			if i%64 == 63 {
				if err := bw.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := bw.Flush(); err != nil {
			b.Fatal(err)
		}
		nc.Close()
		b.StopTimer()
		check(b, wait)
	})
}

// echoPeer echoes lines back with plain bufio until EOF.
func echoPeer(nc net.Conn) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer nc.Close()
		br, bw := bufio.NewReader(nc), bufio.NewWriter(nc)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			bw.Write(line)
			if br.Buffered() == 0 {
				if bw.Flush() != nil {
					return
				}
			}
		}
	}()
	return done
}

// BenchmarkEcho measures 64-byte line round trips against the same plain-Go
// echo server: a sluice client, without and with timeouts, beside a bufio
// client.
func BenchmarkEcho(b *testing.B) {
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = 'e'
	}
	msg[63] = '\n'
	setup := func(b *testing.B) net.Conn {
		client, server := tcpPair(b)
		done := echoPeer(server)
		b.Cleanup(func() { client.Close(); <-done })
		return client
	}
	for _, v := range []struct {
		name string
		opts []Option
	}{{"sluice", nil}, {"sluice+timeouts", timedOpts()}} {
		b.Run(v.name, func(b *testing.B) {
			c := NewConn(setup(b), v.opts...)
			defer c.Abort()
			ctx := cancellable(b)
			b.SetBytes(64)
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			for line, err := range c.Lines(ctx) {
				if err != nil || len(line) != 63 {
					b.Fatalf("reply %d: %q, %v", i, line, err)
				}
				if i++; i == b.N {
					break
				}
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The request/response shape of sluicebench's echo-pingpong: Write and
	// Drain, then ReadLine (whose copy is the one allocation).
	b.Run("sluice-ReadLine", func(b *testing.B) {
		c := NewConn(setup(b))
		defer c.Abort()
		ctx := cancellable(b)
		b.SetBytes(64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if err := c.Drain(ctx); err != nil {
				b.Fatal(err)
			}
			if line, err := c.ReadLine(ctx); err != nil || len(line) != 64 {
				b.Fatalf("reply %d: %q, %v", i, line, err)
			}
		}
	})
	b.Run("bufio", func(b *testing.B) {
		nc := setup(b)
		br, bw := bufio.NewReader(nc), bufio.NewWriter(nc)
		b.SetBytes(64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			bw.Write(msg)
			if err := bw.Flush(); err != nil {
				b.Fatal(err)
			}
			if line, err := br.ReadSlice('\n'); err != nil || len(line) != 64 {
				b.Fatalf("reply %d: %q, %v", i, line, err)
			}
		}
	})
}

// idleConns is how many connections BenchmarkIdleConn holds open at once.
const idleConns = 2000

// BenchmarkIdleConn measures what an idle connection costs a server in memory
// (heap and goroutine stacks), as asyncio_streams_bench.py's idle-mem does: each
// client sends one line, and the server's handler reads it and blocks reading
// the next. The clients are bare sockets, so only the server side is counted.
// Beside sluice: a plain goroutine-per-connection server reading into a 512-byte
// buffer, and one reading lines with bufio.Reader. The figure is the bytes/conn
// metric (ns/op is the time a round takes). Run each alone for steady figures:
// go test -run X -bench 'IdleConn/sluice$' -benchtime 3x (and /plain$, /bufio$).
func BenchmarkIdleConn(b *testing.B) {
	b.Run("sluice", func(b *testing.B) {
		benchIdle(b, func(ln net.Listener) func() {
			srv, err := NewServer(ln, func(ctx context.Context, c *Conn) error {
				for _, err := range c.Lines(ctx) {
					if err != nil {
						return err
					}
					seen.Add(1)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			return func() { srv.Shutdown(context.Background()) }
		})
	})
	b.Run("plain", func(b *testing.B) {
		benchIdle(b, serveRaw(func(nc net.Conn) {
			buf := make([]byte, 512)
			for {
				if _, err := nc.Read(buf); err != nil {
					return
				}
				seen.Add(1)
			}
		}))
	})
	b.Run("bufio", func(b *testing.B) {
		benchIdle(b, serveRaw(func(nc net.Conn) {
			br := bufio.NewReader(nc)
			for {
				if _, err := br.ReadSlice('\n'); err != nil {
					return
				}
				seen.Add(1)
			}
		}))
	})
}

// seen counts the lines the idle servers' handlers have read.
var seen atomic.Int64

func benchIdle(b *testing.B, serve func(net.Listener) (stop func())) {
	seen.Store(0)
	var perConn float64
	for i := 0; i < b.N; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		stop := serve(ln)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		socks := make([]rawSocket, 0, idleConns)
		for j := 0; j < idleConns; j++ {
			s, err := dialRaw(port, []byte("hello\n"))
			if err != nil {
				b.Fatal(err)
			}
			socks = append(socks, s)
		}
		// Wait until every handler has read its line and gone back to reading:
		// then a GC finds the steady state.
		for seen.Load() < int64(idleConns*(i+1)) {
			runtime.Gosched()
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		used := (after.HeapInuse + after.StackInuse) - (before.HeapInuse + before.StackInuse)
		perConn += float64(used) / idleConns
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/idleConns, "heap/conn")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/idleConns, "stack/conn")
		for _, s := range socks {
			closeRaw(s)
		}
		stop()
	}
	b.ReportMetric(perConn/float64(b.N), "bytes/conn")
}
