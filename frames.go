package sluice

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
)

// defaultMaxFrame is a framing's maximum unless told otherwise: 8 MiB, as
// tokio-util's LengthDelimitedCodec.
const defaultMaxFrame = 8 << 20

// maxHeaderLen is the longest header a framing writes: a 64-bit uvarint.
const maxHeaderLen = binary.MaxVarintLen64

var (
	errNilFraming   = errors.New("sluice: nil Framing")
	errWriteOffset  = errors.New("sluice: cannot write frames with LengthPrefix.Offset > 0: the header bytes before the length field are unknown")
	errSepInPayload = errors.New("sluice: delimited frame payload contains a separator")
)

// A Framing splits a stream into frames and writes frames the same way: a
// length-prefixed format (LengthPrefixed), protobuf-style uvarint-delimited
// messages (Uvarint), or frames ended by a separator (Delimited). It is used
// with ReadFrame, Frames, FrameChan and WriteFrame.
//
// A Framing is immutable: one value may serve any number of connections at
// once. An invalid configuration is not a panic: it is the error returned by
// every ReadFrame, WriteFrame and Frames that uses it.
//
// Its methods are unexported, so the three constructors are the only framings.
// This is deliberate: a framing reads straight from the Reader's buffer and
// decides what the Reader allocates and what it skips after a bad frame, and
// those guarantees (nothing allocated for an oversized body, the stream usable
// after it) would be the implementer's to get right. Other formats can be read
// with ReadExactly and ReadUntil. Because no one outside this package can
// implement Framing, exporting its methods later is a compatible change.
type Framing interface {
	// next reads until a whole frame is buffered, consumes it and returns it
	// as a view into the buffer. r's read lock is held.
	next(ctx context.Context, r *Reader) ([]byte, error)
	// buffered is next's path for a frame already buffered whole, for Frames'
	// steps: it consumes and returns it, or reports false, consuming nothing,
	// where next has more to do (read, skip, fail). r's read lock is held.
	buffered(r *Reader) ([]byte, bool)
	// encode returns what goes on the wire around payload.
	encode(payload []byte) (frameHeader, error)
}

// frameHeader is what WriteFrame writes around a payload. It is returned by
// value, so a header costs no allocation.
type frameHeader struct {
	buf  [maxHeaderLen]byte
	n    int    // header bytes in buf
	tail []byte // written after the payload (a separator); never modified
}

// sizedHeader is a parsed header that announces its frame's length.
type sizedHeader struct {
	len  int   // header bytes; 0 while more are needed
	keep int   // trailing header bytes returned with the frame
	body int64 // bytes after the header, up to math.MaxInt64
}

// A sizer parses the header of a length-announcing framing straight from the
// buffered bytes at the start of a frame. It returns a zero len while it needs
// more bytes. A header it rejects is still measured: the error is a
// *FrameTooLargeError (the frame, body included, is skipped) or a corrupt
// header (only the header is skipped: body is 0).
type sizer interface {
	parseHeader(data []byte) (sizedHeader, error)
}

// ReadFrame reads the next frame as f describes it and returns it in a slice
// the caller owns: a copy, or for a frame too large for the usual buffer, the
// buffer grown to hold it (Frames avoids the copy). It blocks until the whole
// frame is buffered, the stream ends, ctx ends (ctx.Err(), nothing is lost:
// the partial frame stays buffered) or a read fails. Frames are not bounded by
// the reader limit, only by f's maximum; the buffer grows with the bytes that
// arrive, never ahead of them, so a header announcing a large frame costs
// nothing until its body comes.
//
// At a clean end of stream between frames it returns nil, io.EOF; a stream
// that ends inside a frame returns an *IncompleteReadError holding the frame's
// bytes (Expected is the frame's length on the wire, or -1 if its header was
// cut). A frame over f's maximum returns an error matching ErrFrameTooLarge, a
// *FrameTooLargeError with the announced size, decided from the header alone:
// nothing is allocated for the body, which is skipped as it arrives, so the
// next call reads the following frame. A malformed header (an overflowing
// uvarint, a length smaller than -Adjust) returns an error matching
// ErrCorruptFrame and skips the header; the stream's framing is then most
// likely lost.
func (c *Conn) ReadFrame(ctx context.Context, f Framing) ([]byte, error) {
	return c.rd.ReadFrame(ctx, f)
}

