package sluice

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// The read methods must not depend on how bytes arrive. FuzzReadMethods runs a
// fuzz-chosen sequence of reads over fuzz-chosen input, delivered in fuzz-chosen
// pieces (once through an io.Reader that returns exactly those pieces, once over
// a real socketpair written piece by piece), and checks every result against
// refModel, a naive reference that sees the whole input at once.

// fuzzSeps are the separator sets ReadUntil is tried with.
var fuzzSeps = [][][]byte{
	{[]byte("\n")},
	{[]byte("\r\n")},
	{[]byte("ab")},
	{[]byte("b"), []byte("ab")},
	{[]byte("xyz"), []byte("\n")},
}

// chunkReader returns data in pieces whose sizes come from sizes, in turn.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)])%23 + 1
		c.i++
	}
	n = copy(p, c.data[:min(n, len(c.data))])
	c.data = c.data[n:]
	return n, nil
}

func pieces(data, sizes []byte) [][]byte {
	cr := &chunkReader{data: data, sizes: sizes}
	var out [][]byte
	for {
		p := make([]byte, 64)
		n, err := cr.Read(p)
		if err != nil {
			return out
		}
		out = append(out, p[:n])
	}
}

// refModel is the naive reference: the whole input and a read position.
type refModel struct {
	data  []byte
	pos   int
	limit int
}

func (m *refModel) rest() []byte { return m.data[m.pos:] }

// op runs one fuzz-chosen read on r and on the model and compares them. It
// returns false when the sequence cannot go on deterministically (ReadLine after
// an overrun cleans up according to what happened to be buffered, as asyncio's).
func (m *refModel) op(t *testing.T, r *Reader, code byte) bool {
	ctx := context.Background()
	param := int(code / 6)
	rest := m.rest()
	switch code % 6 {
	case 0: // ReadLine
		got, err := r.ReadLine(ctx)
		i := bytes.IndexByte(rest, '\n')
		lineLen := len(rest)
		if i >= 0 {
			lineLen = i
		}
		switch {
		case lineLen > m.limit:
			expectErr(t, "ReadLine", err, ErrLimitOverrun)
			return false
		case len(rest) == 0:
			expectErr(t, "ReadLine", err, io.EOF)
		case i < 0:
			m.expect(t, "ReadLine", got, err, rest)
		default:
			m.expect(t, "ReadLine", got, err, rest[:i+1])
		}
	case 1: // ReadUntil
		seps := fuzzSeps[param%len(fuzzSeps)]
		got, err := r.ReadUntil(ctx, seps...)
		set, _ := newSepSet(seps, false)
		start, end := set.index(rest)
		maxSep := set.max
		switch {
		case end >= 0 && start > m.limit, end < 0 && len(rest)+1-maxSep > m.limit:
			expectErr(t, "ReadUntil", err, ErrLimitOverrun) // nothing consumed
		case end < 0:
			var ie *IncompleteReadError
			if !errors.As(err, &ie) || !bytes.Equal(ie.Partial, rest) || ie.Expected != -1 {
				t.Fatalf("ReadUntil at EOF: got %v, want IncompleteReadError{%q, -1}", err, rest)
			}
			m.pos = len(m.data)
		default:
			m.expect(t, "ReadUntil", got, err, rest[:end])
		}
	case 2: // ReadExactly
		n := param % 40
		got, err := r.ReadExactly(ctx, n)
		if n > len(rest) {
			var ie *IncompleteReadError
			if !errors.As(err, &ie) || !bytes.Equal(ie.Partial, rest) || ie.Expected != n {
				t.Fatalf("ReadExactly(%d): got %v, want IncompleteReadError{%q, %d}", n, err, rest, n)
			}
			m.pos = len(m.data)
			break
		}
		m.expect(t, "ReadExactly", got, err, rest[:n])
	case 3: // Read
		p := make([]byte, param%40+1)
		n, err := r.Read(p)
		m.expectPrefix(t, "Read", p[:n], err, len(p))
	case 4: // one step of Lines
		m.linesStep(t, r)
	case 5: // one step of Chunks
		n := param%40 + 1
		var got []byte
		var err error
		for chunk, e := range r.Chunks(ctx, n) {
			got, err = chunk, e
			break
		}
		m.expectPrefix(t, "Chunks", got, err, n)
	}
	return true
}

