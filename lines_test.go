package sluice

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/matryer/is"
)

// The cases below port CPython's Lib/test/test_asyncio/test_streams.py reader
// tests onto real sockets: feed_data is a write by the peer, feed_eof its
// half-close, and "stream._buffer" is what a ReadAll finds afterwards.

const streamData = "line1\nline2\nline3\n"

func TestReadLine(t *testing.T) {
	tests := []struct {
		name     string
		limit    int
		parts    []string
		want     string
		wantErr  error
		wantRest string
	}{
		// test_readline
		{"waits for data", defaultLimit, []string{"chunk1 ", "chunk2 ", "chunk3 ", "\n chunk4"}, "chunk1 chunk2 chunk3 \n", nil, " chunk4"},
		// test_readline_nolimit_nowait
		{"buffered", defaultLimit, []string{streamData[:6], streamData[6:]}, "line1\n", nil, "line2\nline3\n"},
		// test_readline_eof
		{"partial at eof", defaultLimit, []string{"some data"}, "some data", nil, ""},
		// test_readline_empty_eof
		{"empty eof", defaultLimit, nil, "", io.EOF, ""},
		// test_readline_limit_with_existing_data, first half
		{"limit, newline buffered", 3, []string{"li", "ne1\nline2\n"}, "", ErrLimitOverrun, "line2\n"},
		// test_readline_limit: newline after the limit is cleaned through
		{"limit, newline later", 7, []string{"chunk1", "chunk2\n", "chunk3\n"}, "", ErrLimitOverrun, "chunk3\n"},
		// test_readline_limit: a single overlong line empties the buffer
		{"limit, one line", 7, []string{"chunk1", "chunk2", "chunk3\n"}, "", ErrLimitOverrun, ""},
		// test_readline_limit: strictness
		{"limit exactly", 7, []string{"1234567\n"}, "1234567\n", nil, ""},
		{"limit plus one", 7, []string{"12345678\n"}, "", ErrLimitOverrun, ""},
		{"limit plus one, no newline", 7, []string{"12345678"}, "", ErrLimitOverrun, ""},
		{"crlf kept", defaultLimit, []string{"a\r\nb"}, "a\r\n", nil, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			c := feed(t, tt.limit, tt.parts...)
			line, err := c.ReadLine(testCtx(t))
			if tt.wantErr != nil {
				is.True(errors.Is(err, tt.wantErr))
				is.Equal(line, nil)
			} else {
				is.NoErr(err)
				is.Equal(string(line), tt.want)
			}
			is.Equal(rest(t, c), tt.wantRest)
		})
	}
}

func TestReadLineByteAtATime(t *testing.T) {
	is := is.New(t)
	r := NewReader(iotest.OneByteReader(strings.NewReader(streamData)))
	ctx := testCtx(t)
	for _, want := range []string{"line1\n", "line2\n", "line3\n"} {
		line, err := r.ReadLine(ctx)
		is.NoErr(err)
		is.Equal(string(line), want)
	}
	_, err := r.ReadLine(ctx)
	is.Equal(err, io.EOF)
	is.True(r.AtEOF())
}

// test_readline_read_byte_count
func TestReadLineThenRead(t *testing.T) {
	is := is.New(t)
	c := feed(t, defaultLimit, streamData)
	_, err := c.ReadLine(testCtx(t))
	is.NoErr(err)
	p, err := c.ReadExactly(testCtx(t), 7)
	is.NoErr(err)
	is.Equal(string(p), "line2\nl")
	is.Equal(rest(t, c), "ine3\n")
}

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

