package sluice

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
)

// Hub tests publish fixed-size records, each naming its publisher and its
// sequence number, so a reader can check that it got every one, in order.
const (
	recSize = 1 << 10 // bytes per record, unless a test says otherwise
	endSeq  = 99_999_999
)

// A rec is a published record's identity.
type rec struct{ from, seq int }

// hubMsg returns record seq from publisher from: size bytes ending in '\n'.
func hubMsg(from, seq, size int) []byte {
	b := fmt.Appendf(make([]byte, 0, size), "%03d %08d ", from, seq)
	for len(b) < size-1 {
		b = append(b, '.')
	}
	return append(b, '\n')
}

// readRecs reads size-byte records from peer in a goroutine until one with
// sequence number endSeq (not included), or until an error, and sends what it
// read. The read is bounded by testTimeout.
func readRecs(peer net.Conn, size int) <-chan recsRead {
	ch := make(chan recsRead, 1)
	go func() {
		peer.SetReadDeadline(time.Now().Add(testTimeout))
		br := bufio.NewReaderSize(peer, 64<<10)
		b := make([]byte, size)
		var r recsRead
		for {
			if _, r.err = io.ReadFull(br, b); r.err != nil {
				break
			}
			var m rec
			if _, r.err = fmt.Sscanf(string(b[:13]), "%03d %08d", &m.from, &m.seq); r.err != nil || m.seq == endSeq {
				break
			}
			r.recs = append(r.recs, m)
		}
		ch <- r
	}()
	return ch
}

type recsRead struct {
	recs []rec
	err  error
}

// seqsOf returns publisher from's sequence numbers in rs, in the order read.
func seqsOf(rs []rec, from int) []int {
	var seqs []int
	for _, r := range rs {
		if r.from == from {
			seqs = append(seqs, r.seq)
		}
	}
	return seqs
}

// upTo returns 0, 1, ..., n-1.
func upTo(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// memberPair returns a Conn to join a Hub and its peer, over loopback TCP
// ("tcp") or a socket pair ("pipe"), both aborted at cleanup.
func memberPair(t *testing.T, network string) (*Conn, net.Conn) {
	t.Helper()
	if network == "tcp" {
		return connPair(t)
	}
	c, peer, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Abort(); peer.Abort() })
	return c, peer
}

// accepted returns the bytes c has taken for sending: sent or still queued,
// read at once (Stats then WriteBufferSize could miss bytes the writer sent
// between the two).
func accepted(c *Conn) int64 {
	q := c.wq.Load()
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.written.Load() + int64(q.size)
}

// paceBursts ends a burst of burst messages, after message n, by waiting until
// fast has sent everything queued: a burst of more than MaxQueued bytes may be
// too much even for a member that reads as fast as it can.
func paceBursts(t *testing.T, n, burst int, fast *Conn) {
	t.Helper()
	if n%burst == burst-1 {
		waitUntil(t, func() bool { return fast.WriteBufferSize() == 0 })
	}
}

// A member that reads as fast as it can gets every message of a burst of up to
// MaxQueued bytes published in a tight loop, in order, although the burst is
// far past its high watermark (64 KiB by default); even under Disconnect.
func TestHubBurstReachesFastReader(t *testing.T) {
	const n = 900 // 900 KiB of a 1 MiB MaxQueued
	for _, network := range []string{"tcp", "pipe"} {
		for _, late := range []bool{false, true} {
			name := map[bool]string{false: "reading concurrently", true: "reading after the burst"}[late]
			t.Run(network+"/"+name, func(t *testing.T) {
				is := is.New(t)
				h := NewHub(HubConfig{MaxQueued: 1 << 20, Slow: Disconnect})
				c, peer := memberPair(t, network)
				h.Join(c)
				var got <-chan recsRead
				if !late {
					got = readRecs(peer, recSize)
				}
				for i := range n {
					is.Equal(h.Publish(hubMsg(0, i, recSize)), 1)
				}
				is.Equal(h.Publish(hubMsg(0, endSeq, recSize)), 1)
				if late {
					if network == "pipe" { // more than a socket pair's buffers hold
						is.True(c.Stats().QueuedPeak > 64<<10)
					}
					got = readRecs(peer, recSize)
				}
				r := recv(t, got)
				is.NoErr(r.err)
				is.Equal(seqsOf(r.recs, 0), upTo(n))
				is.Equal(h.Stats(), HubStats{Published: n + 1, Delivered: n + 1})
				is.Equal(h.Members(), 1)
				t.Logf("queue peak %d KiB", c.Stats().QueuedPeak>>10)
			})
		}
	}
}

