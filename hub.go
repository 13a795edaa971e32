package sluice

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// defaultMaxQueued is HubConfig.MaxQueued's default: 1 MiB per member.
const defaultMaxQueued = 1 << 20

// A SlowPolicy says what a Hub does with a member whose write queue already
// holds HubConfig.MaxQueued bytes when a message is published to it.
type SlowPolicy int

const (
	// DropMessages: a member over MaxQueued misses messages until it catches
	// up. Each copy it misses counts in HubStats.Dropped.
	DropMessages SlowPolicy = iota
	// Disconnect: a member over MaxQueued is aborted (Conn.Abort) and leaves.
	// It counts in HubStats.Disconnected.
	Disconnect
)

// String returns the policy's name: "DropMessages" or "Disconnect".
func (s SlowPolicy) String() string {
	switch s {
	case DropMessages:
		return "DropMessages"
	case Disconnect:
		return "Disconnect"
	}
	return fmt.Sprintf("SlowPolicy(%d)", int(s))
}

// HubConfig configures a Hub. The zero value is valid: 1 MiB per member, and a
// member over it misses messages.
type HubConfig struct {
	MaxQueued int        // bytes a member may have queued; 0 means 1 MiB
	Slow      SlowPolicy // what happens to a member that has MaxQueued bytes queued
}

// HubStats are a Hub's counters since it was made. Every count is exact.
type HubStats struct {
	Published    int64 // Publish calls
	Delivered    int64 // copies queued: the sum of Publish's results
	Dropped      int64 // copies not queued because a member had MaxQueued bytes queued (DropMessages)
	Disconnected int64 // members aborted because they had MaxQueued bytes queued (Disconnect)
}

// A Hub broadcasts messages to the Conns that joined it: a chat room, a
// pub/sub topic. Publish never blocks on the network: it queues a copy of the
// message on each member's write queue, past the member's high watermark if
// need be, up to HubConfig.MaxQueued bytes per member. So a member that reads
// as fast as it can gets every message of a burst of up to MaxQueued bytes
// (counted from an empty queue), and one that never reads costs at most
// MaxQueued bytes plus one message, and never holds up the others.
//
// A member leaves when its leave func is called, when the Hub is closed, when
// the Hub disconnects it (Disconnect), and by itself once its Conn takes no
// more writes: it was closed or aborted (IsClosing reports true), a send
// failed, or WriteEOF was called. A Hub never closes a member's Conn, except
// that Disconnect aborts it.
//
// A Hub starts no goroutine and needs no cleanup. Its methods are safe from any
// goroutine. The zero Hub is ready to use, with the zero HubConfig. A Hub must
// not be copied after first use.
type Hub struct {
	cfg HubConfig // read-only

	// mu guards members and each member's i. Publish and Members hold it for
	// reading; Join, leave, Close and sweep for writing, so that once they
	// return no Publish under way still sees the members they removed.
	mu      sync.RWMutex
	members []*member

	published, delivered, dropped, disconnected atomic.Int64
}

// A member is one Join's membership.
type member struct {
	c *Conn
	i int // index in Hub.members; -1 once it has left; guarded by Hub.mu
	// gone is set once the member is to leave: its Conn takes no more writes,
	// or the Hub is disconnecting it. The next sweep removes it; Publish skips
	// it meanwhile.
	gone atomic.Bool
}

// NewHub returns an empty Hub with cfg's settings. It panics if
// cfg.MaxQueued is negative or cfg.Slow is not a SlowPolicy.
func NewHub(cfg HubConfig) *Hub {
	if cfg.MaxQueued < 0 {
		panic(fmt.Sprintf("sluice: NewHub: negative MaxQueued %d", cfg.MaxQueued))
	}
	if cfg.Slow != DropMessages && cfg.Slow != Disconnect {
		panic(fmt.Sprintf("sluice: NewHub: unknown SlowPolicy %d", cfg.Slow))
	}
	return &Hub{cfg: cfg}
}

// Join adds c to the Hub and returns the func that removes it again. c gets
// every message published from then on until it leaves (see Hub). leave is
// idempotent and safe to call at any time, from any goroutine; once it returns,
// no Publish queues anything more on c for this membership. It does not close
// c. Join after Close adds c to a Hub that is empty, and works as before. A
// Conn that joins twice has two memberships and gets two copies of each
// message. Join and leave do not block on the network; each costs a lock of
// the Hub, which waits for Publish calls under way.
func (h *Hub) Join(c *Conn) (leave func()) {
	m := &member{c: c}
	h.mu.Lock()
	m.i = len(h.members)
	h.members = append(h.members, m)
	h.mu.Unlock()
	return func() { h.remove(m) }
}

