package sluice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/matryer/is"
)

func collectLines(t *testing.T, r *Reader) (lines []string, errs []error) {
	t.Helper()
	for line, err := range r.Lines(testCtx(t)) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lines = append(lines, string(line))
	}
	return lines, errs
}

func TestLines(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		parts []string
		want  []string
		errs  int
	}{
		{"plain", defaultLimit, []string{streamData}, []string{"line1", "line2", "line3"}, 0},
		{"crlf", defaultLimit, []string{"a\r\nb\r\n\r\n"}, []string{"a", "b", ""}, 0},
		{"unterminated last", defaultLimit, []string{"a\nb"}, []string{"a", "b"}, 0},
		{"unterminated crlf", defaultLimit, []string{"a\nb\r"}, []string{"a", "b"}, 0},
		{"split crlf", defaultLimit, []string{"a\r", "\nb", "\n"}, []string{"a", "b"}, 0},
		{"empty", defaultLimit, nil, nil, 0},
		{"limit exactly", 5, []string{"12345\n"}, []string{"12345"}, 0},
		{"overrun ends loop", 5, []string{"123456\nnext\n"}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			lines, errs := collectLines(t, &feed(t, tt.limit, tt.parts...).Reader)
			is.Equal(lines, tt.want)
			is.Equal(len(errs), tt.errs)
		})
	}
}

func TestLinesByteAtATime(t *testing.T) {
	is := is.New(t)
	in := "alpha\r\nbeta\ngamma"
	lines, errs := collectLines(t, NewReader(iotest.OneByteReader(strings.NewReader(in)), WithLimit(8)))
	is.Equal(len(errs), 0)
	is.Equal(lines, []string{"alpha", "beta", "gamma"})
}

// After a *LimitOverrunError the oversized line is discarded through its newline,
// even one that arrives later, and a new loop resumes with the next line.
func TestLinesOverrunResumes(t *testing.T) {
	is := is.New(t)
	long := strings.Repeat("x", 3000)
	c := feedOpts(t, true, []Option{WithLimit(100)}, "ok\n"+long[:1000], long[1000:], "\nafter\n")
	ctx := testCtx(t)
	var got []string
	for line, err := range c.Lines(ctx) {
		if err != nil {
			is.True(errors.Is(err, ErrLimitOverrun))
			break
		}
		got = append(got, string(line))
	}
	is.Equal(got, []string{"ok"})
	lines, errs := collectLines(t, &c.Reader)
	is.Equal(len(errs), 0)
	is.Equal(lines, []string{"after"})
}

// Breaking out of a loop loses nothing: the next read sees the rest.
func TestLinesBreakLosesNothing(t *testing.T) {
	is := is.New(t)
	c := feed(t, defaultLimit, "one\ntwo\nthree\nfour")
	ctx := testCtx(t)
	for line, err := range c.Lines(ctx) {
		is.NoErr(err)
		is.Equal(string(line), "one")
		break
	}
	line, err := c.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "two\n")
	for line, err := range c.Lines(ctx) {
		is.NoErr(err)
		is.Equal(string(line), "three")
		break
	}
	is.Equal(rest(t, c), "four")
}

func TestLinesNoAllocs(t *testing.T) {
	const n = 1000
	in := strings.Repeat(strings.Repeat("y", 99)+"\n", n)
	r := NewReader(strings.NewReader(""))
	ctx := context.Background()
	allocs := testing.AllocsPerRun(5, func() {
		r.rd = strings.NewReader(in)
		r.err = nil
		count := 0
		for _, err := range r.Lines(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			count++
		}
		if count != n {
			t.Fatalf("got %d lines, want %d", count, n)
		}
	})
	// The iterator's closure and the strings.Reader allocate once per loop;
	// nothing may allocate per line.
	if allocs > 3 {
		t.Errorf("%v allocations for %d lines, want at most 3 per loop", allocs, n)
	}
}

func TestChunks(t *testing.T) {
	is := is.New(t)
	in := strings.Repeat("0123456789", 500)
	c := feed(t, defaultLimit, in[:7], in[7:4000], in[4000:])
	var got strings.Builder
	for chunk, err := range c.Chunks(testCtx(t), 64) {
		is.NoErr(err)
		is.True(len(chunk) > 0 && len(chunk) <= 64)
		got.Write(chunk)
	}
	is.Equal(got.String(), in)

	for _, err := range c.Chunks(testCtx(t), 0) {
		is.True(err != nil) // n < 1
	}
}

func TestLineChan(t *testing.T) {
	is := is.New(t)
	c := feed(t, defaultLimit, streamData)
	s := c.LineChan(testCtx(t))
	var got [][]byte
	for line := range s.C {
		got = append(got, line)
	}
	is.NoErr(s.Err())
	is.Equal(len(got), 3)
	// Values are owned copies: distinct arrays, intact after the stream ended.
	is.Equal(string(got[0]), "line1")
	is.Equal(string(got[2]), "line3")
	is.True(&got[0][0] != &got[1][0])
}