// A member that never reads costs at most MaxQueued plus one message, misses
// messages (counted in Dropped) while the others get every one, and gets
// messages again once it catches up.
func TestHubStalledMemberMissesMessages(t *testing.T) {
	is := is.New(t)
	const limit = 256 << 10 // past the 64 KiB high watermark
	h := NewHub(HubConfig{MaxQueued: limit})
	stalled, stalledPeer := memberPair(t, "pipe")
	fast, fastPeer := memberPair(t, "tcp")
	h.Join(stalled)
	h.Join(fast)
	fastGot := readRecs(fastPeer, recSize)

	// Publish until stalled has missed 100 messages (by then the kernel's
	// buffers and its MaxQueued are full), in bursts that fast reads whole.
	n, delivered, peak := 0, 0, 0
	for ; 2*n-delivered < 100; n++ {
		is.True(n < 1<<16)
		delivered += h.Publish(hubMsg(0, n, recSize))
		peak = max(peak, stalled.WriteBufferSize())
		paceBursts(t, n, limit/2/recSize, fast)
	}
	is.True(peak > 64<<10)                 // past the high watermark
	is.True(peak < limit+recSize+1)        // at most MaxQueued plus one message
	fast.Write(hubMsg(0, endSeq, recSize)) // for fast only
	r := recv(t, fastGot)                  // the others are not held up
	is.NoErr(r.err)
	is.Equal(seqsOf(r.recs, 0), upTo(n))
	is.Equal(h.Members(), 2) // DropMessages keeps it
	is.Equal(h.Stats(), HubStats{Published: int64(n), Delivered: int64(delivered), Dropped: int64(2*n - delivered)})

	// Once stalled reads again, it gets what was queued for it, then new
	// messages again. It got an increasing run of what was published.
	stalledGot := readRecs(stalledPeer, recSize)
	waitUntil(t, func() bool { return stalled.WriteBufferSize() == 0 })
	is.Equal(h.Publish(hubMsg(0, endSeq, recSize)), 2)
	r = recv(t, stalledGot)
	is.NoErr(r.err)
	seqs := seqsOf(r.recs, 0)
	is.True(slices.IsSorted(seqs))
	is.Equal(len(seqs), delivered-n) // fast got n of the copies counted
	is.True(len(seqs) < n)
}

// Under Disconnect, a member at MaxQueued is aborted and removed: its peer's
// reads fail with a reset, and the others go on receiving.
func TestHubDisconnectsStalledMember(t *testing.T) {
	is := is.New(t)
	const limit = 64 << 10
	h := NewHub(HubConfig{MaxQueued: limit, Slow: Disconnect})
	stalled, stalledPeer := connPair(t) // TCP: an abort resets
	fast, fastPeer := memberPair(t, "pipe")
	h.Join(stalled)
	h.Join(fast)
	fastGot := readRecs(fastPeer, recSize)

	n, delivered := 0, 0
	for ; !stalled.IsClosing(); n++ {
		is.True(n < 1<<16)
		is.True(stalled.WriteBufferSize() < limit+recSize+1)
		delivered += h.Publish(hubMsg(0, n, recSize))
		paceBursts(t, n, limit/2/recSize, fast)
	}
	is.Equal(h.Members(), 1)
	is.Equal(h.Publish(hubMsg(0, endSeq, recSize)), 1)
	r := recv(t, fastGot)
	is.NoErr(r.err)
	is.Equal(seqsOf(r.recs, 0), upTo(n))
	is.Equal(h.Stats(), HubStats{Published: int64(n + 1), Delivered: int64(delivered + 1), Disconnected: 1})

	stalledPeer.SetReadDeadline(time.Now().Add(testTimeout))
	_, err := io.Copy(io.Discard, stalledPeer)
	is.True(errors.Is(err, syscall.ECONNRESET))
}

// Publish calls that find a member at MaxQueued at the same time disconnect
// it once.
func TestHubDisconnectsOnce(t *testing.T) {
	is := is.New(t)
	h := NewHub(HubConfig{MaxQueued: 64 << 10, Slow: Disconnect})
	stalled, _ := memberPair(t, "pipe")
	h.Join(stalled)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { // waited for below; ends after its Publish calls
			defer wg.Done()
			msg := hubMsg(0, 0, recSize)
			for range 1 << 12 {
				h.Publish(msg)
			}
		}()
	}
	wg.Wait()
	is.True(stalled.IsClosing())
	is.Equal(h.Members(), 0)
	st := h.Stats()
	is.Equal(st.Disconnected, int64(1))
	is.Equal(st.Dropped, int64(0))
	is.Equal(st.Published, int64(8<<12))
}

