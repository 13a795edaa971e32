package sluice

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/matryer/is"
)

// test_at_eof
func TestAtEOF(t *testing.T) {
	is := is.New(t)
	c := feed(t, defaultLimit, "some data\n")
	is.True(!c.AtEOF())
	_, err := c.ReadLine(testCtx(t))
	is.NoErr(err)
	_, err = c.ReadLine(testCtx(t))
	is.Equal(err, io.EOF)
	is.True(c.AtEOF())
}

// A lone small result, as a request/response or idle Conn takes between
// waits, is allocated alone: the Conn keeps no block of small results. From
// the second one since the Reader last waited (a stream of frame headers),
// they are carved from one block.
func TestSmallResults(t *testing.T) {
	is := is.New(t)
	r := NewReader(strings.NewReader("ab\ncd\nef\n"))
	ctx := testCtx(t)
	line, err := r.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "ab\n")
	is.Equal(cap(line), 3)
	is.True(r.small == nil) // the first: alone

	line, err = r.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "cd\n")
	is.Equal(cap(line), 3)
	is.Equal(len(r.small), smallBlock-3) // the second: from a block
	line, err = r.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "ef\n")
	is.Equal(len(r.small), smallBlock-6) // and the third from the same one
}

func TestReadExactly(t *testing.T) {
	ctx := testCtx(t)
	t.Run("zero and negative", func(t *testing.T) { // test_readexactly_zero_or_less
		is := is.New(t)
		c := feed(t, defaultLimit, streamData)
		p, err := c.ReadExactly(ctx, 0)
		is.NoErr(err)
		is.Equal(len(p), 0)
		_, err = c.ReadExactly(ctx, -1)
		is.True(err != nil)
		is.Equal(rest(t, c), streamData)
	})
	t.Run("across writes", func(t *testing.T) { // test_readexactly
		is := is.New(t)
		c := feed(t, defaultLimit, streamData, streamData, streamData)
		p, err := c.ReadExactly(ctx, 2*len(streamData))
		is.NoErr(err)
		is.Equal(string(p), streamData+streamData)
		is.Equal(rest(t, c), streamData)
	})
	t.Run("not bounded by the limit", func(t *testing.T) { // test_readexactly_limit
		is := is.New(t)
		c := feed(t, 3, "chunk")
		p, err := c.ReadExactly(ctx, 5)
		is.NoErr(err)
		is.Equal(string(p), "chunk")
	})
	t.Run("eof", func(t *testing.T) { // test_readexactly_eof
		is := is.New(t)
		c := feed(t, defaultLimit, streamData)
		_, err := c.ReadExactly(ctx, 2*len(streamData))
		var ie *IncompleteReadError
		is.True(errors.As(err, &ie))
		is.Equal(string(ie.Partial), streamData)
		is.Equal(ie.Expected, 36)
		is.Equal(ie.Error(), "sluice: 18 bytes read on a total of 36 expected bytes")
		is.True(errors.Is(err, io.ErrUnexpectedEOF))
		is.Equal(rest(t, c), "")
	})
	t.Run("eof with nothing", func(t *testing.T) {
		is := is.New(t)
		c := feed(t, defaultLimit)
		_, err := c.ReadExactly(ctx, 4)
		is.True(errors.Is(err, io.EOF))
	})
	t.Run("buffered frames", func(t *testing.T) {
		// Headers and payloads taken from the buffer: each result its own
		// copy, capacity its length.
		is := is.New(t)
		var all strings.Builder
		for i := range 200 {
			body := strings.Repeat(string(rune('a'+i%26)), 100+i%40)
			all.WriteString(fmt.Sprintf("%04d%s", len(body), body))
		}
		c := feed(t, defaultLimit, all.String())
		var got [][]byte
		for range 200 {
			hdr, err := c.ReadExactly(ctx, 4)
			is.NoErr(err)
			is.Equal(cap(hdr), 4)
			n, err := strconv.Atoi(string(hdr))
			is.NoErr(err)
			p, err := c.ReadExactly(ctx, n)
			is.NoErr(err)
			is.Equal(cap(p), n)
			got = append(got, append(hdr, p...))
			clear(hdr) // the caller's: the next results do not see it
			clear(p)
		}
		is.Equal(string(bytes.Join(got, nil)), all.String())
		_, err := c.ReadExactly(ctx, 1)
		is.True(errors.Is(err, io.EOF))
	})
	t.Run("buffered, after close", func(t *testing.T) {
		// Close fails later reads even with data still buffered.
		is := is.New(t)
		c := feedOpts(t, false, nil, streamData)
		p, err := c.ReadExactly(ctx, 4)
		is.NoErr(err)
		is.Equal(string(p), streamData[:4])
		is.True(c.Buffered() > 4)
		is.NoErr(c.Close())
		_, err = c.ReadExactly(ctx, 4)
		is.True(errors.Is(err, net.ErrClosed))
	})
	t.Run("large", func(t *testing.T) {
		is := is.New(t)
		big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
		c := feed(t, defaultLimit, big[:1000], big[1000:], "tail")
		p, err := c.ReadExactly(ctx, len(big))
		is.NoErr(err)
		is.True(string(p) == big)
		is.Equal(rest(t, c), "tail")
	})
}