// remove takes m out of the members, if it is still there.
func (h *Hub) remove(m *member) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m.i < 0 {
		return
	}
	last := len(h.members) - 1 // the last takes m's place: order does not matter
	h.members[m.i] = h.members[last]
	h.members[m.i].i = m.i
	h.members[last] = nil
	h.members = h.members[:last]
	m.i = -1
}

// sweep removes the members marked gone.
func (h *Hub) sweep() {
	h.mu.Lock()
	defer h.mu.Unlock()
	kept := h.members[:0]
	for _, m := range h.members {
		if m.gone.Load() {
			m.i = -1
			continue
		}
		m.i = len(kept)
		kept = append(kept, m)
	}
	clear(h.members[len(kept):])
	h.members = kept
}

// Publish queues a copy of p on every member whose write queue holds less than
// MaxQueued bytes, past its high watermark if need be, and returns how many
// members it queued p for. A member at MaxQueued misses p (DropMessages) or is
// aborted and removed (Disconnect). A member whose Conn takes no more writes
// (see Hub) is removed and not counted. A member whose transport StartTLS is
// switching, or into which a Relay is splicing, gets p queued: it is sent once
// that is done (over TLS after StartTLS; after the splice step under way).
//
// Publish never blocks on the network. It waits only for locks held briefly:
// the Hub's while Join, leave or Close change the members, and each member's
// write queue; disconnecting a member closes its socket and waits for its
// writer goroutine, which that close ends. It reports no error: a member's
// write error is its Conn's, returned by that Conn's next Write, Drain, Flush
// or Close. p is copied: the caller may reuse it as soon as Publish returns.
//
// Publish is safe from many goroutines at once. Messages published by one
// goroutine reach every member in the order they were published; Publish
// calls made at the same time from different goroutines may reach different
// members in different orders.
//
// Cost: a read lock of the Hub, then for each member a lock of its write queue
// and the copy; nothing else is allocated per member. A member's writer
// goroutine (or its next read) sends the copy; a Hub has no goroutine of its
// own.
func (h *Hub) Publish(p []byte) int {
	h.published.Add(1)
	limit := h.cfg.MaxQueued
	if limit == 0 {
		limit = defaultMaxQueued
	}
	var t tally
	h.mu.RLock()
	for _, m := range h.members {
		if !m.gone.Load() {
			h.offer(m, p, limit, &t)
		}
	}
	h.mu.RUnlock()
	h.count(t)
	if t.sweep {
		h.sweep()
	}
	return t.queued
}

// A tally is one Publish's outcome.
type tally struct {
	queued, dropped, cut int  // copies queued, copies dropped, members disconnected
	sweep                bool // some member is to be removed
}

// offer queues p on m if it has less than limit bytes queued, else applies the
// Hub's SlowPolicy, and adds the outcome to t.
func (h *Hub) offer(m *member, p []byte, limit int, t *tally) {
	switch ok, err := m.c.queue().offer(p, limit); {
	case ok:
		t.queued++
	case err != nil:
		m.gone.Store(true) // m leaves by itself
		t.sweep = true
	case h.cfg.Slow == DropMessages:
		t.dropped++
	case m.gone.CompareAndSwap(false, true): // Disconnect, once per member
		m.c.Abort()
		t.cut++
		t.sweep = true
	}
}

// count adds one Publish's outcome to the statistics.
func (h *Hub) count(t tally) {
	if t.queued > 0 {
		h.delivered.Add(int64(t.queued))
	}
	if t.dropped > 0 {
		h.dropped.Add(int64(t.dropped))
	}
	if t.cut > 0 {
		h.disconnected.Add(int64(t.cut))
	}
}

// Members returns the number of members that still take messages: those that
// have not left and whose Conns still take writes (not closing, no failed
// send, no WriteEOF); it removes the others. It does not block on the network
// and is safe from any goroutine. It costs a read lock of the Hub and a lock
// of each member's write queue.
func (h *Hub) Members() int {
	n, sweep := 0, false
	h.mu.RLock()
	for _, m := range h.members {
		if !m.gone.Load() && m.c.queue().takesWrites() {
			n++
			continue
		}
		m.gone.Store(true)
		sweep = true
	}
	h.mu.RUnlock()
	if sweep {
		h.sweep()
	}
	return n
}

// Stats returns the Hub's counters. It does not block and is safe from any
// goroutine; a Publish under way may be counted in part until it returns.
func (h *Hub) Stats() HubStats {
	return HubStats{
		Published:    h.published.Load(),
		Delivered:    h.delivered.Load(),
		Dropped:      h.dropped.Load(),
		Disconnected: h.disconnected.Load(),
	}
}

// Close makes every member leave, as if each had called its leave func, and
// leaves their Conns open: once it returns, no Publish queues anything more on
// them. What is already queued is still sent. A Hub can be joined again after
// Close. Close does not block on the network, and is safe from any goroutine
// and more than once.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.members {
		m.i = -1
	}
	clear(h.members)
	h.members = h.members[:0]
}
