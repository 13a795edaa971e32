// Package sluice is Python's asyncio streams rebuilt for Go: connections you
// range over, hand between goroutines as channels, and write through a bounded,
// byte-counted queue whose watermarks give Drain its meaning.
//
// The entry points are Dial (asyncio's open_connection), Listen (start_server),
// NewConn and NewServer over a connection or listener you already have, Pipe (a
// connected pair over a socket pair) and NewReader (a standalone reading half
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
//			c.Write(append(line, '\n')) // line's capacity is its length: append copies
//		}
//		return nil // the server flushes and closes c
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
// the buffer's free room. Buffers come from pools shared by every connection and
// grow with the bytes that arrive, never with what a header announces; over a
// TCP or Unix socket, a Conn waiting for data holds no read buffer at all. Read
// makes a Conn an io.Reader and a net.Conn. A reset is never taken for EOF.
//
// Only one goroutine reads at a time: a context-taking read started while
// another is under way returns ErrConcurrentRead at once, rather than racing.
//
// # Iterators and channels
//
// Lines, Chunks and Frames return single-use iterators (iter.Seq2[[]byte,
// error]). EOF ends the loop without an error; any other error is yielded once
// and ends it. The yielded slice points into the Conn's buffer and is valid
// until the next step, as bufio.Scanner.Bytes; its capacity is its length, so an
// append to it copies. A step allocates nothing. Breaking out loses nothing:
// unread data stays buffered.
//
// A loop holds the Conn's reading half from its first step to its end, so that
// a step costs no atomic operation: another read meanwhile, from another
// goroutine or from the loop's own body, returns ErrConcurrentRead. To read a
// body after a header line, or to StartTLS after a STARTTLS line, break out of
// the loop first; a new loop goes on where the last one stopped.
//
// LineChan, ChunkChan and FrameChan are the channel forms, for select and
// goroutine pipelines: a Stream whose producer goroutine sends owned copies on
// C, closes C when it ends, and reports why through Err. Stop ends it early.
//
// # Writing and backpressure
//
// Write copies into a queue counted in bytes and returns without a syscall.
// Writing is paused once the queue passes its high watermark and resumes at its
// low watermark (WithWriteBufferLimits, default 64 KiB and 16 KiB): a Write into
// a queue that is not paused is accepted at once, even past the high watermark;
// a Write into a paused queue blocks until writing resumes or the write deadline
// passes. Drain has asyncio's hysteresis: while writing is paused it waits for
// the low watermark, honouring its ctx; otherwise it returns at once. So a
// Write + Drain loop always waits in Drain, where ctx is honoured, and memory is
// bounded by the high watermark plus one Write. Flush waits until the queue is
// empty. A write error sticks and is returned by the next Write, Drain, Flush or
// Close: it is never lost. Close sends what is queued (bounded by the write
// deadline or WithCloseTimeout), then closes; Abort drops it and resets a TCP
// connection.
//
// A writer goroutine, alive only while there is something to send, hands
// everything queued to the kernel in one write(2), so many small writes cost
// one syscall. Where reads and writes alternate on a Conn (a request/response
// client, a handler's loop), a Write leaves its bytes for the Conn's next read,
// which sends them itself, without waiting, just before it waits for the
// reply; Drain, Flush and Close send them too, and a timer sends them if none
// of these comes: within a millisecond on a Conn that leaves writes waiting
// like that, within 64 ms at worst on one that reads or drains soon after each
// write (the timer backs off while it finds nothing to do). In a Lines, Frames
// or Chunks loop they go out when the loop next reads from the socket (so the
// replies to pipelined requests go out together) or ends, and otherwise within
// 200 ms at worst (100 ms on a Conn of its own; a Server's connections share
// one goroutine that looks every 100 ms): a loop body that writes and then
// waits on something other than the Conn, or a goroutine that writes while the
// body runs, calls Drain for the bytes to go out at once.
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
// # Pipelines
//
// Values go back into a Conn through WriteFrom and WriteFramesFrom, which pace
// themselves with Drain. Map runs a step on several values at once and keeps
// their order; Merge joins channels. Relay copies two Conns into each other,
// passing a half-close on as a half-close and a reset as a reset, and lets the
// kernel move the bytes between plain TCP connections on Linux. A Hub
// broadcasts to the Conns that joined it without ever waiting for one. Every
// stage holds a bounded number of values, so a slow consumer at the end of a
// pipeline slows the socket at its start.
//
// # Servers
//
// A Server runs its Handler in a goroutine per connection and closes the
// connection when the handler returns. Its lifecycle is asyncio's Server:
// Serve (serve_forever), Close, CloseClients, AbortClients, WaitClosed, plus
// Shutdown, which does them in order as http.Server.Shutdown does. A handler's
// ctx is cancelled as soon as its Conn is closed or aborted by anyone.
//
// For production: WithIdleTimeout drops a connection on which nothing moves,
// WithMessageTimeout one whose lines or frames arrive a byte at a time,
// WithMaxConns caps the connections served at once, and WithProxyProtocol reads
// HAProxy's PROXY header behind a load balancer. Conn.Stats and Server.Stats
// count bytes, Drain waits, errors, panics, timeouts and rejections exactly and
// cheaply; publish them with expvar (see ExampleServer_Stats).
//
// # Platforms
//
// sluice is tested on Linux (amd64, and 386 for 32-bit ints) and builds, with
// its examples and tests, for macOS, FreeBSD and Windows, on amd64 and arm64
// (FreeBSD: amd64). Where a platform lacks a feature, the call that needs it
// returns an error matching errors.ErrUnsupported; nothing is silently
// ignored.
//
//   - Linux has everything: "@name" Unix socket addresses name the abstract
//     namespace, and WithReusePort's sockets share out new connections.
//   - macOS and FreeBSD have everything but abstract sockets: "@name" fails
//     Listen and Dial with ErrUnsupported. WithReusePort lets servers share a
//     port, but the kernel does not spread connections among them.
//   - On Windows, Pipe is an AF_UNIX connection (Windows 10 version 1803 and
//     later) or, failing that, loopback TCP; both half-close. WithBacklog and
//     WithReusePort(true) fail Listen with ErrUnsupported. WithReuseAddress(true)
//     sets nothing, since Windows rebinds ports left in TIME_WAIT by default;
//     false sets SO_EXCLUSIVEADDRUSE. Reads and writes go through the socket's
//     net.Conn, so a Conn waiting for data holds its read buffer, and every
//     send goes through the writer goroutine. Error numbers are Winsock's
//     (windows.WSAECONNRESET, WSAEADDRINUSE, ... from golang.org/x/sys/windows),
//     not syscall.ECONNRESET and the like.
//
// # Errors
//
// Errors can be matched with errors.Is and errors.As: *LimitOverrunError matches
// ErrLimitOverrun; *IncompleteReadError matches io.ErrUnexpectedEOF (io.EOF when
// nothing was read); frame size errors match ErrFrameTooLarge. io.EOF is returned
// bare. Use after Close or Abort matches net.ErrClosed. A passed deadline is a
// net.Error whose Timeout() is true (os.ErrDeadlineExceeded), and so are
// ErrIdleTimeout and ErrMessageTimeout.
//
// # Cancellation
//
// Every blocking call takes a context or honours a deadline. A read looks at its
// context when it must wait for data; cancelling it returns ctx.Err() and loses
// no byte: whatever had arrived stays buffered for the next call. Internally the
// context's end moves the read deadline into the past (context.AfterFunc, armed
// once per context rather than per read), so a blocked read returns at once;
// the user's own deadline is restored afterwards.
package sluice
