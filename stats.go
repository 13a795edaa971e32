package sluice

import "time"

// ConnStats are a Conn's counters since it was made. Every count is exact.
type ConnStats struct {
	BytesRead    int64         // bytes read from the connection (plaintext under TLS; a PROXY header not counted)
	BytesWritten int64         // bytes handed to the kernel (plaintext under TLS)
	QueuedPeak   int           // the largest WriteBufferSize so far
	DrainWaits   int64         // Drain calls that had to wait, however they ended
	DrainWaited  time.Duration // time spent waiting in Drain, all calls together (those that have returned)
}

// Stats returns the Conn's counters. It does not block on I/O and is safe from
// any goroutine at any time; counting costs an atomic add per read from the
// socket and nothing per line or frame.
func (c *Conn) Stats() ConnStats {
	st := ConnStats{BytesRead: c.nread.Load()}
	if q := c.wq.Load(); q != nil { // else nothing was written
		q.mu.Lock()
		defer q.mu.Unlock()
		st.BytesWritten, st.QueuedPeak = q.written.Load(), q.peak
		st.DrainWaits, st.DrainWaited = q.drainWaits, q.drainWaited
	}
	return st
}

// ServerStats are a Server's counters since it was made. Every count is exact.
type ServerStats struct {
	Accepted     int64 // connections accepted, rejected ones included
	Active       int   // handlers running now
	Errors       int64 // handlers that returned an error other than a peer going away (io.EOF, a reset, a broken pipe) or one that came of the Conn closing (see Handler)
	Panics       int64 // handlers that panicked
	TimedOut     int64 // connections ended by WithIdleTimeout or WithMessageTimeout
	Rejected     int64 // connections refused before their handler ran (PROXY header missing or bad)
	BytesRead    int64 // over every connection, closed ones included (plaintext under TLS)
	BytesWritten int64 // the same, written
}

// Stats returns the Server's counters: those of connections that have ended
// and of the live ones, read at once. It does not block on I/O and is safe from
// any goroutine at any time. Its cost grows with the live connections (a lock
// and a read of each one's counters).
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.BytesRead, st.BytesWritten = s.done.r, s.done.w
	for c, running := range s.conns {
		if running {
			st.Active++
		}
		cs := c.Stats()
		st.BytesRead += cs.BytesRead
		st.BytesWritten += cs.BytesWritten
	}
	return st
}