func TestLineChanError(t *testing.T) {
	is := is.New(t)
	c := feed(t, 4, "ok\ntoo long\n")
	s := c.LineChan(testCtx(t))
	var got []string
	for line := range s.C {
		got = append(got, string(line))
	}
	is.Equal(got, []string{"ok"})
	is.True(errors.Is(s.Err(), ErrLimitOverrun))
}

// A consumer that walks away with Stop ends the producer, even one blocked in a
// read on a silent peer.
func TestStreamStop(t *testing.T) {
	is := is.New(t)
	c := feedOpts(t, false, nil, "first\n")
	s := c.LineChan(context.Background())
	select {
	case line := <-s.C:
		is.Equal(string(line), "first")
	case <-time.After(testTimeout):
		t.Fatal("no line")
	}
	is.True(errors.Is(s.Stop(), context.Canceled))
	is.True(errors.Is(s.Stop(), context.Canceled)) // idempotent
	_, open := <-s.C
	is.True(!open)
}

func TestStreamContextEnds(t *testing.T) {
	is := is.New(t)
	c := feedOpts(t, false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s := c.ChunkChan(ctx, 16)
	for range s.C {
		t.Fatal("no data was sent")
	}
	is.True(errors.Is(s.Err(), context.DeadlineExceeded))
}

func TestChunkChanSelect(t *testing.T) {
	is := is.New(t)
	c := feed(t, defaultLimit, "abcdefgh")
	s := c.ChunkChan(testCtx(t), 3)
	var got string
	timeout := time.After(testTimeout)
	for done := false; !done; {
		select {
		case chunk, ok := <-s.C:
			if !ok {
				done = true
				break
			}
			got += string(chunk)
		case <-timeout:
			t.Fatal("stream did not end")
		}
	}
	is.NoErr(s.Err())
	is.Equal(got, "abcdefgh")
}

// Cancelling a blocked read returns ctx.Err() and loses no byte: the partial
// line that had arrived is there for the next call.
func TestCancelLosesNothing(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	_, err := peer.Write([]byte("partial"))
	is.NoErr(err)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.ReadLine(ctx)
	is.True(errors.Is(err, context.DeadlineExceeded))
	is.Equal(c.Buffered(), len("partial"))

	// A cancelled Lines loop yields ctx.Err() once and keeps the data too.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	for _, err := range c.Lines(ctx2) {
		is.True(errors.Is(err, context.Canceled))
	}

	_, err = peer.Write([]byte(" line\n"))
	is.NoErr(err)
	line, err := c.ReadLine(testCtx(t))
	is.NoErr(err)
	is.Equal(string(line), "partial line\n")
}

// The user's read deadline still applies after a context interrupted a read.
func TestCancelRestoresDeadline(t *testing.T) {
	is := is.New(t)
	c, _ := connPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.ReadLine(ctx)
	is.True(errors.Is(err, context.DeadlineExceeded))

	is.NoErr(c.SetReadDeadline(time.Now().Add(30 * time.Millisecond)))
	_, err = c.ReadLine(context.Background())
	var ne interface{ Timeout() bool }
	is.True(errors.As(err, &ne) && ne.Timeout())

	// And a read with no deadline and a live context blocks until data comes.
	is.NoErr(c.SetReadDeadline(time.Time{}))
}

func TestConcurrentReadFails(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		// Take the read lock, then block in a read. Until it has the lock, the
		// probes below may hold it: retry.
		close(started)
		for {
			_, err := c.ReadLine(testCtx(t))
			if !errors.Is(err, ErrConcurrentRead) {
				done <- err
				return
			}
			runtime.Gosched()
		}
	}()
	<-started
	// Wait until the first reader holds the lock; the second then fails at once.
	deadline := time.Now().Add(testTimeout)
	var err error
	for time.Now().Before(deadline) {
		// Until the reader holds the lock, this probe takes it and times out.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		_, err = c.ReadExactly(ctx, 1)
		cancel()
		if errors.Is(err, ErrConcurrentRead) {
			break
		}
	}
	is.True(errors.Is(err, ErrConcurrentRead))
	_, err = peer.Write([]byte("x\n"))
	is.NoErr(err)
	is.NoErr(<-done)
}

func TestReaderOverPipeCancel(t *testing.T) {
	// NewReader over an os.Pipe: cancellation interrupts the blocked read.
	is := is.New(t)
	pr, pw, err := os.Pipe()
	is.NoErr(err)
	defer pw.Close()
	defer pr.Close()
	r := NewReader(pr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err = r.ReadLine(ctx)
	is.True(errors.Is(err, context.DeadlineExceeded))
	fmt.Fprint(pw, "hello\n")
	line, err := r.ReadLine(testCtx(t))
	is.NoErr(err)
	is.Equal(string(line), "hello\n")
	pw.Close()
	_, err = r.ReadLine(testCtx(t))
	is.Equal(err, io.EOF)
}
