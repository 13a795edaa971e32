package sluice

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
	"unsafe"

	"github.com/matryer/is"
)

// framePipe returns a reading Conn and a writing Conn connected by a socketpair.
func framePipe(t *testing.T, opts ...Option) (rd, wr *Conn) {
	t.Helper()
	a, b, err := Pipe(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Abort(); b.Abort() })
	return a, b
}

// send writes p to c and waits until it has reached the kernel.
func send(t *testing.T, c *Conn, p ...[]byte) {
	t.Helper()
	for _, b := range p {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// After one large frame, a Reader that goes on with small reads (Chunks, or
// Read, like Lines' buffered path, which does not give the buffer up) takes
// buffers of the usual size again: not one of the frame's size at every wait,
// which, too large for the pool, would be allocated each time.
func TestBigFrameThenSmallReads(t *testing.T) {
	for _, mode := range []string{"Chunks", "Read"} {
		t.Run(mode, func(t *testing.T) {
			is := is.New(t)
			rd, wr := framePipe(t)
			ctx := testCtx(t)
			big := bytes.Repeat([]byte("a"), 200<<10)
			send(t, wr, big, []byte("\nxyz")) // all in the kernel: one read brings the frame's end and "xyz"
			p, err := rd.ReadFrame(ctx, Delimited(1<<20, []byte("\n")))
			is.NoErr(err)
			is.Equal(len(p), len(big))
			is.Equal(rd.Buffered(), 3)
			is.True(len(rd.rd.buf) > 2*growBufSize) // the frame's buffer, larger than reads keep
			var got []string
			if mode == "Chunks" {
				for chunk, err := range rd.Chunks(ctx, 64) {
					is.NoErr(err)
					if got = append(got, string(chunk)); len(got) == 3 {
						break
					}
					send(t, wr, []byte("b"))
				}
			} else {
				buf := make([]byte, 64)
				n, err := rd.Read(buf)
				is.NoErr(err)
				got = append(got, string(buf[:n]))
				for len(got) < 3 { // reads that wait for their byte
					res := make(chan string, 1)
					go func() {
						n, err := rd.Read(buf)
						if err != nil {
							res <- err.Error()
						}
						res <- string(buf[:n])
					}()
					waitUntil(t, func() bool { return rd.reads.has(readerWaiting) })
					send(t, wr, []byte("b"))
					got = append(got, recv(t, res))
				}
			}
			is.Equal(got, []string{"xyz", "b", "b"})
			is.True(rd.rd.size <= growBufSize) // what reads take since they waited
			is.True(len(rd.rd.buf) <= growBufSize)
		})
	}
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	helloNetty = []byte("HELLO, WORLD") // Netty's Javadoc payload, 12 bytes
	helloTokio = []byte("Hello world")  // tokio-util's docs payload, 11 bytes
)

// lengthVectors are the documented examples of Netty's
// LengthFieldBasedFrameDecoder (its class Javadoc) and tokio-util's
// LengthDelimitedCodec (the length_delimited module docs), mapped as API.md says:
// Keep = lengthFieldOffset + lengthFieldLength - initialBytesToStrip (tokio's
// num_skip), Adjust = lengthAdjustment.
//
// Every Netty example maps: each strips either nothing or the whole header up to
// the end of the length field, and any strip up to there keeps trailing bytes.
// The two "derived" rows are Netty's example 6 with the strip its text suggests
// (0) and a strip of HDR1 only, which keeps the length field: a partial strip of
// the header maps as well.
//
// tokio's examples 2, 5 and 6 strip the whole header (Keep 0) and are vectors as
// they stand. Its examples 1, 3 and 4 use num_skip(0); their pictures (as in
// tokio-util 0.7 docs, before tokio#6638) are the rows below with the same
// parameters, but tokio's code counts length_adjustment from num_skip rather
// than from the end of the length field, so it does not produce them
// (tokio#4184, tokio#6604): the two libraries agree only at Keep 0. tokio's
// example 7 does not map at all: num_skip(4) past a 3-byte length field strips
// a body byte, a Keep of -1, while Keep counts header bytes kept.
var lengthVectors = []struct {
	name   string
	p      LengthPrefix
	wire   []byte // one frame as sent
	frame  []byte // as ReadFrame returns it
	header int    // Offset+Size: WriteFrame(wire[header:]) writes wire when Offset is 0
}{
	{"netty1 2-byte length, keep header", LengthPrefix{Size: 2, Keep: 2},
		cat(unhex("000C"), helloNetty), cat(unhex("000C"), helloNetty), 2},
	{"netty2 2-byte length, strip header", LengthPrefix{Size: 2},
		cat(unhex("000C"), helloNetty), helloNetty, 2},
	{"netty3 length counts itself", LengthPrefix{Size: 2, Adjust: -2, Keep: 2},
		cat(unhex("000E"), helloNetty), cat(unhex("000E"), helloNetty), 2},
	{"netty4 3-byte length after 2-byte header", LengthPrefix{Offset: 2, Size: 3, Keep: 5},
		cat(unhex("CAFE 00000C"), helloNetty), cat(unhex("CAFE 00000C"), helloNetty), 5},
	{"netty5 3-byte length before 2-byte header", LengthPrefix{Size: 3, Adjust: 2, Keep: 3},
		cat(unhex("00000C CAFE"), helloNetty), cat(unhex("00000C CAFE"), helloNetty), 3},
	{"netty6 length mid-header, strip HDR1 and length", LengthPrefix{Offset: 1, Size: 2, Adjust: 1},
		cat(unhex("CA 000C FE"), helloNetty), cat(unhex("FE"), helloNetty), 3},
	{"netty7 length mid-header counts whole message", LengthPrefix{Offset: 1, Size: 2, Adjust: -3},
		cat(unhex("CA 0010 FE"), helloNetty), cat(unhex("FE"), helloNetty), 3},
	{"netty6 derived, strip nothing", LengthPrefix{Offset: 1, Size: 2, Adjust: 1, Keep: 3},
		cat(unhex("CA 000C FE"), helloNetty), cat(unhex("CA 000C FE"), helloNetty), 3},
	{"netty6 derived, strip HDR1 only", LengthPrefix{Offset: 1, Size: 2, Adjust: 1, Keep: 2},
		cat(unhex("CA 000C FE"), helloNetty), cat(unhex("000C FE"), helloNetty), 3},

	{"tokio2 u16 length, strip header", LengthPrefix{Size: 2},
		cat(unhex("000B"), helloTokio), helloTokio, 2},
	{"tokio5 length mid-header", LengthPrefix{Offset: 1, Size: 2, Adjust: 1},
		cat(unhex("CA 000B FE"), helloTokio), cat(unhex("FE"), helloTokio), 3},
	{"tokio6 length mid-header counts whole frame", LengthPrefix{Offset: 1, Size: 2, Adjust: -3},
		cat(unhex("CA 000F FE"), helloTokio), cat(unhex("FE"), helloTokio), 3},
	{"tokio1 as drawn", LengthPrefix{Size: 2, Keep: 2},
		cat(unhex("000B"), helloTokio), cat(unhex("000B"), helloTokio), 2},
	{"tokio3 as drawn", LengthPrefix{Size: 2, Adjust: -2, Keep: 2},
		cat(unhex("000D"), helloTokio), cat(unhex("000D"), helloTokio), 2},
	{"tokio4 as drawn", LengthPrefix{Size: 3, Adjust: 2, Keep: 3},
		cat(unhex("00000B CAFE"), helloTokio), cat(unhex("00000B CAFE"), helloTokio), 3},
}

func TestLengthPrefixedVectors(t *testing.T) {
	for _, tc := range lengthVectors {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			rd, wr := framePipe(t)
			f := LengthPrefixed(tc.p)
			send(t, wr, tc.wire, tc.wire)
			is.NoErr(wr.WriteEOF())
			for range 2 {
				got, err := rd.ReadFrame(ctx, f)
				is.NoErr(err)
				is.Equal(got, tc.frame)
			}
			_, err := rd.ReadFrame(ctx, f)
			is.Equal(err, io.EOF)
		})
	}
}