// ReadFrame reads the next frame as f describes it. See Conn.ReadFrame.
func (r *Reader) ReadFrame(ctx context.Context, f Framing) ([]byte, error) {
	if f == nil {
		return nil, errNilFraming
	}
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.mu.unlock()
	off := r.off // the stream offset of the buffer's first byte
	frame, err := f.next(ctx, r)
	if err != nil {
		return nil, err
	}
	if r.buf == nil && 2*int64(len(frame)) >= r.off-off {
		// Consuming the frame gave up a buffer grown for it (see consume),
		// and the frame is half or more of the bytes it held: no one else
		// refers to it, so hand it over rather than copy it. (Not a small
		// frame that merely emptied a buffer grown for an earlier one: it
		// would keep the whole buffer alive.)
		return frame, nil
	}
	p := make([]byte, len(frame))
	copy(p, frame)
	return p, nil
}

// Frames returns a single-use iterator over the stream's frames as f describes
// them, with ReadFrame's blocking and errors. EOF between frames ends the loop
// with no error; any other error is yielded once, with a nil frame, and ends
// it. After an ErrFrameTooLarge error the oversized frame is skipped as it
// arrives, so a new loop goes on with the next frame. Breaking out of the loop
// loses nothing: unread data stays buffered for the next read.
//
// The yielded slice points into the buffer and is valid until the next step or
// read (as bufio.Scanner.Bytes); copy it to keep it. Its capacity is its
// length, so an append to it copies. The buffer grows to hold a whole frame (up
// to f's maximum, as its bytes arrive), so a step copies nothing and allocates
// nothing once the buffer is large enough. f's maximum bounds what one step
// holds; WithMessageTimeout how long its bytes may take.
func (c *Conn) Frames(ctx context.Context, f Framing) iter.Seq2[[]byte, error] {
	return c.rd.Frames(ctx, f)
}

// Frames returns a single-use iterator over the stream's frames. See
// Conn.Frames.
func (r *Reader) Frames(ctx context.Context, f Framing) iter.Seq2[[]byte, error] {
	if f == nil {
		return func(yield func([]byte, error) bool) { yield(nil, errNilFraming) }
	}
	return steps(ctx, r, frameStep{f})
}

// frameStep is Frames' step.
type frameStep struct{ f Framing }

func (s frameStep) next(ctx context.Context, r *Reader) ([]byte, error) {
	if !r.closed.Load() {
		if frame, ok := s.f.buffered(r); ok {
			return frame, nil
		}
	}
	return r.nextFrame(ctx, s.f)
}

// nextFrame returns the next frame as a view into the buffer; the read lock
// is held.
func (r *Reader) nextFrame(ctx context.Context, f Framing) ([]byte, error) {
	if r.closed.Load() {
		return nil, r.closeErr
	}
	return f.next(ctx, r)
}

// FrameChan is the channel form of Frames: a Stream of owned frame copies,
// for select and goroutine pipelines. See Stream for its lifecycle.
func (c *Conn) FrameChan(ctx context.Context, f Framing) *Stream {
	return c.rd.FrameChan(ctx, f)
}

// FrameChan is the channel form of Frames. See Conn.FrameChan.
func (r *Reader) FrameChan(ctx context.Context, f Framing) *Stream {
	return newStream(ctx, func(ctx context.Context) iter.Seq2[[]byte, error] { return r.Frames(ctx, f) })
}

// WriteFrame queues one frame: the header f's reader expects, payload, and for
// Delimited the first separator, as a single write through the same queue as
// Write, with Write's pausing and errors. The header is built without
// allocating, and payload is copied once, into the queue.
//
// Before anything is queued it returns an error matching ErrFrameTooLarge (a
// *FrameTooLargeError) for a payload over f's maximum or too long for the
// length field, and an error for a payload LengthPrefixed cannot describe
// (Offset > 0, as in tokio; a payload shorter than Adjust) or one holding a
// Delimited separator. WriteFrame is safe from many goroutines; each frame's
// bytes stay together.
func (c *Conn) WriteFrame(f Framing, payload []byte) error {
	_, err := c.writeFrame(context.Background(), f, payload)
	return err
}

