package sluice

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/pires/go-proxyproto"
)

// ErrProxyHeader is matched (errors.Is) by every failure of a PROXY protocol
// header on a Server with WithProxyProtocol: a header that is missing under
// ProxyRequired, malformed, cut short by EOF, or not complete by the deadline
// (that error also matches os.ErrDeadlineExceeded). The message carries the
// reason.
var ErrProxyHeader = errors.New("sluice: bad or missing PROXY protocol header")

// ProxyProtocol says whether a Server expects a PROXY protocol header at the
// start of every connection it accepts: HAProxy's version 1 (text) or version 2
// (binary), as specified in
// https://github.com/haproxy/haproxy/blob/master/doc/proxy-protocol.txt. The
// header carries the addresses of the connection a proxy in front of the Server
// accepted; RemoteAddr and LocalAddr then report them. See WithProxyProtocol.
type ProxyProtocol int

const (
	// ProxyOff reads no header: the connection's first bytes are data. The
	// default.
	ProxyOff ProxyProtocol = iota

	// ProxyOptional honours a PROXY v1 or v2 header if one comes first, and
	// takes the connection as it is otherwise: also a client that sends nothing
	// until the header's time is up (one that waits for the server to speak
	// first, which it then does that much later). HAProxy's spec forbids this
	// guessing, for good reason: any client can claim any address. Use it only
	// where every client comes through a trusted proxy (for example while
	// turning the proxy's header on).
	ProxyOptional

	// ProxyRequired refuses a connection that does not start with a valid
	// header.
	ProxyRequired
)

// The sizes HAProxy's spec sets.
const (
	proxyV1Max     = 107         // the longest v1 line, CRLF included
	proxyV2Fixed   = 16          // the v2 signature, version and command, family, length
	proxyV2Max     = 16 + 0xffff // the fixed part and the longest address block
	proxyFirstRead = 256         // the first read: a v1 line, or a v2 header with a few TLVs
)

