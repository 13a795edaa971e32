package sluice

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"testing"
)

// fuzzFramings are the framings FuzzFrames picks from, with small maxima so
// hostile headers are common. Each has a naive reference decoder below.
var fuzzFramings = []struct {
	lp   *LengthPrefix // nil for the others
	max  int           // Uvarint's or Delimited's
	seps [][]byte      // Delimited's
}{
	{lp: &LengthPrefix{Max: 64}},
	{lp: &LengthPrefix{Size: 1, Max: 200}},
	{lp: &LengthPrefix{Size: 2, LittleEndian: true, Adjust: -2, Keep: 2, Max: 100}},
	{lp: &LengthPrefix{Offset: 1, Size: 3, Adjust: 1, Keep: 2, Max: 64}},
	{lp: &LengthPrefix{Size: 8, Adjust: 3, Max: 40}},
	{max: 100}, // Uvarint
	{max: 16, seps: [][]byte{[]byte("\r\n"), []byte("\n")}},
	{max: 8, seps: [][]byte{[]byte("--"), []byte("-|"), []byte("|")}},
}

func fuzzFraming(mode byte) (Framing, int) {
	i := int(mode) % len(fuzzFramings)
	ff := fuzzFramings[i]
	switch {
	case ff.lp != nil:
		return LengthPrefixed(*ff.lp), i
	case ff.seps == nil:
		return Uvarint(ff.max), i
	}
	return Delimited(ff.max, ff.seps...), i
}

// FuzzFrames checks every framing two ways over a real socket pair, with the
// bytes re-chunked on the wire as the fuzzer chooses:
//   - payloads cut from data are framed (by WriteFrame's encoder) and read back
//     identical, with Frames;
//   - data itself, arbitrary bytes, is read with ReadFrame, and with Frames,
//     and must give what a naive reference decoder gives, without panics and without allocating for
//     announced sizes: no frame is longer than the maximum allows, and the
//     buffer stays small.
func FuzzFrames(f *testing.F) {
	f.Add(byte(0), []byte{1}, []byte("\x00\x00\x00\x05hello\x00\x00\x00\x00"))
	f.Add(byte(0), []byte{3, 200}, cat([]byte("\x00\x00\x00\x50"), bytes.Repeat([]byte("skip"), 20), []byte("\x00\x00\x00\x02ok")))
	f.Add(byte(1), []byte{2}, []byte("\x03abc\xffxyz\x01!"))
	f.Add(byte(2), []byte{1, 5}, []byte("\x04\x00hi\x01\x00\x05\x00abc"))
	f.Add(byte(3), []byte{7}, []byte("\xca\x00\x00\x02\xfeab\xca\x00\x00\x50"))
	f.Add(byte(4), []byte{4}, []byte("\xff\xff\xff\xff\xff\xff\xff\xffxx\x00\x00\x00\x00\x00\x00\x00\x01a"))
	f.Add(byte(5), []byte{1}, cat([]byte("\x02hi\x65"), bytes.Repeat([]byte{'s'}, 101), []byte("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02ok\x80")))
	f.Add(byte(5), []byte{9}, []byte("\x00\x01a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"))
	f.Add(byte(6), []byte{1, 2, 3}, []byte("a\r\nb\n\r\n0123456789abcdefgh\nok\npartial\r"))
	f.Add(byte(7), []byte{2}, []byte("a--b-|c|0123456789|x-"))
	f.Add(byte(7), []byte{5}, []byte("0123456789-"))
	f.Fuzz(func(t *testing.T, mode byte, chunks, data []byte) {
		fr, i := fuzzFraming(mode)
		roundTrip(t, fr, i, chunks, data)
		decodeHostile(t, fr, i, chunks, data)
	})
}