// leave removes one membership, once, whenever it is called, and leaves the
// Conn open; the members left behind still get every message.
func TestHubLeave(t *testing.T) {
	is := is.New(t)
	h := NewHub(HubConfig{})
	var conns []*Conn
	var leaves []func()
	for range 5 {
		c, _ := memberPair(t, "pipe")
		conns = append(conns, c)
		leaves = append(leaves, h.Join(c))
	}
	leaves[1]()
	leaves[1]() // idempotent
	leaves[3]()
	is.Equal(h.Members(), 3)
	msg := []byte("hello\n")
	is.Equal(h.Publish(msg), 3)
	for i, c := range conns {
		want := int64(len(msg))
		if i == 1 || i == 3 {
			want = 0
		}
		is.Equal(accepted(c), want) // member i got the message, or not
		is.True(!c.IsClosing())
	}

	again := h.Join(conns[1])
	leaves[1]() // a stale leave does not end the new membership
	is.Equal(h.Members(), 4)
	is.Equal(h.Publish(msg), 4)
	is.Equal(accepted(conns[1]), int64(len(msg)))
	again()
	is.Equal(h.Publish(msg), 3)
	is.Equal(h.Stats(), HubStats{Published: 3, Delivered: 10})
}

// Close makes every member leave and leaves their Conns open, with what was
// queued still sent; Join after Close adds to an empty hub that works.
func TestHubClose(t *testing.T) {
	is := is.New(t)
	h := NewHub(HubConfig{})
	a, aPeer := memberPair(t, "tcp")
	b, _ := memberPair(t, "pipe")
	leaveA := h.Join(a)
	h.Join(b)
	is.Equal(h.Publish(hubMsg(0, 0, recSize)), 2)
	h.Close()
	h.Close()
	is.Equal(h.Members(), 0)
	is.Equal(h.Publish(hubMsg(0, 1, recSize)), 0)
	is.True(!a.IsClosing() && !b.IsClosing())
	_, err := a.Write(hubMsg(1, 0, recSize)) // a is the caller's again
	is.NoErr(err)
	leaveA() // after Close: does nothing

	c, cPeer := memberPair(t, "tcp")
	leaveC := h.Join(c)
	leaveA() // a stale leave does not touch the new membership
	is.Equal(h.Members(), 1)
	is.Equal(h.Publish(hubMsg(0, 2, recSize)), 1)
	is.Equal(h.Publish(hubMsg(0, endSeq, recSize)), 1)
	r := recv(t, readRecs(cPeer, recSize))
	is.NoErr(r.err)
	is.Equal(r.recs, []rec{{0, 2}})
	leaveC()
	is.Equal(h.Members(), 0)

	a.Write(hubMsg(1, endSeq, recSize))
	r = recv(t, readRecs(aPeer, recSize))
	is.NoErr(r.err)
	is.Equal(r.recs, []rec{{0, 0}, {1, 0}})
	is.Equal(h.Stats(), HubStats{Published: 4, Delivered: 4})
}

// A member whose Conn is closed, aborted, half-closed or whose sends fail
// leaves by itself: Members stops counting it as soon as it is closing, and
// Publish skips and removes it. The Hub leaves the Conn as it is.
func TestHubMembersLeaveByThemselves(t *testing.T) {
	cases := []struct {
		name    string
		closing bool // IsClosing reports true afterwards
		end     func(t *testing.T, c *Conn, peer net.Conn)
	}{
		{"Close", true, func(t *testing.T, c *Conn, _ net.Conn) { c.Close() }},
		{"Abort", true, func(t *testing.T, c *Conn, _ net.Conn) { c.Abort() }},
		{"WriteEOF", false, func(t *testing.T, c *Conn, _ net.Conn) { c.WriteEOF() }},
		{"failed send", false, func(t *testing.T, c *Conn, peer net.Conn) { breakWrites(t, c, peer) }},
	}
	for _, tc := range cases {
		for _, membersFirst := range []bool{true, false} {
			name := tc.name + map[bool]string{true: "/Members first", false: "/Publish first"}[membersFirst]
			t.Run(name, func(t *testing.T) {
				is := is.New(t)
				h := NewHub(HubConfig{Slow: Disconnect})
				c, peer := connPair(t)
				other, _ := memberPair(t, "pipe")
				h.Join(c)
				h.Join(other)
				is.Equal(h.Members(), 2)
				tc.end(t, c, peer)
				is.Equal(c.IsClosing(), tc.closing)
				if membersFirst {
					is.Equal(h.Members(), 1)
				}
				is.Equal(h.Publish([]byte("hello\n")), 1)
				is.Equal(h.Members(), 1)
				is.Equal(h.Stats(), HubStats{Published: 1, Delivered: 1})
				is.Equal(c.IsClosing(), tc.closing)
			})
		}
	}
}