var (
	proxyV1Prefix = []byte("PROXY ")
	proxyV2Sig    = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// proxyInfo is what reading the header found.
type proxyInfo struct {
	// remote and local are the addresses the header carries, as *net.TCPAddr;
	// nil for a v2 LOCAL header, v1 UNKNOWN, a UDP or Unix family, or no header.
	remote, local net.Addr

	// rest holds the bytes read past the header (or, with no header, every byte
	// read): the connection's first data, in order.
	rest []byte
}

// readProxyHeader reads a PROXY protocol header from nc as mode asks, and
// returns the addresses it carries and the bytes read past it. With ProxyOff it
// returns at once and reads nothing.
//
// It blocks until a header is complete, the bytes received cannot begin one (a
// client that sends "GE" and waits for an answer is not kept waiting), the peer
// closes or resets, or deadline passes (a zero deadline means none); nc's read
// deadline is zero again when it returns. Without a header, it returns every
// byte read in rest and no error under ProxyOptional (also where nothing came
// before the deadline), and an error matching ErrProxyHeader under
// ProxyRequired. Every failure of the header itself matches
// ErrProxyHeader (and, at the deadline, os.ErrDeadlineExceeded); a read error
// such as a reset is returned wrapped, without it.
//
// v2 headers of a UDP or Unix family are accepted and their addresses ignored,
// as the spec allows (the real endpoints stand, as for LOCAL); family bytes the
// spec does not define are an error.
//
// rest is the caller's. The buffer grows with the bytes received, never past
// the longest header the spec allows (16 bytes and 64 KiB), whatever a header
// claims; reading stops there, so the data after the longest headers may be
// left in nc rather than in rest.
func readProxyHeader(nc net.Conn, mode ProxyProtocol, deadline time.Time) (proxyInfo, error) {
	if mode != ProxyOptional && mode != ProxyRequired {
		return proxyInfo{}, nil
	}
	if err := nc.SetReadDeadline(deadline); err != nil {
		return proxyInfo{}, fmt.Errorf("sluice: reading PROXY protocol header: %w", err)
	}
	defer nc.SetReadDeadline(time.Time{})

	buf := make([]byte, 0, proxyFirstRead)
	var rerr error // the last read's error, acted on once buf is judged
	for {
		// Judge what has arrived: a complete header, none, or not yet known.
		n, err := proxyHeaderLen(buf)
		switch {
		case err != nil:
			return proxyInfo{}, err
		case n > 0:
			return parseProxyHeader(buf, n)
		case n < 0:
			return noProxyHeader(buf, mode)
		case rerr != nil:
			return proxyReadFailed(buf, mode, rerr)
		}

		// Read more. Only a v2 header needs more than the first read holds:
		// double the buffer (exactly: append's growth overshoots), never past
		// the longest header the spec allows.
		if len(buf) == cap(buf) {
			buf = append(make([]byte, 0, min(2*cap(buf), proxyV2Max)), buf...)
		}
		var m int
		m, rerr = nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
	}
}

// proxyHeaderLen reports the length of the header b starts with, if b holds it
// whole (n > 0); 0 if b could still begin a header, so more bytes are needed;
// n < 0 if b cannot begin one. A v1 line longer than the spec allows is an
// error. Only the framing is checked here; go-proxyproto judges the contents.
func proxyHeaderLen(b []byte) (n int, err error) {
	switch {
	case len(b) == 0:
		return 0, nil
	case couldBegin(b, proxyV1Prefix):
		if len(b) < len(proxyV1Prefix) {
			return 0, nil
		}
		if i := bytes.IndexByte(b[:min(len(b), proxyV1Max)], '\n'); i >= 0 {
			return i + 1, nil
		}
		if len(b) >= proxyV1Max {
			return 0, fmt.Errorf("%w: %w", ErrProxyHeader, proxyproto.ErrVersion1HeaderTooLong)
		}
		return 0, nil
	case couldBegin(b, proxyV2Sig):
		if len(b) < proxyV2Fixed {
			return 0, nil
		}
		n := proxyV2Fixed + int(binary.BigEndian.Uint16(b[14:16]))
		if len(b) < n {
			return 0, nil
		}
		return n, nil
	}
	return -1, nil
}

// couldBegin reports whether b and sig agree on their common length: whether b
// is sig's start or starts with sig.
func couldBegin(b, sig []byte) bool {
	n := min(len(b), len(sig))
	return bytes.Equal(b[:n], sig[:n])
}

// parseProxyHeader parses the header that is buf's first n bytes with
// go-proxyproto, and keeps the rest of buf as data.
func parseProxyHeader(buf []byte, n int) (proxyInfo, error) {
	// The header is handed over whole, in a buffer that holds it whole:
	// go-proxyproto refuses a v1 line that takes more than one read, and a v2
	// header longer than its bufio.Reader.
	r := bufio.NewReaderSize(bytes.NewReader(buf[:n]), n)
	h, err := proxyproto.Read(r)
	if err != nil {
		return proxyInfo{}, fmt.Errorf("%w: %w", ErrProxyHeader, err)
	}
	info := proxyInfo{rest: buf[n:]}
	if h.Command.IsLocal() { // v2 LOCAL, v1 UNKNOWN: the real endpoints stand
		return info, nil
	}
	switch h.TransportProtocol {
	case proxyproto.TCPv4, proxyproto.TCPv6:
		remote, local, ok := h.TCPAddrs()
		if !ok {
			return proxyInfo{}, fmt.Errorf("%w: no TCP addresses in a %#x header", ErrProxyHeader, byte(h.TransportProtocol))
		}
		info.remote, info.local = remote, local
	case proxyproto.UDPv4, proxyproto.UDPv6, proxyproto.UnixStream, proxyproto.UnixDatagram:
		// Valid, but not addresses a TCP Conn can report: the spec lets a
		// receiver fall back to the real endpoints, as for AF_UNSPEC.
	default:
		return proxyInfo{}, fmt.Errorf("%w: %w %#x", ErrProxyHeader, proxyproto.ErrUnsupportedAddressFamilyAndProtocol, byte(h.TransportProtocol))
	}
	return info, nil
}

// noProxyHeader is the outcome for a connection whose first bytes, buf, are not
// a header.
func noProxyHeader(buf []byte, mode ProxyProtocol) (proxyInfo, error) {
	if mode == ProxyRequired {
		return proxyInfo{}, fmt.Errorf("%w: the connection does not start with one", ErrProxyHeader)
	}
	return proxyInfo{rest: buf}, nil
}

// proxyReadFailed is the outcome for a read error before buf could be judged.
func proxyReadFailed(buf []byte, mode ProxyProtocol, err error) (proxyInfo, error) {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && mode == ProxyOptional && len(buf) == 0:
		// Nothing came at all: a client that waits for the server to speak
		// first (SMTP, FTP), not a proxy, which sends its header at once.
		// go-proxyproto's USE policy takes it so too.
		return noProxyHeader(buf, mode)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return proxyInfo{}, fmt.Errorf("%w: timed out waiting for it: %w", ErrProxyHeader, err)
	case !errors.Is(err, io.EOF):
		return proxyInfo{}, fmt.Errorf("sluice: reading PROXY protocol header: %w", err)
	case !bytes.HasPrefix(buf, proxyV1Prefix) && !bytes.HasPrefix(buf, proxyV2Sig):
		// EOF before a signature was complete: what came cannot be a header.
		return noProxyHeader(buf, mode)
	}
	return proxyInfo{}, fmt.Errorf("%w: %w", ErrProxyHeader, io.ErrUnexpectedEOF)
}