// writeFrame is WriteFrame, with admission bounded by ctx too; it returns the
// bytes queued, header and separator included.
func (c *Conn) writeFrame(ctx context.Context, f Framing, payload []byte) (int, error) {
	if f == nil {
		return 0, errNilFraming
	}
	h, err := f.encode(payload)
	if err != nil {
		return 0, err
	}
	return c.queue().write(ctx, h.buf[:h.n], payload, h.tail)
}

// readSized reads the frame whose header s parses and returns it as a view
// into the buffer, consumed.
func (r *Reader) readSized(ctx context.Context, s sizer) ([]byte, error) {
	hdr, err := r.awaitHeader(ctx, s)
	if err != nil {
		return nil, err
	}
	// The header passed the maximum, so the frame's size fits in an int.
	total := hdr.len + int(hdr.body)
	if err := r.await(ctx, total); err != nil {
		return nil, err
	}
	return r.frameAt(hdr, total), nil
}

// bufferedSized is a sizer's buffered: the frame whose header the sizer
// parsed from the buffer (hdr, err), where the header was accepted and the
// whole frame is buffered.
func (r *Reader) bufferedSized(hdr sizedHeader, err error) ([]byte, bool) {
	if err != nil || hdr.len == 0 {
		return nil, false
	}
	total := hdr.len + int(hdr.body) // accepted: within the maximum
	if total > r.w-r.r {
		return nil, false
	}
	return r.frameAt(hdr, total), true
}

// frameAt returns the buffered frame of total bytes whose header is hdr, as a
// view into the buffer, and consumes it.
func (r *Reader) frameAt(hdr sizedHeader, total int) []byte {
	frame := r.buf[r.r+hdr.len-hdr.keep : r.r+total : r.r+total]
	r.consume(total)
	return frame
}

// awaitHeader reads until s can parse a header. A rejected header's frame is
// dropped (see sizer). EOF with nothing buffered is io.EOF; EOF inside the
// header is an *IncompleteReadError, and the buffer is emptied.
func (r *Reader) awaitHeader(ctx context.Context, s sizer) (sizedHeader, error) {
	for {
		hdr, err := s.parseHeader(r.buf[r.r:r.w])
		if err != nil {
			r.dropFrame(satAdd(int64(hdr.len), hdr.body))
			return hdr, err
		}
		if hdr.len > 0 {
			return hdr, nil
		}
		if r.err == io.EOF {
			if r.r == r.w {
				return hdr, io.EOF
			}
			return hdr, r.incomplete(-1)
		}
		if err := r.fill(ctx, 0, forMessage); err != nil && err != io.EOF {
			return hdr, err
		}
	}
}

// dropFrame discards a rejected frame of n bytes: what is buffered now, and the
// rest as it arrives (skip.n), so it is never held in memory.
func (r *Reader) dropFrame(n int64) {
	if have := int64(r.w - r.r); n > have {
		r.consume(int(have))
		r.skip.n = n - have
		return
	}
	r.consume(int(n))
}

// satAdd returns a+b for non-negative a and b, or math.MaxInt64 on overflow.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// LengthPrefix describes a length-prefixed wire format, with the meanings of
// Netty's LengthFieldBasedFrameDecoder: Offset is lengthFieldOffset, Size
// lengthFieldLength, Adjust lengthAdjustment (so the bytes after the length
// field are its value plus Adjust), and Keep is Offset+Size-initialBytesToStrip.
// Netty's documented examples are test vectors; so are tokio-util
// LengthDelimitedCodec's wherever it strips the whole header (Keep 0), where the
// two agree. Max is tokio's max_frame_length, checked against the length
// field's value. The zero value is a 4-byte big-endian length followed by the
// payload, maximum 8 MiB.
//
// A frame on the wire is Offset header bytes, the length field (an unsigned
// integer), then value+Adjust bytes; ReadFrame returns the last Keep bytes of
// the Offset+Size header bytes followed by those value+Adjust bytes. WriteFrame
// writes the length field with the value len(payload)-Adjust, then payload;
// Keep does not change what it writes, so a frame read back with Keep > 0
// starts with the kept header bytes.
type LengthPrefix struct {
	Offset       int  // header bytes before the length field
	Size         int  // length field bytes: 1, 2, 3, 4 or 8; 0 means 4
	LittleEndian bool // the length field's byte order; big endian (network order) by default
	Adjust       int  // added to the length field's value: the bytes after the length field
	Keep         int  // trailing header bytes kept at the start of the returned frame
	Max          int  // largest length-field value accepted; 0 means 8 MiB
}