func TestLengthPrefixedWritesVectors(t *testing.T) {
	for _, tc := range lengthVectors {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			rd, wr := framePipe(t)
			err := wr.WriteFrame(LengthPrefixed(tc.p), tc.wire[tc.header:])
			if tc.p.Offset > 0 {
				is.Equal(err, errWriteOffset) // tokio's encoder has no offset either
				return
			}
			is.NoErr(err)
			got, err := rd.ReadExactly(testCtx(t), len(tc.wire))
			is.NoErr(err)
			is.Equal(got, tc.wire)
		})
	}
}

// TestWriteFrameWire checks each header layout byte for byte, and that reading
// gives back the payload.
func TestWriteFrameWire(t *testing.T) {
	p300 := bytes.Repeat([]byte{'x'}, 300)
	tests := []struct {
		name    string
		f       Framing
		payload []byte
		wire    []byte
	}{
		{"tokio default u32", LengthPrefixed(LengthPrefix{}), []byte("hello world"), cat(unhex("0000000b"), []byte("hello world"))},
		{"tokio u16", LengthPrefixed(LengthPrefix{Size: 2}), []byte("hello world"), cat(unhex("000b"), []byte("hello world"))},
		{"u8", LengthPrefixed(LengthPrefix{Size: 1}), []byte("hi"), []byte("\x02hi")},
		{"u24 big endian", LengthPrefixed(LengthPrefix{Size: 3}), p300, cat(unhex("00012c"), p300)},
		{"u24 little endian", LengthPrefixed(LengthPrefix{Size: 3, LittleEndian: true}), p300, cat(unhex("2c0100"), p300)},
		{"u32 little endian", LengthPrefixed(LengthPrefix{LittleEndian: true}), p300, cat(unhex("2c010000"), p300)},
		{"u64 big endian", LengthPrefixed(LengthPrefix{Size: 8}), p300, cat(unhex("000000000000012c"), p300)},
		{"u64 little endian", LengthPrefixed(LengthPrefix{Size: 8, LittleEndian: true}), p300, cat(unhex("2c01000000000000"), p300)},
		{"u16 little endian counts itself", LengthPrefixed(LengthPrefix{Size: 2, LittleEndian: true, Adjust: -2}), []byte("hi"), []byte("\x04\x00hi")},
		{"empty payload", LengthPrefixed(LengthPrefix{}), []byte{}, unhex("00000000")},
		{"uvarint one byte", Uvarint(0), []byte("hi"), []byte("\x02hi")},
		{"uvarint two bytes", Uvarint(0), p300, cat(unhex("ac02"), p300)},
		{"uvarint empty", Uvarint(0), nil, []byte{0}},
		{"delimited first separator", Delimited(0, []byte("\r\n"), []byte("\n")), []byte("hi"), []byte("hi\r\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			rd, wr := framePipe(t)
			is.NoErr(wr.WriteFrame(tc.f, tc.payload))
			got, err := rd.ReadExactly(ctx, len(tc.wire))
			is.NoErr(err)
			is.Equal(got, tc.wire)

			is.NoErr(wr.WriteFrame(tc.f, tc.payload))
			frame, err := rd.ReadFrame(ctx, tc.f)
			is.NoErr(err)
			is.Equal(len(frame), len(tc.payload))
			is.True(bytes.Equal(frame, tc.payload))
		})
	}
}

