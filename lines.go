package sluice

import (
	"bytes"
	"context"
	"errors"
	"io"
	"iter"
	"math"
)

var (
	errNoSeparator    = errors.New("sluice: at least one separator is needed")
	errEmptySeparator = errors.New("sluice: separator must not be empty")
)

// A sepSet is a validated list of separators with the lengths a search needs.
// It is never modified once made.
type sepSet struct {
	seps       [][]byte
	min, max   int  // the shortest and longest separator
	preferLong bool // ties between separators ending at one place go to the longer (Delimited), else the shorter (ReadUntil)
	oneTail    bool // every separator ends in tail ("\r\n" and "\n"): one IndexByte finds where any can end
	tail       byte
}

// newlines is the separator of ReadLine and Lines.
var newlines = &sepSet{seps: [][]byte{{'\n'}}, min: 1, max: 1}

// newSepSet validates seps: at least one, none empty.
func newSepSet(seps [][]byte, preferLong bool) (*sepSet, error) {
	s := new(sepSet)
	if err := s.init(seps, preferLong); err != nil {
		return nil, err
	}
	return s, nil
}

// init makes s the sepSet of seps, validated (see newSepSet); a sepSet made
// for one call stays on its stack this way.
func (s *sepSet) init(seps [][]byte, preferLong bool) error {
	if len(seps) == 0 {
		return errNoSeparator
	}
	*s = sepSet{seps: seps, min: len(seps[0]), preferLong: preferLong, oneTail: true}
	for _, sep := range seps {
		if len(sep) == 0 {
			return errEmptySeparator
		}
		s.min, s.max = min(s.min, len(sep)), max(s.max, len(sep))
		s.tail = sep[len(sep)-1]
		s.oneTail = s.oneTail && s.tail == seps[0][len(seps[0])-1]
	}
	return nil
}

// index returns the start and end of the earliest-ending separator in data, or
// -1, -1. On a tie ReadUntil takes the shorter separator, as asyncio does (it
// tries them shortest first): the result is the same and only the limit check
// sees the difference. A Delimited frame takes the longer, so "\r\n" is not
// left on a payload ending at "\n".
func (s *sepSet) index(data []byte) (start, end int) {
	if len(s.seps) == 1 {
		sep := s.seps[0]
		i := -1
		if len(sep) == 1 {
			i = bytes.IndexByte(data, sep[0])
		} else {
			i = bytes.Index(data, sep)
		}
		if i < 0 {
			return -1, -1
		}
		return i, i + len(sep)
	}
	if s.oneTail {
		return s.indexByTail(data)
	}
	start, end = -1, -1
	for _, sep := range s.seps {
		i := bytes.Index(data, sep)
		if i < 0 {
			continue
		}
		e := i + len(sep)
		if end < 0 || e < end || (e == end && (i < start) == s.preferLong) {
			start, end = i, e
		}
	}
	return start, end
}

// indexByTail is index for separators that all end in tail: the earliest
// tail byte that ends one of them ends the earliest-ending match, found with
// one scan instead of one per separator.
func (s *sepSet) indexByTail(data []byte) (start, end int) {
	for off := 0; ; {
		i := bytes.IndexByte(data[off:], s.tail)
		if i < 0 {
			return -1, -1
		}
		end, start = off+i+1, -1
		for _, sep := range s.seps {
			st := end - len(sep)
			if st < 0 || !bytes.Equal(data[st:end], sep) {
				continue
			}
			if start < 0 || (st < start) == s.preferLong {
				start = st
			}
		}
		if start >= 0 {
			return start, end
		}
		off = end
	}
}

// ReadLine reads one line, "\n" included (asyncio's readline). At EOF a partial
// last line is returned with a nil error; at EOF with nothing buffered it returns
// nil, io.EOF. A line longer than the limit (not counting "\n") returns a
// *LimitOverrunError and, as asyncio does, discards the buffered data through the
// newline if it is buffered, or else everything buffered; the next call reads on
// from there. It blocks until a line is buffered, the stream ends, ctx ends
// (ctx.Err(), nothing lost) or a read fails; ctx is looked at only when the call
// must wait for data. If the connection was reset, even after the peer's data
// ended, the error says so: a reset is never taken for EOF. The returned slice
// is the caller's: one allocation.
func (c *Conn) ReadLine(ctx context.Context) ([]byte, error) { return c.rd.ReadLine(ctx) }

// ReadLine reads one line, "\n" included (asyncio's readline). See
// Conn.ReadLine.
func (r *Reader) ReadLine(ctx context.Context) ([]byte, error) {
	if !r.mu.tryLock() {
		return nil, ErrConcurrentRead
	}
	if p, ok := r.takeRecord(newlines); ok {
		r.mu.unlock()
		return p, nil
	}
	return r.readLine(ctx)
}