func TestReadUntil(t *testing.T) {
	tests := []struct {
		name     string
		limit    int
		parts    []string
		seps     []string
		want     string
		wantErr  error
		wantRest string
	}{
		// test_readuntil_multi_chunks
		{"whole", defaultLimit, []string{"lineAAA"}, []string{"AAA"}, "lineAAA", nil, ""},
		{"leaves tail", defaultLimit, []string{"lineAAAxxx"}, []string{"AAA"}, "lineAAA", nil, "xxx"},
		// test_readuntil_multi_chunks_1
		{"split separator", defaultLimit, []string{"QWEaa", "XYaa", "a"}, []string{"aaa"}, "QWEaaXYaaa", nil, ""},
		{"split separator 2", defaultLimit, []string{"QWEaa", "XYa", "aa"}, []string{"aaa"}, "QWEaaXYaaa", nil, ""},
		{"only separator", defaultLimit, []string{"aaa"}, []string{"aaa"}, "aaa", nil, ""},
		{"byte per write", defaultLimit, []string{"XXX", "a", "a", "a"}, []string{"aaa"}, "XXXaaa", nil, ""},
		// test_readuntil_eof
		{"eof", defaultLimit, []string{"some dataAA"}, []string{"AAA"}, "", io.ErrUnexpectedEOF, ""},
		// test_readuntil_limit_found_sep: the data stays buffered
		{"limit, not found", 3, []string{"some dataAA"}, []string{"AAA"}, "", ErrLimitOverrun, "some dataAA"},
		{"limit, found", 3, []string{"some dataAAA"}, []string{"AAA"}, "", ErrLimitOverrun, "some dataAAA"},
		// several separators: the shortest result wins
		{"two, first wins", defaultLimit, []string{"a\r\nb\n"}, []string{"\n", "\r\n"}, "a\r\n", nil, "b\n"},
		{"two, earliest end", defaultLimit, []string{"xxAByyB"}, []string{"B", "AB"}, "xxAB", nil, "yyB"},
		{"two, split", defaultLimit, []string{"ab", "c", "d"}, []string{"cd", "zz"}, "abcd", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			c := feed(t, tt.limit, tt.parts...)
			var seps [][]byte
			for _, s := range tt.seps {
				seps = append(seps, []byte(s))
			}
			got, err := c.ReadUntil(testCtx(t), seps...)
			if tt.wantErr != nil {
				is.True(errors.Is(err, tt.wantErr))
			} else {
				is.NoErr(err)
				is.Equal(string(got), tt.want)
			}
			is.Equal(rest(t, c), tt.wantRest)
		})
	}
}

func TestReadUntilErrors(t *testing.T) {
	is := is.New(t)
	c := feed(t, 3, "some dataAA")
	ctx := testCtx(t)

	// test_readuntil_separator: an empty or missing separator consumes nothing.
	_, err := c.ReadUntil(ctx, []byte{})
	is.Equal(err, errEmptySeparator)
	_, err = c.ReadUntil(ctx)
	is.Equal(err, errNoSeparator)

	var lo *LimitOverrunError
	_, err = c.ReadUntil(ctx, []byte("AAA"))
	is.True(errors.As(err, &lo))
	is.True(lo.Consumed > 3) // no separator start in the first Consumed bytes

	c2 := feed(t, defaultLimit, "some dataAA")
	var ie *IncompleteReadError
	_, err = c2.ReadUntil(ctx, []byte("AAA"))
	is.True(errors.As(err, &ie))
	is.Equal(string(ie.Partial), "some dataAA")
	is.Equal(ie.Expected, -1)
	is.Equal(ie.Error(), "sluice: 11 bytes read on a total of undefined expected bytes")
}

func TestReadUntilLimitFoundConsumed(t *testing.T) {
	is := is.New(t)
	// All of it buffered before the call: the separator is found at 9.
	r := NewReader(strings.NewReader("some dataAAA"), WithLimit(3))
	var lo *LimitOverrunError
	_, err := r.ReadUntil(testCtx(t), []byte("AAA"))
	is.True(errors.As(err, &lo))
	is.Equal(lo.Consumed, 9)
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
	r := NewReader(io.MultiReader(strings.NewReader("line\n"), iotest.ErrReader(boom)))
	ctx := testCtx(t)
	line, err := r.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "line\n")
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