func TestDelimited(t *testing.T) {
	tests := []struct {
		name   string
		seps   []string
		wire   string
		frames []string
	}{
		{"one separator", []string{"\n"}, "a\nbc\n\n", []string{"a", "bc", ""}},
		{"several separators", []string{"\r\n", "\n", "|"}, "a\r\nb\nc|d\n", []string{"a", "b", "c", "d"}},
		{"earliest end wins", []string{"xyz", "y"}, "axyzb y", []string{"ax", "zb "}},
		{"tie goes to the longest", []string{"\n", "\r\n"}, "a\r\nb\n", []string{"a", "b"}},
		{"multi-byte separator split across reads", []string{"--"}, "ab--cd--", []string{"ab", "cd"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			rd, wr := framePipe(t)
			var seps [][]byte
			for _, s := range tc.seps {
				seps = append(seps, []byte(s))
			}
			f := Delimited(16, seps...)
			for i := range len(tc.wire) { // one byte at a time
				send(t, wr, []byte{tc.wire[i]})
			}
			is.NoErr(wr.WriteEOF())
			var got []string
			for frame, err := range rd.Frames(ctx, f) {
				is.NoErr(err)
				got = append(got, string(frame))
			}
			is.Equal(got, tc.frames)
		})
	}
}

// TestFrameTooLarge sends an oversized frame, slowly, between two good ones:
// the error comes from the header, the body is never buffered, and the next
// frame reads normally.
func TestFrameTooLarge(t *testing.T) {
	const big = 1 << 20
	body := bytes.Repeat([]byte{'z'}, big)
	tests := []struct {
		name  string
		f     Framing
		frame func(p []byte) []byte
		size  int64 // the announced size the error reports
	}{
		{"length prefix", LengthPrefixed(LengthPrefix{Max: 64}),
			func(p []byte) []byte { return cat([]byte{0, byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p))}, p) }, big},
		{"length prefix counting itself", LengthPrefixed(LengthPrefix{Max: 64, Adjust: -4, Keep: 4}),
			func(p []byte) []byte { n := len(p) + 4; return cat([]byte{0, byte(n >> 16), byte(n >> 8), byte(n)}, p) }, big + 4},
		{"uvarint", Uvarint(64),
			func(p []byte) []byte { return cat(appendUvarint(nil, len(p)), p) }, big},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			rd, wr := framePipe(t)
			send(t, wr, tc.frame([]byte("before")))
			got, err := rd.ReadFrame(ctx, tc.f)
			is.NoErr(err)
			is.Equal(string(got[len(got)-6:]), "before")

			oversized := tc.frame(body)
			send(t, wr, oversized[:100]) // the header and a little of the body
			_, err = rd.ReadFrame(ctx, tc.f)
			is.True(errors.Is(err, ErrFrameTooLarge))
			var tooLarge *FrameTooLargeError
			is.True(errors.As(err, &tooLarge))
			is.Equal(tooLarge.Size, tc.size)
			is.Equal(tooLarge.Max, int64(64))
			is.True(strings.Contains(err.Error(), fmt.Sprint(tc.size))) // the announced size

			// The rest of the body arrives while the next frame is awaited.
			done := make(chan error, 1)
			go func() {
				for p := oversized[100:]; len(p) > 0; p = p[min(len(p), 8192):] {
					if _, err := wr.Write(p[:min(len(p), 8192)]); err != nil {
						done <- err
						return
					}
				}
				_, err := wr.Write(tc.frame([]byte("after")))
				done <- err
			}()
			got, err = rd.ReadFrame(ctx, tc.f)
			is.NoErr(err)
			is.Equal(string(got[len(got)-5:]), "after")
			is.NoErr(<-done)
			is.True(cap(rd.rd.buf) <= growBufSize) // the body was skipped, never buffered
		})
	}
}