// lengthPrefix is the Framing of LengthPrefixed.
type lengthPrefix struct {
	LengthPrefix
	max      uint64 // Max, defaulted
	fieldMax uint64 // the largest value the length field can hold
	err      error  // the configuration's error, if any
}

// LengthPrefixed returns the Framing p describes (see LengthPrefix): Netty's
// LengthFieldBasedFrameDecoder and LengthFieldPrepender, tokio-util's
// LengthDelimitedCodec. An invalid p (a Size other than 0, 1, 2, 3, 4 or 8, a
// negative Offset or Max, a Keep outside 0 to Offset+Size, sizes that overflow
// an int) makes every use of the Framing return an error saying why.
func LengthPrefixed(p LengthPrefix) Framing {
	if p.Size == 0 {
		p.Size = 4
	}
	if p.Max == 0 {
		p.Max = defaultMaxFrame
	}
	lp := &lengthPrefix{LengthPrefix: p, err: p.validate()}
	if lp.err == nil {
		lp.max = uint64(p.Max)
		lp.fieldMax = math.MaxUint64 >> (64 - 8*p.Size)
	}
	return lp
}

func (p *LengthPrefix) validate() error {
	switch {
	case p.Size != 1 && p.Size != 2 && p.Size != 3 && p.Size != 4 && p.Size != 8:
		return fmt.Errorf("sluice: LengthPrefix.Size must be 1, 2, 3, 4 or 8, got %d", p.Size)
	case p.Offset < 0 || p.Offset > math.MaxInt32:
		return fmt.Errorf("sluice: LengthPrefix.Offset out of range: %d", p.Offset)
	case p.Keep < 0 || p.Keep > p.Offset+p.Size:
		return fmt.Errorf("sluice: LengthPrefix.Keep must be between 0 and Offset+Size (%d), got %d", p.Offset+p.Size, p.Keep)
	case p.Max < 0:
		return fmt.Errorf("sluice: LengthPrefix.Max must not be negative, got %d", p.Max)
	case p.Adjust < -math.MaxInt32 || p.Adjust > math.MaxInt32 ||
		uint64(p.Offset)+uint64(p.Size)+uint64(p.Max)+uint64(max(p.Adjust, 0)) > math.MaxInt:
		// A frame's size, header + Max + Adjust, must fit in an int.
		return fmt.Errorf("sluice: LengthPrefix.Max %d with Adjust %d overflows an int", p.Max, p.Adjust)
	}
	return nil
}

func (p *lengthPrefix) next(ctx context.Context, r *Reader) ([]byte, error) {
	if p.err != nil {
		return nil, p.err
	}
	return r.readSized(ctx, p)
}

func (p *lengthPrefix) buffered(r *Reader) ([]byte, bool) {
	if p.err != nil {
		return nil, false
	}
	return r.bufferedSized(p.parseHeader(r.buf[r.r:r.w]))
}

func (p *lengthPrefix) parseHeader(data []byte) (sizedHeader, error) {
	h := p.Offset + p.Size
	if len(data) < h {
		return sizedHeader{}, nil
	}
	v := p.field(data[p.Offset:h])
	hdr := sizedHeader{len: h, keep: p.Keep}
	if v > p.max {
		hdr.body = adjusted(v, p.Adjust)
		return hdr, &FrameTooLargeError{Size: int64(min(v, math.MaxInt64)), Max: int64(p.max)}
	}
	if hdr.body = int64(v) + int64(p.Adjust); hdr.body < 0 {
		hdr.body = 0
		return hdr, fmt.Errorf("%w: length field %d with Adjust %d leaves %d bytes", ErrCorruptFrame, v, p.Adjust, int64(v)+int64(p.Adjust))
	}
	return hdr, nil
}

