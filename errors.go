package sluice

import (
	"errors"
	"fmt"
	"io"
	"net"
)

var (
	// ErrLimitOverrun is matched (errors.Is) by every *LimitOverrunError.
	ErrLimitOverrun = errors.New("sluice: separator is not found, and chunk exceeds the limit")

	// ErrFrameTooLarge is matched by the error a frame reader returns for a frame
	// whose announced size is over its maximum.
	ErrFrameTooLarge = errors.New("sluice: frame too large")

	// ErrCorruptFrame is matched by the error a frame reader returns for a
	// malformed header: an overflowing uvarint, a length field smaller than
	// -Adjust. The header is skipped; the framing of the rest is suspect.
	ErrCorruptFrame = errors.New("sluice: corrupt frame header")

	// ErrServerClosed is returned by Server.Serve after Close, and on a closed
	// Server.
	ErrServerClosed = errors.New("sluice: server closed")

	// ErrConcurrentRead is returned at once by a read started while another
	// goroutine's read on the same Reader is under way, or while an iterator
	// loop (Lines, Frames, Chunks, a channel form's) runs, its own body
	// included (asyncio raises RuntimeError).
	ErrConcurrentRead = errors.New("sluice: a read or iterator loop is already under way")

	// ErrIdleTimeout is why a Conn's reads and writes fail once WithIdleTimeout
	// has closed it. It matches os.ErrDeadlineExceeded and is a net.Error whose
	// Timeout is true.
	ErrIdleTimeout error = &timeoutError{"sluice: idle timeout: no byte read or sent"}

	// ErrMessageTimeout is why a Conn's reads and writes fail once
	// WithMessageTimeout has closed it: a line, frame or ReadExactly/ReadUntil
	// result took too long to arrive once its first byte had. It matches
	// os.ErrDeadlineExceeded and is a net.Error whose Timeout is true.
	ErrMessageTimeout error = &timeoutError{"sluice: message timeout: a message's rest did not arrive in time"}
)

// IncompleteReadError reports that the stream ended before a read was complete
// (asyncio's IncompleteReadError). It matches io.ErrUnexpectedEOF, or io.EOF when
// Partial is empty, as io.ReadFull's errors do.
type IncompleteReadError struct {
	Partial  []byte // the bytes read before EOF; owned by the caller
	Expected int    // the bytes wanted, or -1 where not known (ReadUntil)
}

// Error returns asyncio's message: how many bytes were read of how many.
func (e *IncompleteReadError) Error() string {
	exp := "undefined"
	if e.Expected >= 0 {
		exp = fmt.Sprint(e.Expected)
	}
	return fmt.Sprintf("sluice: %d bytes read on a total of %s expected bytes", len(e.Partial), exp)
}

// Is reports whether target is io.ErrUnexpectedEOF (or io.EOF when nothing was
// read).
func (e *IncompleteReadError) Is(target error) bool {
	if len(e.Partial) == 0 {
		return target == io.EOF
	}
	return target == io.ErrUnexpectedEOF
}

// LimitOverrunError reports a line or separator-terminated record longer than
// the reader limit (asyncio's LimitOverrunError). It matches ErrLimitOverrun.
type LimitOverrunError struct {
	// Consumed is the separator's offset when one was found, else the number of
	// buffered bytes known to hold no separator start.
	Consumed int
	// Found reports whether the separator was found, past the limit.
	Found bool
}

// Error returns asyncio's message for the case, with Consumed.
func (e *LimitOverrunError) Error() string {
	if e.Found {
		return fmt.Sprintf("sluice: separator is found, but chunk is longer than limit (consumed %d bytes)", e.Consumed)
	}
	return fmt.Sprintf("%v (consumed %d bytes)", ErrLimitOverrun, e.Consumed)
}

// Is reports whether target is ErrLimitOverrun.
func (e *LimitOverrunError) Is(target error) bool { return target == ErrLimitOverrun }

// FrameTooLargeError reports a frame whose announced size is over the framing's
// maximum. It matches ErrFrameTooLarge. The frame's bytes are skipped as they
// arrive, so the next read starts at the following frame.
type FrameTooLargeError struct {
	Size int64 // the announced size (or, for Delimited, the bytes seen so far)
	Max  int64 // the framing's maximum
}

// Error returns the message, with the announced size and the maximum.
func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("sluice: frame too large: %d bytes announced, maximum %d", e.Size, e.Max)
}

// Is reports whether target is ErrFrameTooLarge.
func (e *FrameTooLargeError) Is(target error) bool { return target == ErrFrameTooLarge }

// unwrapOp returns what a *net.OpError wraps (a passed deadline, a closed
// connection, an *os.SyscallError), so that sluice can wrap it itself: a
// RawConn's failure as the Conn's read or write, a listening socket's under
// Listen's own error, which then names the address once.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}