func appendUvarint(b []byte, n int) []byte {
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}

// TestFrameTooLargeHuge announces sizes no one could allocate.
func TestFrameTooLargeHuge(t *testing.T) {
	tests := []struct {
		name   string
		f      Framing
		header []byte
		size   int64
	}{
		{"u64 length 2^62", LengthPrefixed(LengthPrefix{Size: 8}), unhex("4000000000000000"), 1 << 62},
		{"u64 length 2^64-1", LengthPrefixed(LengthPrefix{Size: 8, Adjust: 5}), unhex("ffffffffffffffff"), 1<<63 - 1},
		{"uvarint 2^63", Uvarint(0), unhex("80808080808080808001"), 1<<63 - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			rd, wr := framePipe(t)
			send(t, wr, tc.header, []byte("some of the body"))
			is.NoErr(wr.WriteEOF())
			_, err := rd.ReadFrame(ctx, tc.f)
			var tooLarge *FrameTooLargeError
			is.True(errors.As(err, &tooLarge))
			is.Equal(tooLarge.Size, tc.size)
			is.Equal(tooLarge.Max, int64(defaultMaxFrame))
			is.True(cap(rd.rd.buf) <= minPooled)
			_, err = rd.ReadFrame(ctx, tc.f) // the skip ends at EOF
			is.Equal(err, io.EOF)
		})
	}
}

func TestDelimitedTooLarge(t *testing.T) {
	t.Run("separator buffered", func(t *testing.T) {
		is := is.New(t)
		ctx := testCtx(t)
		rd, wr := framePipe(t)
		f := Delimited(8, []byte("\r\n"))
		send(t, wr, []byte("0123456789\r\nok\r\n"))
		_, err := rd.ReadFrame(ctx, f)
		var tooLarge *FrameTooLargeError
		is.True(errors.As(err, &tooLarge))
		is.Equal(tooLarge.Size, int64(10))
		is.Equal(tooLarge.Max, int64(8))
		got, err := rd.ReadFrame(ctx, f)
		is.NoErr(err)
		is.Equal(string(got), "ok")
	})
	t.Run("separator not yet arrived", func(t *testing.T) {
		is := is.New(t)
		ctx := testCtx(t)
		rd, wr := framePipe(t)
		f := Delimited(8, []byte("\r\n"))
		send(t, wr, []byte("0123456789abcdef\r"))
		for _, err := range rd.Frames(ctx, f) {
			is.True(errors.Is(err, ErrFrameTooLarge))
		}
		send(t, wr, []byte("more\r\nok\r\n"))
		got, err := rd.ReadFrame(ctx, f)
		is.NoErr(err)
		is.Equal(string(got), "ok")
	})
	t.Run("independent of the reader limit", func(t *testing.T) {
		is := is.New(t)
		ctx := testCtx(t)
		rd, wr := framePipe(t, WithLimit(4))
		send(t, wr, []byte("0123456789\n"))
		got, err := rd.ReadFrame(ctx, Delimited(16, []byte("\n")))
		is.NoErr(err)
		is.Equal(string(got), "0123456789")
	})
	t.Run("skipped frame ends at EOF", func(t *testing.T) {
		is := is.New(t)
		ctx := testCtx(t)
		rd, wr := framePipe(t)
		f := Delimited(4, []byte("---"))
		send(t, wr, []byte("0123456789--"))
		is.NoErr(wr.WriteEOF())
		_, err := rd.ReadFrame(ctx, f)
		is.True(errors.Is(err, ErrFrameTooLarge))
		// The "--" tail, kept in case the separator begins there, is never
		// read: Buffered and AtEOF do not count it.
		is.Equal(rd.Buffered(), 0)
		_, err = rd.ReadFrame(ctx, f) // the tail went with the frame
		is.Equal(err, io.EOF)
		is.True(rd.AtEOF())
	})
}

