// Package sluice is Python's asyncio streams rebuilt for Go: connections you
// range over, hand between goroutines as channels, and write through a bounded,
// byte-counted queue whose watermarks give Drain its meaning.
//
// The entry points are Dial (asyncio's open_connection), Listen (start_server),
// NewConn and NewServer over a connection or listener you already have, Pipe (a
// connected pair over a Unix socketpair) and NewReader (a standalone reading half
// over any io.Reader). A client:
//
//	c, err := sluice.Dial(ctx, "tcp", "example.org:7")
//	if err != nil { ... }
//	defer c.Close()
//	c.Write([]byte("hello\n"))
//	for line, err := range c.Lines(ctx) { ... }
//
// A server, one goroutine per connection:
//
//	srv, err := sluice.Listen(ctx, "tcp", ":8888", func(ctx context.Context, c *sluice.Conn) error {
//		for line, err := range c.Lines(ctx) {
//			if err != nil {
//				return err
//			}
//			c.Write(append(line, '\n'))
//			if err := c.Drain(ctx); err != nil {
//				return err
//			}
//		}
//		return nil
//	})
//	if err != nil { ... }
//	defer srv.Shutdown(context.Background())
//	srv.Serve(ctx)
//
// # Reading
//
// The read methods follow CPython's asyncio.StreamReader: ReadLine (readline),
// ReadUntil (readuntil, with one or several separators), ReadExactly
// (readexactly), ReadAll (read()), AtEOF (at_eof), with the reader limit
// (WithLimit, default 64 KiB) and the same errors: *LimitOverrunError and
// *IncompleteReadError. A read from the socket takes whatever has arrived, up to
// the buffer's free room; the buffer starts at 512 bytes (none at all before the
// first read) and grows as needed. Read makes a Conn an io.Reader and a net.Conn.
//
// Only one goroutine reads at a time: a context-taking read started while
// another is blocked returns ErrConcurrentRead at once, rather than racing.
//
// # Iterators and channels
//
// Lines, Chunks and Frames return single-use iterators (iter.Seq2[[]byte,
// error]). EOF ends the loop without an error; any other error is yielded once
// and ends it. The yielded slice points into the Conn's buffer and is valid until
// the next step, as bufio.Scanner.Bytes; a step allocates nothing. Breaking out
// loses nothing: unread data stays buffered.
//
// LineChan, ChunkChan and FrameChan are the channel forms, for select and
// goroutine pipelines: a Stream whose producer goroutine sends owned copies on C,
// closes C when it ends, and reports why through Err. Stop ends it early.
//
// # Writing and backpressure
//
// Write copies into a queue bounded in bytes and returns without a syscall while
// the queue is below its high watermark (WithWriteBufferLimits, default 64 KiB
// high, 16 KiB low). A writer goroutine, alive only while there is something to
// send, hands everything queued to the kernel in one write, so many small writes
// cost one syscall. Where reads and writes alternate, the next read sends the
// queue itself before it blocks, so a request/response exchange costs no more
// than with a bufio.Writer flushed by hand. Drain has asyncio's hysteresis: once the queue has passed the
// high watermark it waits until it falls to the low one. Flush waits until the
// queue is empty. A write error sticks and is returned by the next Write, Drain,
// Flush or Close: it is never lost. Close sends what is queued (bounded by the
// write deadline or WithCloseTimeout), then closes; Abort drops it.
//
// # Frames
//
// ReadFrame, WriteFrame and Frames read and write whole messages in a Framing:
// LengthPrefixed (the layouts of Netty's LengthFieldBasedFrameDecoder and
// tokio-util's LengthDelimitedCodec), Uvarint (protobuf's delimited messages) and
// Delimited. A frame over the maximum is an ErrFrameTooLarge error reported from
// its header, before anything is allocated for its body, which is then skipped
// as it arrives.
//
// # Servers
//
// A Server runs its Handler in a goroutine per connection and closes the
// connection when the handler returns. Its lifecycle is asyncio's Server:
// Serve (serve_forever), Close, CloseClients, AbortClients, WaitClosed, plus
// Shutdown, which does them in order as http.Server.Shutdown does.
//
// # Errors
//
// Errors can be matched with errors.Is and errors.As: *LimitOverrunError matches
// ErrLimitOverrun; *IncompleteReadError matches io.ErrUnexpectedEOF (io.EOF when
// nothing was read); frame size errors match ErrFrameTooLarge. io.EOF is returned
// bare. Use after Close or Abort matches net.ErrClosed. A passed deadline is a
// net.Error whose Timeout() is true (os.ErrDeadlineExceeded).
//
// # Cancellation
//
// Every blocking call takes a context or honours a deadline. Cancelling a read's
// context returns ctx.Err() and loses no byte: whatever had arrived stays
// buffered for the next call. Internally the context's end moves the read
// deadline into the past (context.AfterFunc), so a blocked read returns at once;
// the user's own deadline is restored afterwards.
package sluice