func TestReadAndReadAll(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	// test_read_line_breaks, test_read_until_eof
	c := feed(t, 3, "line1", "line2", "chunk1\n", "chunk2")
	p := make([]byte, 5)
	_, err := io.ReadFull(c, p)
	is.NoErr(err)
	is.Equal(string(p), "line1")
	all, err := c.ReadAll(ctx)
	is.NoErr(err)
	is.Equal(string(all), "line2chunk1\nchunk2")
	// test_read_eof: at EOF Read returns io.EOF and ReadAll an empty slice.
	n, err := c.Read(p)
	is.Equal(n, 0)
	is.Equal(err, io.EOF)
	all, err = c.ReadAll(ctx)
	is.NoErr(err)
	is.Equal(len(all), 0)
	is.True(c.AtEOF())
}

// test_readline_exception, test_read_exception: a connection error sticks, after
// what was buffered has been read.
func TestReadErrorSticks(t *testing.T) {
	is := is.New(t)
	boom := errors.New("boom")
	// "partial" comes with "line\n", before the error: once a read has
	// returned the error, no read hands it out.
	r := NewReader(io.MultiReader(strings.NewReader("line\npartial"), iotest.ErrReader(boom)))
	ctx := testCtx(t)
	line, err := r.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "line\n")
	is.Equal(r.Buffered(), len("partial"))
	for i := 0; i < 3; i++ {
		_, err = r.ReadLine(ctx)
		is.Equal(err, boom)
	}
	_, err = r.ReadExactly(ctx, 2)
	is.Equal(err, boom)
	_, err = r.Read(make([]byte, 4))
	is.Equal(err, boom)
}

func TestInvalidLimit(t *testing.T) { // test_invalid_limit
	for _, n := range []int{0, -1} {
		_, _, err := Pipe(WithLimit(n))
		if err == nil || !strings.Contains(err.Error(), "limit") {
			t.Errorf("WithLimit(%d): got %v, want a limit error", n, err)
		}
	}
}