func (m *refModel) linesStep(t *testing.T, r *Reader) {
	rest := m.rest()
	var got []byte
	var err error
	steps := 0
	for line, e := range r.Lines(context.Background()) {
		got, err, steps = line, e, steps+1
		break
	}
	i := bytes.IndexByte(rest, '\n')
	end, lineLen := len(rest), len(rest)
	if i >= 0 {
		end, lineLen = i+1, i
	}
	switch {
	case len(rest) == 0:
		if steps != 0 {
			t.Fatalf("Lines at EOF yielded %q, %v", got, err)
		}
	case lineLen > m.limit:
		expectErr(t, "Lines", err, ErrLimitOverrun)
		m.pos += end // discarded through the newline
	default:
		want := dropCR(rest[:lineLen])
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Lines: got %q, %v; want %q", got, err, want)
		}
		m.pos += end // the line ending is consumed too
	}
}

func (m *refModel) expect(t *testing.T, what string, got []byte, err error, want []byte) {
	t.Helper()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: got %q, %v; want %q", what, got, err, want)
	}
	m.pos += len(want)
}

// expectPrefix checks a read that may return any non-empty prefix of the rest up
// to max bytes, or io.EOF / nothing at the end.
func (m *refModel) expectPrefix(t *testing.T, what string, got []byte, err error, max int) {
	t.Helper()
	rest := m.rest()
	if len(rest) == 0 {
		if len(got) != 0 || (err != nil && err != io.EOF) {
			t.Fatalf("%s at EOF: got %q, %v", what, got, err)
		}
		return
	}
	if err != nil || len(got) == 0 || len(got) > max || !bytes.HasPrefix(rest, got) {
		t.Fatalf("%s: got %q, %v; want a prefix of %q of at most %d bytes", what, got, err, rest, max)
	}
	m.pos += len(got)
}

func expectErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func runModel(t *testing.T, r *Reader, data, ops []byte, limit int) {
	m := &refModel{data: data, limit: limit}
	for _, code := range ops {
		if !m.op(t, r, code) {
			return
		}
	}
	all, err := r.ReadAll(context.Background())
	if err != nil || !bytes.Equal(all, m.rest()) {
		t.Fatalf("ReadAll: got %q, %v; want %q", all, err, m.rest())
	}
}

func FuzzReadMethods(f *testing.F) {
	f.Add([]byte("line1\nline2\r\nline3"), []byte{0, 4, 0, 4, 0}, []byte{1, 2, 3}, uint8(64))
	f.Add([]byte("abcabxyzab\n\n"), []byte{1, 7, 13, 19, 25, 2, 3}, []byte{0}, uint8(3))
	f.Add([]byte("a very long line indeed\nshort\n"), []byte{4, 4, 4, 0}, []byte{5}, uint8(4))
	f.Add([]byte("0123456789"), []byte{2 + 6*3, 3 + 6*2, 5 + 6*4, 2 + 6*39}, []byte{2}, uint8(8))
	f.Add([]byte("x\r\ny\r\n"), []byte{1 + 6, 1 + 6, 1 + 6}, []byte{0, 1}, uint8(1))
	f.Add([]byte("toolongline\nok\n"), []byte{0, 0}, []byte{3}, uint8(5))
	f.Add([]byte("bab\nab"), []byte{1 + 18, 1 + 12, 4, 5}, []byte{22}, uint8(2))
	f.Fuzz(func(t *testing.T, data, ops, sizes []byte, limit uint8) {
		if len(data) > 4096 || len(ops) > 64 {
			return
		}
		lim := int(limit)%64 + 1

		runModel(t, NewReader(&chunkReader{data: data, sizes: sizes}, WithLimit(lim)), data, ops, lim)

		c, peer, err := Pipe(WithLimit(lim))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Abort()
		defer peer.Abort()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, p := range pieces(data, sizes) {
				if _, err := peer.NetConn().Write(p); err != nil {
					return
				}
			}
			peer.NetConn().(interface{ CloseWrite() error }).CloseWrite()
		}()
		runModel(t, &c.rd, data, ops, lim)
		c.Abort() // a sequence that stopped early leaves the peer blocked
		<-done
	})
}
