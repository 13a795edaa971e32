package sluice

import (
	"context"
	"errors"
	"io"
	"iter"
)

var errChunkSize = errors.New("sluice: chunk size must be at least 1")

// Lines returns a single-use iterator over the stream's lines (asyncio's
// "async for line in reader"), each without its "\n" or "\r\n". An unterminated
// last line is yielded too, and EOF ends the loop with no error. Any other error
// is yielded once, with a nil line, and ends the loop: ctx.Err() when ctx ends, a
// *LimitOverrunError for a line longer than the limit, a read error.
//
// After a *LimitOverrunError the whole oversized line is discarded, through its
// newline even if that has not arrived yet (as tokio's LinesCodec does), so a new
// Lines loop goes on with the next whole line. Breaking out of the loop loses
// nothing: unread data stays buffered for the next read.
//
// The yielded slice points into the buffer and is valid until the next step or
// read (as bufio.Scanner.Bytes); copy it to keep it. A step allocates nothing.
func (r *Reader) Lines(ctx context.Context) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for {
			line, err := r.nextLine(ctx)
			if err == io.EOF {
				return
			}
			if !yield(line, err) || err != nil {
				return
			}
		}
	}
}

// nextLine returns the next line as a view into the buffer, without its line
// ending, and consumes it.
func (r *Reader) nextLine(ctx context.Context) ([]byte, error) {
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	start, end, err := r.until(ctx, newline, r.limit, false)
	switch e := err.(type) {
	case nil:
		line := r.buf[r.r : r.r+start]
		r.consume(end)
		return dropCR(line), nil
	case *IncompleteReadError:
		if len(e.Partial) == 0 {
			return nil, io.EOF
		}
		return dropCR(e.Partial), nil
	case *LimitOverrunError:
		if !r.dropOverrun(e.Consumed) {
			r.skip.seps = newline
		}
	}
	return nil, err
}

func dropCR(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return line[:n-1]
	}
	return line
}

// Chunks returns a single-use iterator over the stream's bytes as they arrive,
// at most n at a time: what is buffered, else what one read brings. EOF ends the
// loop with no error; any other error (ctx.Err(), a read error, n < 1) is yielded
// once and ends it. Breaking out loses nothing. The yielded slice points into the
// buffer and is valid until the next step or read. A step allocates nothing.
func (r *Reader) Chunks(ctx context.Context, n int) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		if n < 1 {
			yield(nil, errChunkSize)
			return
		}
		for {
			chunk, err := r.nextChunk(ctx, n)
			if err == io.EOF {
				return
			}
			if !yield(chunk, err) || err != nil {
				return
			}
		}
	}
}

func (r *Reader) nextChunk(ctx context.Context, n int) ([]byte, error) {
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	for r.r == r.w {
		if err := r.fill(ctx); err != nil && r.r == r.w {
			return nil, err
		}
	}
	n = min(n, r.w-r.r)
	chunk := r.buf[r.r : r.r+n]
	r.consume(n)
	return chunk, nil
}