func TestErrorIdentities(t *testing.T) {
	is := is.New(t)
	is.True(errors.Is(&LimitOverrunError{Consumed: 3}, ErrLimitOverrun))
	is.True(errors.Is(&IncompleteReadError{Partial: []byte("x"), Expected: 3}, io.ErrUnexpectedEOF))
	is.True(!errors.Is(&IncompleteReadError{Partial: []byte("x"), Expected: 3}, io.EOF))
	is.True(errors.Is(&IncompleteReadError{Expected: 3}, io.EOF))
	is.True(errors.Is(&FrameTooLargeError{Size: 10, Max: 1}, ErrFrameTooLarge))
	is.True(bytes.Contains([]byte((&FrameTooLargeError{Size: 10, Max: 1}).Error()), []byte("10")))
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

// A Read made while an iterator loop runs fails at once instead of waiting
// for the loop's end: from the loop's own body, waiting would never end.
func TestReadDuringLoopFails(t *testing.T) {
	is := is.New(t)
	c := feed(t, 64<<10, "len 5\n", "hello")
	done := make(chan error, 1)
	go func() {
		res := errors.New("no line")
		for line, err := range c.Lines(testCtx(t)) {
			if err == nil && string(line) == "len 5" {
				_, err = c.Read(make([]byte, 5)) // the body of a header loop reading a body
			}
			res = err
			break
		}
		done <- res // the loop has ended
	}()
	is.True(errors.Is(recv(t, done), ErrConcurrentRead))

	// Once the loop has ended, Read reads.
	got := make([]byte, 5)
	_, err := io.ReadFull(c, got)
	is.NoErr(err)
	is.Equal(string(got), "hello")
}

// ReadExactly(ctx, 0) returns at once, even with the rest of an oversized line
// still to be skipped and not yet arrived.
func TestReadExactlyZeroWithSkipPending(t *testing.T) {
	is := is.New(t)
	c := feedOpts(t, false, []Option{WithLimit(4)}, "0123456789") // no newline: the skip waits for one
	for _, err := range c.Lines(testCtx(t)) {
		var le *LimitOverrunError
		is.True(errors.As(err, &le))
		break
	}
	p, err := c.ReadExactly(testCtx(t), 0)
	is.NoErr(err) // ctx's end here: it waited for the skip
	is.True(p != nil && len(p) == 0)
}

// A Read that bypasses the buffer (into a p at least the buffer's size) and
// finds the end of the stream leaves it seen, as a buffered Read does: AtEOF
// reports it, and later reads return io.EOF without reading again.
func TestDirectReadEOFSticks(t *testing.T) {
	is := is.New(t)
	src := &countingReader{r: strings.NewReader("abc")}
	r := NewReader(src)
	p := make([]byte, 64<<10)
	var got []byte
	for {
		n, err := r.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		is.NoErr(err)
	}
	is.Equal(string(got), "abc")
	is.True(r.AtEOF())
	reads := src.reads
	n, err := r.Read(p)
	is.Equal(n, 0)
	is.Equal(err, io.EOF)
	is.Equal(src.reads, reads) // the end is remembered, not read again
}

// A buffer of the usual size is kept when reads empty it, whatever the limit:
// twice the largest limit would overflow an int.
func TestLargeLimitKeepsBuffer(t *testing.T) {
	is := is.New(t)
	r := NewReader(strings.NewReader("a\nb\n"), WithLimit(math.MaxInt))
	for _, want := range []string{"a\n", "b\n"} {
		line, err := r.ReadLine(testCtx(t))
		is.NoErr(err)
		is.Equal(string(line), want)
	}
	is.True(r.buf != nil) // emptied, not given up
}

// countingReader counts the reads made of r.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
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

// emptyReader returns no data and no error, forever.
type emptyReader struct{ calls int }

func (r *emptyReader) Read([]byte) (int, error) { r.calls++; return 0, nil }

// A stream that returns (0, nil) forever does not make a read spin: after a
// bounded number of empty reads it fails with io.ErrNoProgress, as bufio does.
func TestReadNoProgress(t *testing.T) {
	is := is.New(t)
	for name, read := range map[string]func(r *Reader) error{
		"ReadLine":    func(r *Reader) error { _, err := r.ReadLine(testCtx(t)); return err },
		"ReadExactly": func(r *Reader) error { _, err := r.ReadExactly(testCtx(t), 4); return err },
		"Read":        func(r *Reader) error { _, err := r.Read(make([]byte, 4)); return err },
	} {
		src := &emptyReader{}
		err := read(NewReader(src))
		is.True(errors.Is(err, io.ErrNoProgress)) // name
		is.True(src.calls <= maxEmptyReads+1)     // name
		_ = name
	}
}

// Lines, Chunks and Frames yield views with cap == len: appending to one
// copies instead of overwriting what follows.
func TestViewsCapEqualsLen(t *testing.T) {
	is := is.New(t)
	c := feed(t, 64<<10, "one\ntwo\nthree\n")
	var got []string
	for line, err := range c.Lines(testCtx(t)) {
		is.NoErr(err)
		is.Equal(cap(line), len(line))
		reply := append(line, " ok"...) // as doc.go's server once did
		got = append(got, string(reply))
	}
	is.Equal(got, []string{"one ok", "two ok", "three ok"})

	c = feed(t, 64<<10, "abcdef")
	for chunk, err := range c.Chunks(testCtx(t), 2) {
		is.NoErr(err)
		is.Equal(cap(chunk), len(chunk))
		_ = append(chunk, "!!"...)
	}

	rd, wr, err := Pipe()
	is.NoErr(err)
	defer rd.Abort()
	defer wr.Abort()
	f := LengthPrefixed(LengthPrefix{})
	for _, p := range []string{"first", "second"} {
		is.NoErr(wr.WriteFrame(f, []byte(p)))
	}
	is.NoErr(wr.WriteEOF())
	var frames []string
	for frame, err := range rd.Frames(testCtx(t), f) {
		is.NoErr(err)
		is.Equal(cap(frame), len(frame))
		frames = append(frames, string(append(frame, "XXXXXXXX"...)))
	}
	is.Equal(frames, []string{"firstXXXXXXXX", "secondXXXXXXXX"})
}

// scriptedReader returns its parts one per Read, panicking where a part is
// nil, then io.EOF.
type scriptedReader struct{ parts [][]byte }

func (s *scriptedReader) Read(p []byte) (int, error) {
	if len(s.parts) == 0 {
		return 0, io.EOF
	}
	part := s.parts[0]
	s.parts = s.parts[1:]
	if part == nil {
		panic("source broke")
	}
	return copy(p, part), nil
}

// A NewReader's io.Reader may panic (readExactly's comment: the read lock "is
// released when readExactly returns or a read panics"). A panic in the read
// that skips the rest of an oversized frame leaves the lock held for good:
// every later read fails with ErrConcurrentRead, and Read waits forever.
func TestReaderPanicWhileSkippingReleasesLock(t *testing.T) {
	hdr := binary.BigEndian.AppendUint32(nil, 100) // a 100-byte frame, over Max
	r := NewReader(&scriptedReader{parts: [][]byte{append(hdr, "xx"...), nil}})
	f := LengthPrefixed(LengthPrefix{Max: 10})
	ctx := testCtx(t)
	if _, err := r.ReadFrame(ctx, f); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("first ReadFrame: %v", err)
	}
	func() { // the skip reads on, and the source panics
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		r.ReadFrame(ctx, f)
	}()
	if _, err := r.ReadFrame(ctx, f); errors.Is(err, ErrConcurrentRead) {
		t.Errorf("ReadFrame after the panic: %v: the read lock is still held", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Read(make([]byte, 10))
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Read blocked for good after the panic") // goroutine left behind: goleak reports it too
	}
}

// A ctx that ends after its read returned leaves nothing behind that a zero
// SetReadDeadline does not clear: the socket's own reads (NetConn) work.
func TestSetReadDeadlineAfterStaleCtx(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	_, err := peer.Write([]byte("a\n"))
	is.NoErr(err)
	_, err = c.ReadLine(ctx)
	is.NoErr(err)
	cancel() // the read is over; the Conn's watch still fires
	waitUntil(t, func() bool { c.rd.dmu.Lock(); defer c.rd.dmu.Unlock(); return c.rd.interrupted })
	is.NoErr(c.SetReadDeadline(time.Time{}))
	_, err = peer.Write([]byte("b"))
	is.NoErr(err)
	p := make([]byte, 1)
	_, err = c.NetConn().Read(p)
	is.NoErr(err)
	is.Equal(string(p), "b")
}

// A connection error is sticky for ReadExactly(ctx, 0) too, as asyncio's
// readexactly raises it before looking at n; EOF is not an error there.
func TestReadExactlyZeroAfterReset(t *testing.T) {
	is := is.New(t)
	c, peer := connPair(t)
	is.NoErr(peer.(*net.TCPConn).SetLinger(0))
	peer.Close() // a reset
	_, err := c.ReadExactly(testCtx(t), 1)
	is.True(isReset(err))
	p, err := c.ReadExactly(testCtx(t), 0)
	is.True(isReset(err))
	is.Equal(len(p), 0)
}