func TestFrameEOF(t *testing.T) {
	lp := LengthPrefixed(LengthPrefix{})
	tests := []struct {
		name     string
		f        Framing
		wire     string
		partial  string // "" for a clean EOF
		expected int
	}{
		{"length prefix clean", lp, "", "", 0},
		{"length prefix in header", lp, "\x00\x00", "\x00\x00", -1},
		{"length prefix in body", lp, "\x00\x00\x00\x05ab", "\x00\x00\x00\x05ab", 9},
		{"length prefix empty body", lp, "\x00\x00\x00\x00", "", 0},
		{"uvarint clean", Uvarint(0), "", "", 0},
		{"uvarint in header", Uvarint(0), "\x80", "\x80", -1},
		{"uvarint in body", Uvarint(0), "\x03a", "\x03a", 4},
		{"delimited clean", Delimited(0, []byte("\n")), "", "", 0},
		{"delimited unterminated", Delimited(0, []byte("\r\n")), "abc\r", "abc\r", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			rd, wr := framePipe(t)
			send(t, wr, []byte(tc.wire))
			is.NoErr(wr.WriteEOF())
			frame, err := rd.ReadFrame(ctx, tc.f)
			if tc.name == "length prefix empty body" {
				is.NoErr(err)
				is.Equal(frame, []byte{})
				frame, err = rd.ReadFrame(ctx, tc.f)
			}
			is.Equal(frame, nil)
			if tc.partial == "" {
				is.Equal(err, io.EOF)
				return
			}
			var incomplete *IncompleteReadError
			is.True(errors.As(err, &incomplete))
			is.Equal(string(incomplete.Partial), tc.partial)
			is.Equal(incomplete.Expected, tc.expected)
			is.True(errors.Is(err, io.ErrUnexpectedEOF))
			_, err = rd.ReadFrame(ctx, tc.f)
			is.Equal(err, io.EOF)
		})
	}
}

func TestFrameCorrupt(t *testing.T) {
	tests := []struct {
		name string
		f    Framing
		bad  []byte
		good []byte // a frame after the bad header; "ok" as payload
	}{
		{"uvarint overflow", Uvarint(0), unhex("ffffffffffffffffff02"), []byte("\x02ok")},
		{"uvarint too long", Uvarint(0), unhex("80808080808080808080"), []byte("\x02ok")},
		{"length below -Adjust", LengthPrefixed(LengthPrefix{Size: 2, Adjust: -2}), unhex("0001"), []byte("\x00\x04ok")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ctx := testCtx(t)
			rd, wr := framePipe(t)
			send(t, wr, tc.bad, tc.good)
			_, err := rd.ReadFrame(ctx, tc.f)
			is.True(errors.Is(err, ErrCorruptFrame))
			got, err := rd.ReadFrame(ctx, tc.f) // the bad header was skipped
			is.NoErr(err)
			is.Equal(string(got), "ok")
		})
	}
}

func TestFramesIterator(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	rd, wr := framePipe(t)
	f := LengthPrefixed(LengthPrefix{Size: 2})
	for _, s := range []string{"one", "two", "three", "four"} {
		is.NoErr(wr.WriteFrame(f, []byte(s)))
	}
	is.NoErr(wr.Flush(ctx))

	var got []string
	for frame, err := range rd.Frames(ctx, f) {
		is.NoErr(err)
		is.Equal(cap(frame), len(frame)) // appending to a view cannot clobber the next frame
		got = append(got, string(frame))
		if len(got) == 2 {
			break // loses nothing
		}
	}
	frame, err := rd.ReadFrame(ctx, f)
	is.NoErr(err)
	got = append(got, string(frame))
	is.NoErr(wr.WriteEOF())
	for frame, err := range rd.Frames(ctx, f) {
		is.NoErr(err)
		got = append(got, string(frame))
	}
	is.Equal(got, []string{"one", "two", "three", "four"})
}

func TestFrameChan(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	rd, wr := framePipe(t)
	f := Uvarint(0)
	for _, s := range []string{"a", "bb", "ccc"} {
		is.NoErr(wr.WriteFrame(f, []byte(s)))
	}
	is.NoErr(wr.WriteEOF())
	s := rd.FrameChan(ctx, f)
	var got [][]byte
	for frame := range s.C {
		got = append(got, frame)
	}
	is.NoErr(s.Err())
	is.Equal(got, [][]byte{[]byte("a"), []byte("bb"), []byte("ccc")}) // owned: none overwritten
}