// takeRecord is ReadLine's and ReadUntil's fast path, ReadExactly's for
// records: where a record through one of s's separators is buffered whole
// within the limit, and nothing is to be done first (see settled), it takes a
// copy of it and reports true. The read lock is held.
func (r *Reader) takeRecord(s *sepSet) ([]byte, bool) {
	if !r.settled() {
		return nil, false
	}
	start, end := s.index(r.buf[r.r:r.w])
	if end < 0 || start > r.limit {
		return nil, false
	}
	return r.take(end), true
}

// readLine is ReadLine where it may have to read, the read lock held (see
// readExactly).
func (r *Reader) readLine(ctx context.Context) ([]byte, error) {
	defer r.mu.unlock()
	if err := r.begin(ctx); err != nil {
		return nil, err
	}
	_, end, err := r.until(ctx, newlines, r.limit)
	if err != nil {
		return r.lineEnd(err, false)
	}
	return r.take(end), nil
}

// lineEnd turns what until reports instead of a line into what ReadLine and
// Lines return: at EOF the unterminated last line (a copy; the buffer
// emptied) with no error, or io.EOF with nothing buffered; for a line over the
// limit the *LimitOverrunError, the line discarded as asyncio's readline does
// (see dropOverrun) and, with skipRest, the rest of it skipped too as it
// arrives, through its newline. It runs after the wait, not beneath it: the
// frames under a waiting read stay few.
func (r *Reader) lineEnd(err error, skipRest bool) ([]byte, error) {
	switch e := err.(type) {
	case *IncompleteReadError:
		if len(e.Partial) == 0 {
			return nil, io.EOF
		}
		return e.Partial, nil
	case *LimitOverrunError:
		at := r.off + int64(r.r)
		if !r.dropOverrun(e.Consumed) && skipRest {
			r.skip = skipState{n: at, seps: newlines}
		}
	}
	return nil, err
}

// dropOverrun discards an overlong line as asyncio's readline does: through its
// newline when that is buffered at consumed, else everything buffered. It reports
// whether the newline was found.
func (r *Reader) dropOverrun(consumed int) bool {
	if r.r+consumed < r.w && r.buf[r.r+consumed] == '\n' {
		r.consume(consumed + 1)
		return true
	}
	r.consume(r.w - r.r)
	return false
}

// ReadUntil reads through the first of seps to appear (asyncio's readuntil) and
// returns the data with the separator. With several separators the shortest
// result wins. If the data before the separator is longer than the limit, the
// error is a *LimitOverrunError and the data stays buffered. If the stream ends
// first, the error is an *IncompleteReadError holding everything buffered
// (Expected -1), and the buffer is emptied. No separator, or an empty one, is an
// error and consumes nothing. It blocks until a separator is buffered, the stream
// ends, ctx ends (ctx.Err(), nothing lost) or a read fails. The returned slice is
// the caller's.
func (c *Conn) ReadUntil(ctx context.Context, seps ...[]byte) ([]byte, error) {
	return c.rd.ReadUntil(ctx, seps...)
}

// ReadUntil reads through the first of seps to appear (asyncio's readuntil).
// See Conn.ReadUntil.
func (r *Reader) ReadUntil(ctx context.Context, seps ...[]byte) ([]byte, error) {
	var s sepSet
	if err := s.init(seps, false); err != nil {
		return nil, err
	}
	if !r.mu.tryLock() {
		return nil, ErrConcurrentRead
	}
	if p, ok := r.takeRecord(&s); ok {
		r.mu.unlock()
		return p, nil
	}
	return r.readUntil(ctx, &s)
}

// readUntil is ReadUntil where it may have to read, the read lock held (see
// readExactly).
func (r *Reader) readUntil(ctx context.Context, s *sepSet) ([]byte, error) {
	defer r.mu.unlock()
	if err := r.begin(ctx); err != nil {
		return nil, err
	}
	_, end, err := r.until(ctx, s, r.limit)
	if err != nil {
		return nil, err
	}
	return r.take(end), nil
}

// untilWant is what until waits for: limit plus the longest separator, the
// most the buffer need hold.
func untilWant(limit, sepMax int) int {
	if limit > math.MaxInt-sepMax {
		return math.MaxInt
	}
	return limit + sepMax
}

// until reads until the buffered data holds one of s's separators and returns
// where the earliest-ending match starts and ends, relative to the unread data.
// It is CPython's StreamReader.readuntil: the search resumes where a separator
// could still begin, and limit (the reader limit, or a Delimited framing's
// maximum) applies to the data before the separator, so the buffer never needs
// more than limit plus the longest separator. Errors: a *LimitOverrunError
// (data stays buffered), an *IncompleteReadError at EOF (the buffer emptied into
// it), ctx.Err() or a read error.
func (r *Reader) until(ctx context.Context, s *sepSet, limit int) (start, end int, err error) {
	want := untilWant(limit, s.max)
	offset := 0
	for {
		data := r.buf[r.r:r.w]
		if len(data)-offset >= s.min {
			if st, e := s.index(data[offset:]); e >= 0 {
				start, end = offset+st, offset+e
				if start > limit {
					return 0, 0, overrun(start, true)
				}
				return start, end, nil
			}
			offset = max(0, len(data)+1-s.max)
			if offset > limit {
				return 0, 0, overrun(offset, false)
			}
		}
		if r.err == io.EOF {
			return 0, 0, r.incomplete(-1)
		}
		if err := r.fill(ctx, want, forMessage); err != nil && err != io.EOF {
			return 0, 0, err
		}
	}
}

