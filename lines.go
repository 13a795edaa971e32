package sluice

import (
	"bytes"
	"context"
	"errors"
	"io"
)

// newline is the separator of ReadLine and Lines. It is never modified.
var newline = [][]byte{{'\n'}}

var (
	errNoSeparator    = errors.New("sluice: ReadUntil needs at least one separator")
	errEmptySeparator = errors.New("sluice: separator must not be empty")
)

// ReadLine reads one line, "\n" included (asyncio's readline). At EOF a partial
// last line is returned with a nil error; at EOF with nothing buffered it returns
// nil, io.EOF. A line longer than the limit (not counting "\n") returns a
// *LimitOverrunError and, as asyncio does, discards the buffered data through the
// newline if it is buffered, or else everything buffered; the next call reads on
// from there. It blocks until a line is buffered, the stream ends, ctx ends
// (ctx.Err(), nothing lost) or a read fails. The returned slice is the caller's.
func (r *Reader) ReadLine(ctx context.Context) ([]byte, error) {
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	_, end, err := r.until(ctx, newline, r.limit, false)
	switch e := err.(type) {
	case nil:
		return r.take(end), nil
	case *IncompleteReadError:
		if len(e.Partial) == 0 {
			return nil, io.EOF
		}
		return e.Partial, nil
	case *LimitOverrunError:
		r.dropOverrun(e.Consumed)
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
func (r *Reader) ReadUntil(ctx context.Context, seps ...[]byte) ([]byte, error) {
	_, _, err := sepLens(seps)
	if err != nil {
		return nil, err
	}
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	_, end, err := r.until(ctx, seps, r.limit, false)
	if err != nil {
		return nil, err
	}
	return r.take(end), nil
}

// sepLens validates separators and returns the shortest and longest length.
func sepLens(seps [][]byte) (minSep, maxSep int, err error) {
	if len(seps) == 0 {
		return 0, 0, errNoSeparator
	}
	minSep = len(seps[0])
	for _, s := range seps {
		if len(s) == 0 {
			return 0, 0, errEmptySeparator
		}
		minSep, maxSep = min(minSep, len(s)), max(maxSep, len(s))
	}
	return minSep, maxSep, nil
}

// until reads until the buffered data holds one of seps and returns where the
// earliest-ending match starts and ends, relative to the unread data. It is
// CPython's StreamReader.readuntil: the search resumes where a separator could
// still begin, and limit (the reader limit, or a Delimited framing's maximum)
// applies to the data before the separator; preferLong breaks ties between
// separators ending at the same place (see indexSeps). Errors: a *LimitOverrunError (data
// stays buffered), an *IncompleteReadError at EOF (the buffer emptied into it),
// ctx.Err() or a read error.
func (r *Reader) until(ctx context.Context, seps [][]byte, limit int, preferLong bool) (start, end int, err error) {
	minSep, maxSep, _ := sepLens(seps)
	offset := 0
	for {
		data := r.buf[r.r:r.w]
		if len(data)-offset >= minSep {
			if s, e := indexSeps(data[offset:], seps, preferLong); e >= 0 {
				start, end = offset+s, offset+e
				if start > limit {
					return 0, 0, &LimitOverrunError{Consumed: start}
				}
				return start, end, nil
			}
			offset = max(0, len(data)+1-maxSep)
			if offset > limit {
				return 0, 0, &LimitOverrunError{Consumed: offset}
			}
		}
		if r.err == io.EOF {
			return 0, 0, &IncompleteReadError{Partial: r.takeAll(), Expected: -1}
		}
		if err := r.fill(ctx); err != nil && err != io.EOF {
			return 0, 0, err
		}
	}
}

// indexSeps returns the start and end of the earliest-ending separator in data,
// or -1, -1.
func indexSeps(data []byte, seps [][]byte, preferLong bool) (start, end int) {
	if len(seps) == 1 {
		if i := bytes.Index(data, seps[0]); i >= 0 {
			return i, i + len(seps[0])
		}
		return -1, -1
	}
	start, end = -1, -1
	for _, sep := range seps {
		i := bytes.Index(data, sep)
		if i < 0 {
			continue
		}
		// The earliest end wins. On a tie ReadUntil takes the shorter separator,
		// as asyncio does (it tries them shortest first): the result is the same
		// and only the limit check sees the difference. A Delimited frame takes
		// the longer, so "\r\n" is not left on a payload ending at "\n".
		e := i + len(sep)
		if end < 0 || e < end || (e == end && (i < start) == preferLong) {
			start, end = i, e
		}
	}
	return start, end
}

// skipState is what an overrun left to discard before the next read.
type skipState struct {
	n    int64    // bytes still to discard (an oversized frame's body)
	seps [][]byte // discard through the next of these (a line or delimited frame over the limit)
}

// settleSkip discards what skipState asks for, reading as needed. EOF ends the
// skipping quietly, discarding what is left of the skipped record (a tail that
// could have begun a separator): the caller's read then sees EOF itself.
func (r *Reader) settleSkip(ctx context.Context) error {
	for r.skip.n > 0 || r.skip.seps != nil {
		if r.skip.n > 0 {
			k := int(min(int64(r.w-r.r), r.skip.n))
			r.consume(k)
			if r.skip.n -= int64(k); r.skip.n == 0 {
				continue
			}
		} else if r.skipThroughSep() {
			continue
		}
		if r.err == io.EOF {
			r.consume(r.w - r.r)
			r.skip = skipState{}
			return nil
		}
		if err := r.fill(ctx); err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// skipThroughSep discards buffered data through the first of skip.seps and
// reports true, or discards all but the tail where a separator could still begin
// and reports false.
func (r *Reader) skipThroughSep() bool {
	if _, e := indexSeps(r.buf[r.r:r.w], r.skip.seps, true); e >= 0 {
		r.consume(e)
		r.skip.seps = nil
		return true
	}
	_, maxSep, _ := sepLens(r.skip.seps)
	if keep := maxSep - 1; r.w-r.r > keep {
		r.consume(r.w - r.r - keep)
	}
	return false
}