// TestFrameCancel: a read cancelled mid-frame loses nothing.
func TestFrameCancel(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Framing
	}{
		{"length prefix", LengthPrefixed(LengthPrefix{})},
		{"uvarint", Uvarint(0)},
		{"delimited", Delimited(0, []byte("\n"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			rd, wr := framePipe(t)
			msg := bytes.Repeat([]byte("0123456789"), 100)
			wire := encodeFrame(tc.f, msg)
			for _, part := range [][]byte{wire[:1], wire[1 : len(wire)/2]} { // header cut, then half the body
				send(t, wr, part)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				_, err := rd.ReadFrame(ctx, tc.f)
				cancel()
				is.Equal(err, context.DeadlineExceeded)
			}
			send(t, wr, wire[len(wire)/2:])
			got, err := rd.ReadFrame(testCtx(t), tc.f)
			is.NoErr(err)
			is.Equal(got, msg)

			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err = rd.ReadFrame(ctx, tc.f)
			is.Equal(err, context.Canceled)
		})
	}
}

// encodeFrame returns the wire bytes WriteFrame sends for payload.
func encodeFrame(f Framing, payload []byte) []byte {
	h, err := f.encode(payload)
	if err != nil {
		panic(err)
	}
	return cat(h.buf[:h.n], payload, h.tail)
}

func TestWriteFrameErrors(t *testing.T) {
	tests := []struct {
		name    string
		f       Framing
		payload []byte
		want    error // matched with errors.Is, or nil for any error
	}{
		{"nil framing", nil, []byte("x"), errNilFraming},
		{"offset", LengthPrefixed(LengthPrefix{Offset: 1, Size: 2}), []byte("x"), errWriteOffset},
		{"over max", LengthPrefixed(LengthPrefix{Max: 4}), []byte("12345"), ErrFrameTooLarge},
		{"over max after adjust", LengthPrefixed(LengthPrefix{Max: 6, Adjust: -2}), []byte("12345"), ErrFrameTooLarge},
		{"over the field", LengthPrefixed(LengthPrefix{Size: 1}), make([]byte, 256), ErrFrameTooLarge},
		{"shorter than adjust", LengthPrefixed(LengthPrefix{Size: 2, Adjust: 2}), []byte("x"), nil},
		{"uvarint over max", Uvarint(2), []byte("abc"), ErrFrameTooLarge},
		{"delimited over max", Delimited(2, []byte("\n")), []byte("abc"), ErrFrameTooLarge},
		{"delimited separator inside", Delimited(0, []byte("\n")), []byte("a\nb"), errSepInPayload},
		{"delimited other separator inside", Delimited(0, []byte("\r\n"), []byte("|")), []byte("a|b"), errSepInPayload},
		{"delimited separator across the end", Delimited(0, []byte("aa")), []byte("xa"), errSepInPayload},
		{"delimited shorter separator ends first", Delimited(0, []byte("\r\n"), []byte("\r")), []byte("x"), nil},
		{"invalid size", LengthPrefixed(LengthPrefix{Size: 5}), []byte("x"), nil},
		{"invalid keep", LengthPrefixed(LengthPrefix{Size: 2, Keep: 3}), []byte("x"), nil},
		{"negative max", LengthPrefixed(LengthPrefix{Max: -1}), []byte("x"), nil},
		{"uvarint negative max", Uvarint(-1), []byte("x"), nil},
		{"delimited no separator", Delimited(0), []byte("x"), errNoSeparator},
		{"delimited empty separator", Delimited(0, []byte("\n"), nil), []byte("x"), errEmptySeparator},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			_, wr := framePipe(t)
			err := wr.WriteFrame(tc.f, tc.payload)
			is.True(err != nil)
			if tc.want != nil {
				is.True(errors.Is(err, tc.want))
			}
			is.Equal(wr.WriteBufferSize(), 0) // nothing queued
		})
	}
}

func TestInvalidFramingRead(t *testing.T) {
	for _, f := range []Framing{
		nil,
		LengthPrefixed(LengthPrefix{Size: 7}),
		LengthPrefixed(LengthPrefix{Offset: -1}),
		LengthPrefixed(LengthPrefix{Keep: -1}),
		LengthPrefixed(LengthPrefix{Size: 8, Max: math.MaxInt - 8, Adjust: 16}), // header + Max + Adjust overflows an int
		Uvarint(-5),
		Delimited(-1, []byte("\n")),
		Delimited(10),
	} {
		is := is.New(t)
		rd, wr := framePipe(t)
		send(t, wr, []byte("\x00\x00\x00\x00\n"))
		_, err := rd.ReadFrame(testCtx(t), f)
		is.True(err != nil)
		for _, err := range rd.Frames(testCtx(t), f) {
			is.True(err != nil)
		}
		frame, err := rd.ReadFrame(testCtx(t), LengthPrefixed(LengthPrefix{}))
		is.NoErr(err) // nothing was consumed: the empty frame is still there
		is.Equal(frame, []byte{})
	}
}