// Lines returns a single-use iterator over the stream's lines (asyncio's
// "async for line in reader"), each without its "\n" or "\r\n". An
// unterminated last line is yielded too, and EOF ends the loop with no error.
// Any other error is yielded once, with a nil line, and ends the loop: ctx.Err()
// when ctx ends, a *LimitOverrunError for a line longer than the limit, a read
// error, a reset.
//
// After a *LimitOverrunError the whole oversized line is discarded, through its
// newline even if that has not arrived yet (as tokio's LinesCodec does), so a new
// Lines loop goes on with the next whole line. Breaking out of the loop loses
// nothing: unread data stays buffered for the next read. ctx is looked at when a
// step must wait for data, not for lines already buffered.
//
// The yielded slice points into the buffer and is valid until the next step or
// read (as bufio.Scanner.Bytes); copy it to keep it. Its capacity is its length,
// so an append to it copies instead of overwriting the lines that follow. A step
// allocates nothing.
func (c *Conn) Lines(ctx context.Context) iter.Seq2[[]byte, error] { return c.rd.Lines(ctx) }

// LineChan is the channel form of Lines: a Stream of owned line copies, without
// line endings, for select and goroutine pipelines. See Stream for its lifecycle.
func (c *Conn) LineChan(ctx context.Context) *Stream { return c.rd.LineChan(ctx) }

// overrun and incomplete make until's errors out of line, so that until's
// frame, beneath every waiting line read, stays small.
//
//go:noinline
func overrun(consumed int, found bool) error {
	return &LimitOverrunError{Consumed: consumed, Found: found}
}

//go:noinline
func (r *Reader) incomplete(expected int) error {
	return &IncompleteReadError{Partial: r.takeAll(), Expected: expected}
}

// Lines returns a single-use iterator over the stream's lines. See Conn.Lines.
func (r *Reader) Lines(ctx context.Context) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) { r.lines(ctx, yield) }
}

// lines is Lines' loop. It is its own rather than steps': a line buffered
// whole costs one IndexByte, the closed check and the yield, with no call
// through a step. It is a method, not the closure Lines returns, because a
// closure inlined into another package is compiled there without its own
// calls inlined (seen with Go 1.26): each line would pay calls to IndexByte's
// wrapper, dropCR and the atomic load, ~15% at 20-byte lines.
func (r *Reader) lines(ctx context.Context, yield func([]byte, error) bool) {
	if err := r.startLoop(ctx); err != nil {
		yield(nil, err)
		return
	}
	defer r.endLoop()
	for {
		if i := bytes.IndexByte(r.buf[r.r:r.w], '\n'); i >= 0 && i <= r.limit && !r.closed.Load() {
			line := r.buf[r.r : r.r+i]
			r.r += i + 1
			if !yield(dropCR(line), nil) {
				return
			}
			continue
		}
		r.takeBuf()
		r.mayRead()
		if r.w-r.r <= r.limit && r.err == nil && !r.closed.Load() && bytes.IndexByte(r.buf[r.r:r.w], '\n') < 0 {
			// The line has not arrived whole (a second look at its part,
			// off the hot path): wait for the rest with fill in this frame,
			// not beneath nextLine and until (every frame beneath a
			// waiting read counts: see Server.serveConn), as until would;
			// the next turn takes the line, or nextLine deals with one
			// over the limit or cut short by the stream's end.
			if err := r.fill(ctx, untilWant(r.limit, newlines.max), forLine); err != nil {
				yield(nil, err)
				return
			}
			continue
		}
		line, err := r.nextLine(ctx)
		if err == io.EOF {
			return
		}
		if !yield(line, err) || err != nil {
			return
		}
	}
}

// nextLine reads until the next line is buffered whole (Lines' loop takes
// the lines that already are) and returns it as a view into the buffer,
// without its line ending, consumed; the read lock is held. After a line over
// the limit it arranges for the rest of that line to be skipped as it arrives.
func (r *Reader) nextLine(ctx context.Context) ([]byte, error) {
	if r.closed.Load() {
		return nil, r.closeErr
	}
	start, end, err := r.until(ctx, newlines, r.limit)
	if err != nil {
		last, err := r.lineEnd(err, true)
		if last != nil {
			last = dropCR(last)
		}
		return last, err
	}
	line := r.buf[r.r : r.r+start]
	r.consume(end)
	return dropCR(line), nil
}

// dropCR returns line without a trailing "\r", with its capacity cut to its
// length so that an append to it copies instead of overwriting the buffer.
func dropCR(line []byte) []byte {
	n := len(line)
	if n > 0 && line[n-1] == '\r' {
		n--
	}
	return line[:n:n]
}
