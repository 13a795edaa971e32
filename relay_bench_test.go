package sluice

import (
	"fmt"
	"io"
	"net"
	"testing"
)

// BenchmarkRelay moves 1 GiB through a relay between two loopback TCP
// connections per op, one way and both ways at once: Relay beside what a user
// writes without it, two io.Copy calls with CloseWrite (on Linux both splice in
// the kernel). The peers' work is the same for both.
func BenchmarkRelay(b *testing.B) {
	const total = 1 << 30
	ctx := cancellable(b)
	relays := []struct {
		name string
		run  func(a, c net.Conn) error
	}{
		{"sluice", func(a, c net.Conn) error {
			ca, cc := NewConn(a), NewConn(c)
			_, _, err := Relay(ctx, ca, cc)
			ca.Close()
			cc.Close()
			return err
		}},
		{"io.Copy", func(a, c net.Conn) error {
			done := make(chan error, 1)
			go func() {
				_, err := io.Copy(c, a)
				c.(*net.TCPConn).CloseWrite()
				done <- err
			}()
			_, err := io.Copy(a, c)
			a.(*net.TCPConn).CloseWrite()
			err2 := <-done
			a.Close()
			c.Close()
			if err != nil {
				return err
			}
			return err2
		}},
	}
	block := make([]byte, 1<<20)
	for _, ways := range []int{1, 2} {
		for _, r := range relays {
			b.Run(fmt.Sprintf("ways=%d/%s", ways, r.name), func(b *testing.B) {
				b.SetBytes(int64(ways * total))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					aPeer, a := tcpPair(b)
					c, cPeer := tcpPair(b)
					b.StartTimer()
					back := 0
					if ways == 2 {
						back = total
					}
					sentA, sentC := sendBlocks(aPeer, block, total), sendBlocks(cPeer, block, back)
					gotC, gotA := countAsync(cPeer), countAsync(aPeer)
					if err := r.run(a, c); err != nil {
						b.Fatal(err)
					}
					if n := <-gotC; n != total {
						b.Fatalf("received %d bytes, want %d", n, total)
					}
					if n := <-gotA; n != int64(back) {
						b.Fatalf("received %d bytes back, want %d", n, back)
					}
					<-sentA
					<-sentC
				}
			})
		}
	}
}

// sendBlocks writes total bytes of block, repeated, to w and half-closes it,
// in a goroutine; the channel is closed when it is done.
func sendBlocks(w net.Conn, block []byte, total int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for total > 0 {
			n, err := w.Write(block[:min(total, len(block))])
			if err != nil {
				return
			}
			total -= n
		}
		w.(*net.TCPConn).CloseWrite()
	}()
	return done
}

// countAsync reads r until EOF or an error, in a goroutine, and sends the
// number of bytes read.
func countAsync(r net.Conn) <-chan int64 {
	ch := make(chan int64, 1)
	go func() {
		buf := make([]byte, 1<<20)
		var n int64
		for {
			k, err := r.Read(buf)
			n += int64(k)
			if err != nil {
				ch <- n
				return
			}
		}
	}()
	return ch
}