// TestReadFrameLarge: a frame larger than the buffer needs is read whole, and
// the buffer grown for it is handed over rather than copied and kept.
func TestReadFrameLarge(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	rd, wr := framePipe(t)
	f := LengthPrefixed(LengthPrefix{})
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB
	is.NoErr(wr.WriteFrame(f, big))                        // an empty queue admits any write
	got, err := rd.ReadFrame(ctx, f)
	is.NoErr(err)
	is.True(bytes.Equal(got, big))
	is.Equal(cap(got), len(got))
	is.Equal(len(rd.rd.buf), 0) // handed over, nothing else was buffered
	is.NoErr(wr.WriteFrame(f, []byte("small")))
	got, err = rd.ReadFrame(ctx, f)
	is.NoErr(err)
	is.Equal(string(got), "small")
}

// TestFramesDataWithEOF reads through a reader that returns the last data
// together with io.EOF.
func TestFramesDataWithEOF(t *testing.T) {
	is := is.New(t)
	wire := []byte("\x00\x02hi\x00\x03abc\x00\x00")
	for _, f := range []Framing{LengthPrefixed(LengthPrefix{Size: 2})} {
		r := NewReader(iotest.DataErrReader(iotest.OneByteReader(bytes.NewReader(wire))))
		var got []string
		for frame, err := range r.Frames(testCtx(t), f) {
			is.NoErr(err)
			got = append(got, string(frame))
		}
		is.Equal(got, []string{"hi", "abc", ""})
		r = NewReader(iotest.DataErrReader(bytes.NewReader(wire)))
		frame, err := r.ReadFrame(testCtx(t), f)
		is.NoErr(err)
		is.Equal(string(frame), "hi")
	}
}

// TestFramesAllocs: once the buffer has grown, a step allocates nothing.
func TestFramesAllocs(t *testing.T) {
	is := is.New(t)
	f := LengthPrefixed(LengthPrefix{})
	frame := cat(unhex("00000080"), bytes.Repeat([]byte{'x'}, 128))
	r := NewReader(&repeatReader{block: bytes.Repeat(frame, 64)})
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := r.nextFrame(ctx, f); err != nil {
			t.Fatal(err)
		}
	})
	is.Equal(allocs, 0.0)
}

// repeatReader returns block over and over.
type repeatReader struct {
	block []byte
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.block[r.off:])
	r.off = (r.off + n) % len(r.block)
	return n, nil
}

// Memory follows the bytes received, never what a header claims: 100
// connections each sending a 4-byte header announcing 8 MiB (the default
// maximum) cost next to nothing while the bodies do not come.
func TestHostileHeaderAllocatesNothing(t *testing.T) {
	for _, mode := range []string{"ReadFrame", "Frames", "ReadExactly"} {
		t.Run(mode, func(t *testing.T) {
			is := is.New(t)
			const conns = 100
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], 8<<20-1)
			readers := make([]*Conn, conns)
			for i := range readers {
				rd, peer, err := Pipe()
				is.NoErr(err)
				t.Cleanup(func() { rd.Abort(); peer.Abort() })
				_, err = peer.NetConn().Write(hdr[:])
				is.NoErr(err)
				readers[i] = rd
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			started := make(chan struct{}, conns)
			for _, rd := range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					started <- struct{}{}
					switch mode {
					case "ReadFrame":
						rd.ReadFrame(ctx, LengthPrefixed(LengthPrefix{}))
					case "Frames":
						for range rd.Frames(ctx, LengthPrefixed(LengthPrefix{})) {
						}
					case "ReadExactly":
						rd.ReadExactly(ctx, 8<<20)
					}
				}()
			}
			for range conns {
				recv(t, started)
			}
			for _, rd := range readers { // each has read its header and waits for the body
				waitUntil(t, func() bool { return rd.Stats().BytesRead >= 4 })
			}
			runtime.ReadMemStats(&after)
			cancel()
			wg.Wait()
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d connections holding a hostile header: %d bytes allocated", conns, allocated)
			is.True(allocated < 4<<20) // not 100 × 8 MiB
		})
	}
}