// A member whose transport StartTLS is switching gets what is published
// meanwhile once the handshake is done, over TLS and before what is published
// after it; nothing goes out in plaintext during the handshake.
func TestHubMemberDuringStartTLS(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	h := NewHub(HubConfig{Slow: Disconnect})
	c, peer := connPair(t)
	h.Join(c)
	upgraded := make(chan error, 1)
	go func() { upgraded <- c.StartTLS(ctx, clientTLS(), WithServerName("localhost")) }()
	waitUntil(t, func() bool { q := c.queue(); q.mu.Lock(); defer q.mu.Unlock(); return q.held })
	is.Equal(h.Publish([]byte("during\n")), 1)
	is.Equal(h.Members(), 1)

	tp := tls.Server(peer, serverTLS()) // a stray plaintext byte would fail its handshake
	tp.SetDeadline(time.Now().Add(testTimeout))
	is.NoErr(tp.HandshakeContext(ctx))
	is.NoErr(recv(t, upgraded))
	is.Equal(h.Publish([]byte("after\n")), 1)
	br := bufio.NewReader(tp)
	for _, want := range []string{"during\n", "after\n"} {
		line, err := br.ReadString('\n')
		is.NoErr(err)
		is.Equal(line, want)
	}
	is.Equal(h.Stats(), HubStats{Published: 2, Delivered: 2})
}

// What is published while StartTLS still waits for earlier Writes to go out
// goes after the handshake, over TLS: the earlier bytes, then the handshake,
// then the message.
func TestHubPublishWhileStartTLSWaits(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	h := NewHub(HubConfig{MaxQueued: 64 << 20})
	c, peer := connPair(t)
	h.Join(c)
	peer.SetDeadline(time.Now().Add(testTimeout))
	early := randomBytes(t, 8<<20) // more than the socket buffers hold; the peer does not read yet
	_, err := c.Write(early)
	is.NoErr(err)
	upgraded := make(chan error, 1)
	go func() { upgraded <- c.StartTLS(ctx, clientTLS(), WithServerName("localhost")) }()
	waitUntil(t, func() bool { q := c.queue(); q.mu.Lock(); defer q.mu.Unlock(); return q.upgrading })
	is.Equal(h.Publish([]byte("during\n")), 1)

	got := make([]byte, len(early))
	_, err = io.ReadFull(peer, got)
	is.NoErr(err)
	is.True(bytes.Equal(got, early))
	tp := tls.Server(peer, serverTLS())
	is.NoErr(tp.HandshakeContext(ctx))
	is.NoErr(recv(t, upgraded))
	line, err := bufio.NewReader(tp).ReadString('\n')
	is.NoErr(err)
	is.Equal(line, "during\n")
}

// A member into which a Relay splices gets what is published during a splice
// step, whole, right after the step's bytes, and the relay goes on.
func TestHubMemberRelayDestination(t *testing.T) {
	if !kernelSplices(t) {
		t.Skip("Relay does not splice here")
	}
	is := is.New(t)
	h := NewHub(HubConfig{})
	a, b := newRelayEnd(t, "tcp"), newRelayEnd(t, "tcp")
	h.Join(b.c)
	published := make(chan int, 1)
	var once sync.Once
	testHookRelayStep = func(src *Conn, n int64, spliced bool) {
		if spliced && src == a.c {
			once.Do(func() { published <- h.Publish([]byte("published\n")) }) // while the step holds b's queue
		}
	}
	t.Cleanup(func() { testHookRelayStep = nil })
	relay := goRelay(testCtx(t), a.c, b.c)

	passThrough(t, a, b, "relayed 1\n")
	is.Equal(recv(t, published), 1)
	got := make([]byte, len("published\n"))
	_, err := io.ReadFull(b.peer, got)
	is.NoErr(err)
	is.Equal(string(got), "published\n")
	passThrough(t, a, b, "relayed 2\n")
	is.Equal(h.Stats(), HubStats{Published: 1, Delivered: 1})

	is.NoErr(halfClose(a.peer))
	is.NoErr(halfClose(b.peer))
	rest, err := io.ReadAll(b.peer)
	is.NoErr(err)
	is.Equal(len(rest), 0)
	r := recv(t, relay)
	is.NoErr(r.err)
	is.Equal(r.aToB, int64(len("relayed 1\nrelayed 2\n")))
}