// roundTrip frames payloads cut from data and reads them back.
func roundTrip(t *testing.T, fr Framing, i int, chunks, data []byte) {
	var wire []byte
	var want [][]byte
	for p := data; len(p) > 0; {
		k := min(int(p[0])%80, len(p)-1)
		payload := p[1 : 1+k]
		p = p[1+k:]
		h, err := fr.encode(payload)
		if err != nil {
			continue // over the maximum, a separator inside, an Offset: checked elsewhere
		}
		wire = append(append(append(wire, h.buf[:h.n]...), payload...), h.tail...)
		keep := 0
		if lp := fuzzFramings[i].lp; lp != nil {
			keep = lp.Keep
		}
		want = append(want, cat(h.buf[h.n-keep:h.n], payload))
	}
	rd := chunkedPipe(t, chunks, wire)
	var got [][]byte
	for frame, err := range rd.Frames(testCtx(t), fr) {
		if err != nil {
			t.Fatalf("frame %d: %v", len(got), err)
		}
		got = append(got, bytes.Clone(frame))
	}
	if len(got) != len(want) {
		t.Fatalf("read %d frames, wrote %d", len(got), len(want))
	}
	for k := range got {
		if !bytes.Equal(got[k], want[k]) {
			t.Fatalf("frame %d: got %q, want %q", k, got[k], want[k])
		}
	}
}

// decodeHostile reads arbitrary bytes and compares with the reference decoder.
func decodeHostile(t *testing.T, fr Framing, i int, chunks, data []byte) {
	rd := chunkedPipe(t, chunks, data)
	want := refDecode(i, data)
	bound := frameBound(i)
	var got []string
	for len(got) <= len(data)+1 {
		frame, err := rd.ReadFrame(testCtx(t), fr)
		if err == io.EOF {
			break
		}
		if len(frame) > bound || cap(frame) != len(frame) {
			t.Fatalf("frame of %d bytes (cap %d), bound %d", len(frame), cap(frame), bound)
		}
		got = append(got, outcome(frame, err, i))
		var incomplete *IncompleteReadError
		if errors.As(err, &incomplete) {
			break
		}
	}
	if limit := 2*max(len(data), minPooled) + 2*bound; cap(rd.rd.buf) > limit {
		t.Fatalf("read buffer grew to %d for %d bytes of input", cap(rd.rd.buf), len(data))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("decoded %q\nreference %q", got, want)
	}

	// The same through Frames, with a new loop after each error as a caller
	// going on past a rejected frame has: its path for frames buffered whole
	// must agree with ReadFrame's.
	rd = chunkedPipe(t, chunks, data)
	got = got[:0]
	for again := true; again && len(got) <= len(data)+1; {
		again = false
		for frame, err := range rd.Frames(testCtx(t), fr) {
			if len(frame) > bound || cap(frame) != len(frame) {
				t.Fatalf("Frames: frame of %d bytes (cap %d), bound %d", len(frame), cap(frame), bound)
			}
			got = append(got, outcome(frame, err, i))
			var incomplete *IncompleteReadError
			again = err != nil && !errors.As(err, &incomplete)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Frames decoded %q\nreference %q", got, want)
	}
}

// chunkedPipe returns the reading end of a socketpair whose peer writes data in
// chunks of the sizes chunks gives (cycled), then half-closes. The writer
// goroutine is owned by the test: cleanup aborts both ends, which ends a
// blocked write, and waits for it.
func chunkedPipe(t *testing.T, chunks, data []byte) *Conn {
	rd, wr, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc := wr.NetConn()
		for k := 0; len(data) > 0; k++ {
			n := len(data)
			if len(chunks) > 0 {
				n = min(n, 1+int(chunks[k%len(chunks)]))
			}
			if _, err := nc.Write(data[:n]); err != nil {
				return
			}
			data = data[n:]
		}
		nc.(interface{ CloseWrite() error }).CloseWrite()
	}()
	t.Cleanup(func() { rd.Abort(); wr.Abort(); wg.Wait() })
	return rd
}

// outcome describes one ReadFrame result for comparison with refDecode.
func outcome(frame []byte, err error, i int) string {
	var tooLarge *FrameTooLargeError
	var incomplete *IncompleteReadError
	switch {
	case err == nil:
		return fmt.Sprintf("frame %x", frame)
	case errors.As(err, &tooLarge) && fuzzFramings[i].seps != nil:
		return "too large" // Delimited's Size is what had arrived
	case errors.As(err, &tooLarge):
		return fmt.Sprintf("too large %d", tooLarge.Size)
	case errors.Is(err, ErrCorruptFrame):
		return "corrupt"
	case errors.As(err, &incomplete):
		return fmt.Sprintf("incomplete %x %d", incomplete.Partial, incomplete.Expected)
	}
	return "unexpected " + err.Error()
}

