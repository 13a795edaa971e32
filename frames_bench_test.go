package sluice

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// The frame benchmarks run over loopback TCP, each beside the hand-written
// baseline doing the same work: 4-byte big-endian length-prefixed frames read
// with bufio + io.ReadFull into a reused buffer, or written with bufio.Writer.

var frameSizes = []int{128, 16 << 10}

func BenchmarkFrameRead(b *testing.B) {
	f := LengthPrefixed(LengthPrefix{})
	for _, size := range frameSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			b.Run("baseline", func(b *testing.B) { benchFrameRead(b, size, readFramesBaseline) })
			b.Run("Frames", func(b *testing.B) {
				benchFrameRead(b, size, func(b *testing.B, nc net.Conn, n int) {
					c := NewConn(nc)
					defer c.Abort()
					i := 0
					for _, err := range c.Frames(cancellable(b), f) {
						if err != nil {
							b.Fatal(err)
						}
						if i++; i == n {
							break
						}
					}
				})
			})
			b.Run("ReadFrame", func(b *testing.B) {
				benchFrameRead(b, size, func(b *testing.B, nc net.Conn, n int) {
					c := NewConn(nc)
					defer c.Abort()
					ctx := cancellable(b)
					for i := 0; i < n; i++ {
						if _, err := c.ReadFrame(ctx, f); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		})
	}
}

// readFramesBaseline is what one writes by hand: a bufio.Reader, the header,
// then the body into a reused buffer.
func readFramesBaseline(b *testing.B, nc net.Conn, n int) {
	br := bufio.NewReader(nc)
	var hdr [4]byte
	var buf []byte
	for i := 0; i < n; i++ {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			b.Fatal(err)
		}
		size := int(binary.BigEndian.Uint32(hdr[:]))
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		if _, err := io.ReadFull(br, buf[:size]); err != nil {
			b.Fatal(err)
		}
	}
}

// benchFrameRead has a peer send b.N frames of size bytes, from a block of
// frames generated once and written over and over, and times read reading them.
func benchFrameRead(b *testing.B, size int, read func(b *testing.B, nc net.Conn, n int)) {
	client, server := tcpPair(b)
	payload := make([]byte, size)
	perBlock := max(1, (256<<10)/(size+4))
	var block []byte
	for range perBlock {
		block = binary.BigEndian.AppendUint32(block, uint32(size))
		block = append(block, payload...)
	}
	// The peer writer: owned by this benchmark, which closes both ends and then
	// waits for it. It stops after b.N frames or at the first write error.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for sent := 0; sent < b.N; sent += perBlock {
			if _, err := server.Write(block); err != nil {
				return
			}
		}
	}()
	b.SetBytes(int64(size + 4))
	b.ReportAllocs()
	b.ResetTimer()
	read(b, client, b.N)
	b.StopTimer()
	client.Close()
	server.Close()
	wg.Wait()
}

func BenchmarkFrameWrite(b *testing.B) {
	f := LengthPrefixed(LengthPrefix{})
	for _, size := range frameSizes {
		payload := make([]byte, size)
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			b.Run("baseline", func(b *testing.B) {
				benchFrameWrite(b, size, func(b *testing.B, nc net.Conn, n int) {
					bw := bufio.NewWriter(nc)
					var hdr [4]byte
					for i := 0; i < n; i++ {
						binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
						bw.Write(hdr[:])
						bw.Write(payload)
					}
					if err := bw.Flush(); err != nil {
						b.Fatal(err)
					}
				})
			})
			b.Run("WriteFrame", func(b *testing.B) {
				benchFrameWrite(b, size, func(b *testing.B, nc net.Conn, n int) {
					c := NewConn(nc)
					defer c.Abort()
					for i := 0; i < n; i++ {
						if err := c.WriteFrame(f, payload); err != nil {
							b.Fatal(err)
						}
					}
					if err := c.Flush(cancellable(b)); err != nil {
						b.Fatal(err)
					}
				})
			})
		})
	}
}

// benchFrameWrite times write sending b.N frames to a peer that discards them.
func benchFrameWrite(b *testing.B, size int, write func(b *testing.B, nc net.Conn, n int)) {
	client, server := tcpPair(b)
	// The peer reader: owned by this benchmark, which closes both ends and then
	// waits for it. It ends at EOF or a read error.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(io.Discard, server)
	}()
	b.SetBytes(int64(size + 4))
	b.ReportAllocs()
	b.ResetTimer()
	write(b, client, b.N)
	b.StopTimer()
	client.Close()
	server.Close()
	wg.Wait()
}
