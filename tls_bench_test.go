package sluice

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"net"
	"testing"
)

// Lines over TLS beside bufio.Scanner over a tls.Conn: the peer writes
// 100-byte lines over TLS from a goroutine, in pre-generated blocks, and each
// benchmark op reads one line.

const (
	benchLineLen       = 100
	benchLinesPerBlock = 160 // 16000 bytes: about one TLS record
)

var benchBlock = func() []byte {
	line := append(bytes.Repeat([]byte{'x'}, benchLineLen-1), '\n')
	return bytes.Repeat(line, benchLinesPerBlock)
}()

// benchTLSPeer makes the server end of a loopback TCP connection a TLS server
// that, once the handshake is done, writes n lines and closes (close_notify).
// It returns the client end, for the reader to handshake over, and a channel
// that receives the writer's error when it ends.
func benchTLSPeer(b *testing.B, n int) (net.Conn, <-chan error) {
	client, server := tcpPair(b)
	done := make(chan error, 1)
	go func() {
		tp := tls.Server(server, serverTLS())
		err := tp.Handshake()
		for left := n; err == nil && left > 0; {
			k := min(left, benchLinesPerBlock)
			_, err = tp.Write(benchBlock[:k*benchLineLen])
			left -= k
		}
		if err == nil {
			err = tp.Close()
		}
		done <- err
	}()
	return client, done
}

func BenchmarkTLSLines(b *testing.B) {
	b.Run("sluice.Lines", func(b *testing.B) {
		ctx := testCtx(b)
		raw, done := benchTLSPeer(b, b.N)
		c := NewConn(raw)
		defer c.Abort()
		if err := c.StartTLS(ctx, clientTLS(), WithServerName("localhost")); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(benchLineLen)
		b.ReportAllocs()
		b.ResetTimer()
		// Exactly b.N steps of one Lines loop, as a program would range over it.
		i := 0
		for line, err := range c.Lines(ctx) {
			if err != nil || len(line) != benchLineLen-1 {
				b.Fatalf("line %d: %q, %v", i, line, err)
			}
			if i++; i == b.N {
				break
			}
		}
		b.StopTimer()
		if i != b.N {
			b.Fatalf("%d lines, want %d", i, b.N)
		}
		if err := recv(b, done); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("bufio.Scanner", func(b *testing.B) {
		raw, done := benchTLSPeer(b, b.N)
		tc := tls.Client(raw, &tls.Config{RootCAs: pki().roots, ServerName: "localhost"})
		defer tc.Close()
		if err := tc.Handshake(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(tc)
		b.SetBytes(benchLineLen)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if !sc.Scan() || len(sc.Bytes()) != benchLineLen-1 {
				b.Fatalf("line %d: %q, %v", i, sc.Bytes(), sc.Err())
			}
		}
		b.StopTimer()
		if err := recv(b, done); err != nil {
			b.Fatal(err)
		}
	})
}