// Discarding an oversized Delimited frame does not grow the buffer.
func TestDelimitedOverrunMemory(t *testing.T) {
	is := is.New(t)
	const max = 1 << 20
	rd, wr, err := Pipe()
	is.NoErr(err)
	defer rd.Abort()
	defer wr.Abort()
	go func() {
		wr.NetConn().Write(bytes.Repeat([]byte("x"), 8*max))
		wr.NetConn().Write([]byte("\nnext\n"))
	}()
	f := Delimited(max, []byte("\n"))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = rd.ReadFrame(testCtx(t), f)
	is.True(errors.Is(err, ErrFrameTooLarge))
	frame, err := rd.ReadFrame(testCtx(t), f)
	is.NoErr(err)
	is.Equal(string(frame), "next")
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("discarding an %d-byte frame with max %d allocated %d bytes", 8*max, max, allocated)
	is.True(allocated < 3*max)
}

// ReadFrame hands over a buffer grown for a large frame rather than copy it,
// but not to a small frame that happens to empty a buffer grown for an earlier
// one: keeping the small frame would keep the whole buffer alive.
func TestReadFrameSmallFrameGetsACopy(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	rd, wr := framePipe(t)
	f := Delimited(0, []byte("\n"))
	const big = 3 << 19 // 1.5 MiB: the buffer grows to 2 MiB for it
	// The big frame's end and a small frame in one write, so the small frame
	// lands in the big frame's buffer.
	go wr.Writev(bytes.Repeat([]byte{'a'}, big), []byte("\nhi\n"))
	first, err := rd.ReadFrame(ctx, f)
	is.NoErr(err)
	is.Equal(len(first), big)
	buf := rd.rd.buf
	is.True(len(buf) > 1<<20)
	small, err := rd.ReadFrame(ctx, f)
	is.NoErr(err)
	is.Equal(string(small), "hi")
	is.True(rd.rd.buf == nil) // given up with the frame that emptied it
	at := uintptr(unsafe.Pointer(unsafe.SliceData(small))) - uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	is.True(at >= uintptr(len(buf))) // not a view into it
}

// Delimited's invalid maximum is WriteFrame's error too, as ReadFrame's.
func TestDelimitedNegativeMaxOnWrite(t *testing.T) {
	is := is.New(t)
	rd, wr := framePipe(t)
	f := Delimited(-1, []byte("\n"))
	send(t, wr, []byte("x\n"))
	_, rerr := rd.ReadFrame(testCtx(t), f)
	werr := wr.WriteFrame(f, nil)
	is.True(rerr != nil)
	is.Equal(werr, rerr)
	is.True(!errors.Is(werr, ErrFrameTooLarge))
}

// "Memory per connection follows the bytes actually received, never what a
// header claims": a peer that announces a frame of about 1 MiB and sends
// 256 KiB of it (and one byte more) must not make the Reader hold a buffer of
// the announced size. Doubling as bytes arrive holds 2x what was received.
func TestBufferGrowthFollowsBytesReceived(t *testing.T) {
	const (
		conns = 20
		total = 1<<20 - 1   // the frame on the wire, header included
		sent  = 256<<10 + 1 // what the peer sends of it
	)
	for _, mode := range []string{"ReadFrame", "ReadExactly"} {
		t.Run(mode, func(t *testing.T) {
			readers := make([]*Conn, conns)
			for i := range readers {
				rd, peer, err := Pipe()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { rd.Abort(); peer.Abort() })
				wire := make([]byte, sent)
				binary.BigEndian.PutUint32(wire, total-4)
				go peer.NetConn().Write(wire)
				readers[i] = rd
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			ctx, cancel := context.WithCancel(testCtx(t))
			var wg sync.WaitGroup
			for _, rd := range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if mode == "ReadFrame" {
						rd.ReadFrame(ctx, LengthPrefixed(LengthPrefix{}))
					} else {
						rd.ReadExactly(ctx, total)
					}
				}()
			}
			for _, rd := range readers { // every byte sent is in the buffer
				waitUntil(t, func() bool { return rd.Stats().BytesRead == sent })
			}
			runtime.ReadMemStats(&after)
			cancel()
			wg.Wait()
			held := 0
			for _, rd := range readers {
				held += cap(rd.rd.buf)
			}
			t.Logf("%d connections, %d bytes received each: buffers hold %d bytes (%.1fx), %d bytes allocated",
				conns, sent, held, float64(held)/float64(conns*sent), after.TotalAlloc-before.TotalAlloc)
			if 4*held > 9*conns*sent { // 2.25x: doubling, and a little past it to reach the frame's size
				t.Fatalf("buffers hold %d bytes for %d received: more than 2.25 times", held, conns*sent)
			}
		})
	}
}