// adjusted returns v+adj, clamped to 0..math.MaxInt64.
func adjusted(v uint64, adj int) int64 {
	if v > math.MaxInt64 {
		v = math.MaxInt64
	}
	if adj < 0 {
		return max(int64(v)+int64(adj), 0)
	}
	return satAdd(int64(v), int64(adj))
}

// field decodes the length field b.
func (p *lengthPrefix) field(b []byte) uint64 {
	if p.LittleEndian {
		switch len(b) {
		case 2:
			return uint64(binary.LittleEndian.Uint16(b))
		case 4:
			return uint64(binary.LittleEndian.Uint32(b))
		case 8:
			return binary.LittleEndian.Uint64(b)
		}
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		return v
	}
	switch len(b) {
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	case 8:
		return binary.BigEndian.Uint64(b)
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// putField encodes v into the length field b.
func (p *lengthPrefix) putField(b []byte, v uint64) {
	for i := range b {
		shift := 8 * (len(b) - 1 - i) // big endian: most significant byte first
		if p.LittleEndian {
			shift = 8 * i
		}
		b[i] = byte(v >> shift)
	}
}

func (p *lengthPrefix) encode(payload []byte) (frameHeader, error) {
	var h frameHeader
	switch {
	case p.err != nil:
		return h, p.err
	case p.Offset > 0:
		return h, errWriteOffset
	case len(payload) < p.Adjust:
		return h, fmt.Errorf("sluice: a %d-byte payload is shorter than LengthPrefix.Adjust (%d)", len(payload), p.Adjust)
	}
	v := uint64(int64(len(payload)) - int64(p.Adjust))
	if limit := min(p.max, p.fieldMax); v > limit {
		return h, &FrameTooLargeError{Size: int64(v), Max: int64(limit)}
	}
	h.n = p.Size
	p.putField(h.buf[:h.n], v)
	return h, nil
}

// uvarintFraming is the Framing of Uvarint.
type uvarintFraming struct {
	max uint64
	err error
}

// Uvarint returns the Framing of protobuf's delimited messages (Java's
// writeDelimitedTo and parseDelimitedFrom, Go's protodelim): each payload is
// preceded by its length as a base-128 varint (encoding/binary's Uvarint), and
// frames over max bytes are rejected; max 0 means 8 MiB, a negative max is an
// error on use. The header is parsed from the buffer, not read a byte at a
// time. A varint longer than 10 bytes or overflowing 64 bits is an error
// matching ErrCorruptFrame.
func Uvarint(max int) Framing {
	u := &uvarintFraming{max: defaultMaxFrame}
	switch {
	case max < 0:
		u.err = fmt.Errorf("sluice: Uvarint max must not be negative, got %d", max)
	case max > 0:
		u.max = uint64(min(max, math.MaxInt-binary.MaxVarintLen64)) // a frame's size fits an int
	}
	return u
}

func (u *uvarintFraming) next(ctx context.Context, r *Reader) ([]byte, error) {
	if u.err != nil {
		return nil, u.err
	}
	return r.readSized(ctx, u)
}

func (u *uvarintFraming) buffered(r *Reader) ([]byte, bool) {
	if u.err != nil {
		return nil, false
	}
	return r.bufferedSized(u.parseHeader(r.buf[r.r:r.w]))
}

func (u *uvarintFraming) parseHeader(data []byte) (sizedHeader, error) {
	v, n := binary.Uvarint(data)
	switch {
	case n < 0 || n == 0 && len(data) >= binary.MaxVarintLen64:
		// Ten bytes always end a valid uvarint: reject them without waiting for more.
		return sizedHeader{len: binary.MaxVarintLen64}, fmt.Errorf("%w: uvarint length overflows 64 bits", ErrCorruptFrame)
	case n == 0:
		return sizedHeader{}, nil
	case v > u.max:
		return sizedHeader{len: n, body: int64(min(v, math.MaxInt64))},
			&FrameTooLargeError{Size: int64(min(v, math.MaxInt64)), Max: int64(u.max)}
	}
	return sizedHeader{len: n, body: int64(v)}, nil
}

func (u *uvarintFraming) encode(payload []byte) (frameHeader, error) {
	var h frameHeader
	if u.err != nil {
		return h, u.err
	}
	if uint64(len(payload)) > u.max {
		return h, &FrameTooLargeError{Size: int64(len(payload)), Max: int64(u.max)}
	}
	h.n = binary.PutUvarint(h.buf[:], uint64(len(payload)))
	return h, nil
}

// delimited is the Framing of Delimited.
type delimited struct {
	max      int
	seps     *sepSet // private copies, never modified
	err      error   // the configuration's error, if any
	writeErr error   // why frames cannot be written, if they cannot
}

// Delimited returns the Framing of frames ended by any of seps (tokio-util's
// AnyDelimiterCodec, Netty's DelimiterBasedFrameDecoder): ReadFrame returns the
// payload without its separator; where separators overlap, the frame ends at the
// earliest-ending one, and of those at the longest. The maximum counts the
// payload; max 0 means 8 MiB. More than max bytes without a separator is an error
// matching ErrFrameTooLarge (its Size the bytes seen so far), and the frame is
// skipped through its separator, even one not yet arrived. EOF after a partial
// frame is an *IncompleteReadError (Expected -1). WriteFrame appends the first
// separator, and refuses a payload that holds a separator, which would not read
// back as one frame. No separator, an empty one or a negative max is an error on
// use. The maximum is independent of the reader limit.
func Delimited(max int, seps ...[]byte) Framing {
	d := &delimited{max: max}
	if d.max == 0 {
		d.max = defaultMaxFrame
	}
	own := make([][]byte, len(seps))
	for i, s := range seps {
		own[i] = bytes.Clone(s)
	}
	d.seps, d.err = newSepSet(own, true)
	switch {
	case d.err == nil && max < 0:
		d.err = fmt.Errorf("sluice: Delimited max must not be negative, got %d", max)
		d.writeErr = d.err
	case d.err != nil:
		d.writeErr = d.err
	default:
		first := d.seps.seps[0]
		if _, e := d.seps.index(first); e < len(first) {
			d.writeErr = fmt.Errorf("sluice: Delimited cannot write frames: another separator ends inside the first, %q", first)
		}
	}
	return d
}

// buffered leaves every frame to next: the separator search is next's.
func (d *delimited) buffered(*Reader) ([]byte, bool) { return nil, false }

func (d *delimited) next(ctx context.Context, r *Reader) ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	start, end, err := r.until(ctx, d.seps, d.max)
	switch e := err.(type) {
	case nil:
		frame := r.buf[r.r : r.r+start : r.r+start]
		r.consume(end)
		return frame, nil
	case *IncompleteReadError:
		if len(e.Partial) == 0 {
			return nil, io.EOF
		}
	case *LimitOverrunError:
		// The frame is too long: drop what is known to precede its separator
		// now, the rest through the separator as it arrives.
		r.skip = skipState{n: r.off + int64(r.r), seps: d.seps}
		r.consume(e.Consumed)
		return nil, &FrameTooLargeError{Size: int64(e.Consumed), Max: int64(d.max)}
	}
	return nil, err
}

func (d *delimited) encode(payload []byte) (frameHeader, error) {
	var h frameHeader
	switch {
	case d.writeErr != nil:
		return h, d.writeErr
	case len(payload) > d.max:
		return h, &FrameTooLargeError{Size: int64(len(payload)), Max: int64(d.max)}
	case d.splits(payload):
		return h, errSepInPayload
	}
	h.tail = d.seps.seps[0]
	return h, nil
}

// splits reports whether payload followed by the first separator would be
// read back as anything but payload: a separator inside payload, or one that
// begins in payload and ends in the written separator.
func (d *delimited) splits(payload []byte) bool {
	if s, _ := d.seps.index(payload); s >= 0 {
		return true
	}
	tail := d.seps.seps[0]
	for _, s := range d.seps.seps {
		for k := max(1, len(s)-len(tail)); k < len(s) && k <= len(payload); k++ {
			if bytes.HasSuffix(payload, s[:k]) && bytes.HasPrefix(tail, s[k:]) {
				return true
			}
		}
	}
	return false
}
