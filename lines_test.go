package sluice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/matryer/is"
)

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

// Lines already buffered when ReadLine is called keep the limit's rules: one
// as long as the limit is returned, one past it is an overrun (and dropped).
func TestReadLineBuffered(t *testing.T) {
	is := is.New(t)
	c := feed(t, 7, "ok\n1234567\n12345678\nend\n")
	ctx := testCtx(t)
	line, err := c.ReadLine(ctx) // reads them all
	is.NoErr(err)
	is.Equal(string(line), "ok\n")
	is.True(c.Buffered() > 0)
	line, err = c.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "1234567\n")
	is.Equal(cap(line), 8)
	line, err = c.ReadLine(ctx)
	is.True(errors.Is(err, ErrLimitOverrun))
	is.Equal(line, nil)
	line, err = c.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "end\n")
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

// Separators that end in the same byte are found with one scan for that byte
// (indexByTail): it finds what the search for each separator finds, ties
// broken the same way, on random data over a small alphabet.
func TestSepSetIndexByTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = "ab\r\n"[rng.IntN(4)]
		}
		return p
	}
	for range 20000 {
		k := 2 + rng.IntN(3)
		tail := "ab\r\n"[rng.IntN(4)]
		seps := make([][]byte, k)
		for i := range seps {
			seps[i] = append(word(rng.IntN(3)), tail)
		}
		data := word(rng.IntN(24))
		for _, preferLong := range []bool{false, true} {
			s, err := newSepSet(seps, preferLong)
			if err != nil {
				t.Fatal(err)
			}
			if !s.oneTail {
				t.Fatalf("%q: oneTail not set", seps)
			}
			st, e := s.index(data)
			generic := *s
			generic.oneTail = false
			wst, we := generic.index(data)
			if st != wst || e != we {
				t.Fatalf("index(%q) with %q (preferLong %v) = %d, %d; the search per separator gives %d, %d",
					data, seps, preferLong, st, e, wst, we)
			}
		}
	}
	s, err := newSepSet([][]byte{[]byte("\r\n"), []byte("x")}, false)
	if err != nil {
		t.Fatal(err)
	}
	if s.oneTail {
		t.Fatal("oneTail set for separators ending in different bytes")
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
	is.True(!lo.Found)
	is.Equal(lo.Error(), fmt.Sprintf("sluice: separator is not found, and chunk exceeds the limit (consumed %d bytes)", lo.Consumed))

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
	is.True(lo.Found) // asyncio says which it was
	is.Equal(lo.Error(), "sluice: separator is found, but chunk is longer than limit (consumed 9 bytes)")
}

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
			lines, errs := collectLines(t, &feed(t, tt.limit, tt.parts...).rd)
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
	lines, errs := collectLines(t, &c.rd)
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

// A Lines loop waiting for the rest of a line looks at ctx between reads, as
// NewReader promises for a reader that cannot be interrupted: once ctx has
// ended, no read starts, the loop yields ctx.Err(), and the part of the line
// already read stays buffered.
func TestLinesChecksCtxBetweenReads(t *testing.T) {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	r := NewReader(pr)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	type res struct {
		line string
		err  error
	}
	out := make(chan res, 1)
	go func() {
		for line, err := range r.Lines(ctx) {
			out <- res{string(line), err}
			break
		}
		close(out)
	}()
	if _, err := pw.Write([]byte("ab")); err != nil { // returns once the loop's read took it
		t.Fatal(err)
	}
	cancel()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		pw.Write([]byte("cd")) // a read that began before cancel may take this
		pw.Write([]byte("\n")) // but no read may start after ctx ended
	}()
	got := recv(t, out)
	if !errors.Is(got.err, context.Canceled) {
		t.Fatalf("Lines after cancel yielded %q, %v; want context.Canceled", got.line, got.err)
	}
	line, err := r.ReadLine(testCtx(t))
	if err != nil || string(line) != "abcd\n" {
		t.Fatalf("ReadLine after cancel: %q, %v", line, err)
	}
	recv(t, wrote)
}