// Many goroutines publish while others join, leave and count members: each
// publisher's messages reach a steady member whole and in order, and the
// statistics add up. Run it with -race.
func TestHubConcurrent(t *testing.T) {
	is := is.New(t)
	const publishers, each, size = 8, 200, 64 // 100 KiB in all: under MaxQueued
	h := NewHub(HubConfig{})
	steady, steadyPeer := memberPair(t, "tcp")
	h.Join(steady)
	got := readRecs(steadyPeer, size)

	var delivered atomic.Int64
	var pubs, churn sync.WaitGroup
	stop := make(chan struct{}) // closed once the publishers are done
	for p := range publishers {
		pubs.Add(1)
		go func() { // waited for below; ends after its Publish calls
			defer pubs.Done()
			for i := range each {
				delivered.Add(int64(h.Publish(hubMsg(p, i, size))))
			}
		}()
	}
	for range 4 {
		churn.Add(1)
		go func() { // waited for below; ends when stop is closed
			defer churn.Done()
			is := is.NewRelaxed(t)
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, peer, err := Pipe()
				is.NoErr(err)
				leave := h.Join(c)
				is.True(h.Members() >= 1)
				h.Stats()
				leave()
				leave()
				c.Abort()
				peer.Abort()
			}
		}()
	}
	pubs.Wait()
	close(stop)
	churn.Wait()

	delivered.Add(int64(h.Publish(hubMsg(0, endSeq, size))))
	r := recv(t, got)
	is.NoErr(r.err)
	is.Equal(len(r.recs), publishers*each)
	for p := range publishers {
		is.Equal(seqsOf(r.recs, p), upTo(each)) // in the order published
	}
	is.Equal(h.Members(), 1)
	st := h.Stats()
	is.Equal(st.Published, int64(publishers*each+1))
	is.Equal(st.Delivered, delivered.Load())
	is.Equal(st.Dropped, int64(0))
}

// Close, Join, leave and Publish at once, under both policies: nothing races,
// and Delivered is the sum of Publish's results.
func TestHubCloseConcurrent(t *testing.T) {
	for _, slow := range []SlowPolicy{DropMessages, Disconnect} {
		t.Run(fmt.Sprint(slow), func(t *testing.T) {
			is := is.New(t)
			h := NewHub(HubConfig{MaxQueued: 4 << 10, Slow: slow})
			conns := make([]*Conn, 16)
			for i := range conns {
				conns[i], _ = memberPair(t, "pipe")
			}
			var delivered, published atomic.Int64
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() { // waited for below; ends after its rounds
					defer wg.Done()
					msg := hubMsg(g, 0, 512)
					for i := range 200 {
						leave := h.Join(conns[(g*4+i)%len(conns)])
						delivered.Add(int64(h.Publish(msg)))
						published.Add(1)
						if i%7 == g {
							h.Close()
						}
						leave()
						h.Members()
					}
				}()
			}
			wg.Wait()
			st := h.Stats()
			is.Equal(st.Published, published.Load())
			is.Equal(st.Delivered, delivered.Load())
			is.Equal(h.Members(), 0) // every Join was left
		})
	}
}

func TestNewHubInvalidConfig(t *testing.T) {
	for _, cfg := range []HubConfig{{MaxQueued: -1}, {Slow: Disconnect + 1}, {Slow: -1}} {
		t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) {
			is := is.New(t)
			defer func() { is.True(recover() != nil) }()
			NewHub(cfg)
		})
	}
}

// MaxQueued 0 means 1 MiB, and the zero Hub is a Hub with the zero HubConfig
// (DropMessages).
func TestHubDefaults(t *testing.T) {
	for name, h := range map[string]*Hub{"NewHub": NewHub(HubConfig{}), "zero Hub": new(Hub)} {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			c, _ := memberPair(t, "pipe") // never read
			h.Join(c)
			msg := hubMsg(0, 0, recSize)
			for i := 0; h.Publish(msg) == 1; i++ {
				is.True(i < 1<<14) // the socket pair's buffers, then 1 MiB
			}
			peak := c.Stats().QueuedPeak
			is.True(peak >= 1<<20 && peak < 1<<20+recSize)
			is.Equal(h.Members(), 1)
			is.Equal(h.Stats().Dropped, int64(1))
		})
	}
}

// breakWrites makes c's sends fail: peer resets the connection, and c writes
// until a send fails. c stays open.
func breakWrites(t *testing.T, c *Conn, peer net.Conn) {
	t.Helper()
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // RST
	msg := []byte("x\n")
	for i := 0; i < 1<<16; i++ {
		if _, err := c.Write(msg); err != nil {
			return
		}
		if err := c.Flush(testCtx(t)); err != nil {
			return
		}
	}
	t.Fatal("writes never failed after the peer's reset")
}