// frameBound is the longest frame framing i may return.
func frameBound(i int) int {
	ff := fuzzFramings[i]
	if lp := ff.lp; lp != nil {
		return lp.Keep + lp.Max + max(lp.Adjust, 0)
	}
	return ff.max
}

// refDecode is the reference: a naive decoder over the whole input, written
// from the documented behaviour, as directly as possible.
func refDecode(i int, data []byte) []string {
	ff := fuzzFramings[i]
	switch {
	case ff.lp != nil:
		return refLength(*ff.lp, data)
	case ff.seps == nil:
		return refUvarint(ff.max, data)
	}
	return refDelimited(ff.max, ff.seps, data)
}

func refLength(p LengthPrefix, data []byte) (out []string) {
	if p.Size == 0 {
		p.Size = 4
	}
	h := p.Offset + p.Size
	for len(data) > 0 {
		if len(data) < h {
			return append(out, fmt.Sprintf("incomplete %x -1", data))
		}
		var v uint64
		for k := 0; k < p.Size; k++ {
			b := data[p.Offset+k]
			if p.LittleEndian {
				v |= uint64(b) << (8 * k)
			} else {
				v = v<<8 | uint64(b)
			}
		}
		if v > uint64(p.Max) {
			out = append(out, fmt.Sprintf("too large %d", min(v, math.MaxInt64)))
			skip := uint64(h) + v + uint64(p.Adjust) // the frame's whole length
			if v >= math.MaxInt64/2 || skip >= uint64(len(data)) {
				return out // skipped to the end
			}
			data = data[skip:]
			continue
		}
		body := int(v) + p.Adjust
		if body < 0 {
			out = append(out, "corrupt")
			data = data[h:]
			continue
		}
		if len(data) < h+body {
			return append(out, fmt.Sprintf("incomplete %x %d", data, h+body))
		}
		out = append(out, fmt.Sprintf("frame %x", data[h-p.Keep:h+body]))
		data = data[h+body:]
	}
	return out
}

func refUvarint(maxLen int, data []byte) (out []string) {
	for len(data) > 0 {
		var v uint64
		n, corrupt := 0, false
		for k := 0; k < len(data) && n == 0 && !corrupt; k++ {
			b := data[k]
			corrupt = k == 9 && b > 1 // a tenth byte may only hold the 64th bit
			v |= uint64(b&0x7f) << (7 * k)
			if b < 0x80 {
				n = k + 1
			}
		}
		switch {
		case corrupt:
			out = append(out, "corrupt")
			data = data[10:]
		case n == 0:
			return append(out, fmt.Sprintf("incomplete %x -1", data))
		case v > uint64(maxLen):
			out = append(out, fmt.Sprintf("too large %d", min(v, math.MaxInt64)))
			if v >= uint64(len(data)-n) {
				return out // skipped to the end
			}
			data = data[n+int(v):]
		case len(data) < n+int(v):
			return append(out, fmt.Sprintf("incomplete %x %d", data, n+int(v)))
		default:
			out = append(out, fmt.Sprintf("frame %x", data[n:n+int(v)]))
			data = data[n+int(v):]
		}
	}
	return out
}

func refDelimited(maxLen int, seps [][]byte, data []byte) (out []string) {
	maxSep := 0
	for _, s := range seps {
		maxSep = max(maxSep, len(s))
	}
	for len(data) > 0 {
		// The separator that ends first, the longest of those.
		start, end := -1, -1
		for e := 1; e <= len(data) && start < 0; e++ {
			for _, s := range seps {
				if e >= len(s) && bytes.Equal(data[e-len(s):e], s) && (start < 0 || e-len(s) < start) {
					start, end = e-len(s), e
				}
			}
		}
		switch {
		case start > maxLen:
			out = append(out, "too large")
			data = data[end:]
		case start >= 0:
			out = append(out, fmt.Sprintf("frame %x", data[:start]))
			data = data[end:]
		case len(data)+1-maxSep > maxLen:
			return append(out, "too large") // skipped to the end
		default:
			return append(out, fmt.Sprintf("incomplete %x -1", data))
		}
	}
	return out
}
