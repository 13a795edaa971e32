package sluice

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
)

// Headers are built by hand from HAProxy's spec (proxy-protocol.txt, sections
// 2.1 and 2.2), never with go-proxyproto, so the tests check the parser against
// the spec and not against itself.
const (
	proxySig = "\r\n\r\n\x00\r\nQUIT\n" // the v2 signature

	// TCP or UDP over IPv4: 192.0.2.1 and 198.51.100.2, ports 56324 and 443.
	v4Addrs = "\xc0\x00\x02\x01" + "\xc6\x33\x64\x02" + "\xdc\x04" + "\x01\xbb"

	// TCP or UDP over IPv6: 2001:db8::1 and 2001:db8::2, ports 56324 and 443.
	v6Addrs = "\x20\x01\x0d\xb8" + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" +
		"\x20\x01\x0d\xb8" + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02" +
		"\xdc\x04" + "\x01\xbb"

	// TLVs: PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY "example.com", PP2_TYPE_NOOP.
	tlvALPN      = "\x01\x00\x02" + "h2"
	tlvAuthority = "\x02\x00\x0b" + "example.com"
	tlvNoop      = "\x04\x00\x03" + "\x00\x00\x00"

	v4Remote, v4Local = "192.0.2.1:56324", "198.51.100.2:443"
	v6Remote, v6Local = "[2001:db8::1]:56324", "[2001:db8::2]:443"

	ffff6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" // the longest IPv6 text
)

// v2Header returns a v2 header: the signature, the version-and-command byte, the
// family byte, and the address block made of parts, preceded by its length.
func v2Header(verCmd, fam byte, parts ...string) string {
	block := strings.Join(parts, "")
	return v2HeaderLen(verCmd, fam, len(block), block)
}

// v2HeaderLen is v2Header with a length field that need not match the block.
func v2HeaderLen(verCmd, fam byte, n int, block string) string {
	return proxySig + string([]byte{verCmd, fam, byte(n >> 8), byte(n)}) + block
}

// unixAddrs is a v2 AF_UNIX address block: two 108-byte, NUL-padded paths.
func unixAddrs(src, dst string) string {
	pad := func(s string) string { return s + strings.Repeat("\x00", 108-len(s)) }
	return pad(src) + pad(dst)
}

// noopTLV is a PP2_TYPE_NOOP TLV whose value is n zero bytes.
func noopTLV(n int) string {
	return "\x04" + string([]byte{byte(n >> 8), byte(n)}) + strings.Repeat("\x00", n)
}

// goodProxyHeaders are valid headers and the addresses readProxyHeader must
// report ("" where the real endpoints stand).
var goodProxyHeaders = []struct {
	name          string
	header        string
	remote, local string
}{
	{"v1 TCP4", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", v4Remote, v4Local},
	{"v1 TCP6", "PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n", v6Remote, v6Local},
	{"v1 TCP6 longest", "PROXY TCP6 " + ffff6 + " " + ffff6 + " 65535 65535\r\n",
		"[" + ffff6 + "]:65535", "[" + ffff6 + "]:65535"},
	{"v1 UNKNOWN", "PROXY UNKNOWN\r\n", "", ""},
	{"v1 UNKNOWN longest", "PROXY UNKNOWN " + ffff6 + " " + ffff6 + " 65535 65535\r\n", "", ""},
	{"v2 TCP4", v2Header(0x21, 0x11, v4Addrs), v4Remote, v4Local},
	{"v2 TCP6", v2Header(0x21, 0x21, v6Addrs), v6Remote, v6Local},
	{"v2 LOCAL", v2Header(0x20, 0x00), "", ""},
	{"v2 LOCAL with addresses", v2Header(0x20, 0x11, v4Addrs), "", ""},
	{"v2 TCP4 with TLVs", v2Header(0x21, 0x11, v4Addrs, tlvALPN, tlvAuthority, tlvNoop), v4Remote, v4Local},
	{"v2 TCP6 with TLVs", v2Header(0x21, 0x21, v6Addrs, tlvAuthority), v6Remote, v6Local},
	{"v2 UDP4", v2Header(0x21, 0x12, v4Addrs), "", ""},
	{"v2 UDP6", v2Header(0x21, 0x22, v6Addrs), "", ""},
	{"v2 Unix stream", v2Header(0x21, 0x31, unixAddrs("/run/a.sock", "/run/b.sock")), "", ""},
	{"v2 Unix datagram", v2Header(0x21, 0x32, unixAddrs("/run/a.sock", "/run/b.sock")), "", ""},
	{"v2 longest", v2Header(0x21, 0x11, v4Addrs, noopTLV(0xffff-len(v4Addrs)-3)), v4Remote, v4Local},
}

// slowSenderPause is how long a slow sender waits between writes, so that each
// write reaches the receiver as its own segment.
const slowSenderPause = time.Millisecond

// sendSlowly writes parts to c, one write each, pausing between them, and
// returns a channel that receives the first write error (or nil) once done.
func sendSlowly(c net.Conn, parts ...string) <-chan error {
	done := make(chan error, 1)
	go func() { // ends after the last write; the test waits with waitSent
		var err error
		for i, p := range parts {
			if i > 0 {
				time.Sleep(slowSenderPause)
			}
			if _, err = io.WriteString(c, p); err != nil {
				break
			}
		}
		done <- err
	}()
	return done
}

func waitSent(t testing.TB, sent <-chan error) {
	t.Helper()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatalf("sending: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("sender still writing")
	}
}

// splitEvery cuts s into pieces of n bytes (the last one shorter).
func splitEvery(s string, n int) []string {
	var parts []string
	for len(s) > n {
		parts = append(parts, s[:n])
		s = s[n:]
	}
	return append(parts, s)
}

// splitAt cuts s at the offsets given (in increasing order) that fall inside it.
func splitAt(s string, at ...int) []string {
	var parts []string
	prev := 0
	for _, i := range at {
		if i > prev && i < len(s) {
			parts = append(parts, s[prev:i])
			prev = i
		}
	}
	return append(parts, s[prev:])
}

// withLast returns parts with data appended to the last one, so the data shares
// the header's last segment.
func withLast(parts []string, data string) []string {
	parts = append([]string(nil), parts...)
	parts[len(parts)-1] += data
	return parts
}

// modeName names a mode in subtest names.
func modeName(m ProxyProtocol) string {
	return [...]string{"off", "optional", "required"}[m]
}

// headerName is "v1" or "v2", for subtest names.
func headerName(h string) string {
	if strings.HasPrefix(h, "PROXY ") {
		return "v1"
	}
	return "v2"
}

type proxyResult struct {
	info proxyInfo
	err  error
}

// readHeaderWithin runs readProxyHeader on nc and fails the test unless it
// returns within bound, which the callers keep well below deadline when they
// test that it returns early.
func readHeaderWithin(t testing.TB, nc net.Conn, mode ProxyProtocol, deadline time.Time, bound time.Duration) (proxyInfo, error) {
	t.Helper()
	done := make(chan proxyResult, 1)
	go func() { // ends by deadline, or when cleanup closes nc
		info, err := readProxyHeader(nc, mode, deadline)
		done <- proxyResult{info, err}
	}()
	select {
	case r := <-done:
		return r.info, r.err
	case <-time.After(bound):
		t.Fatalf("readProxyHeader still blocked after %v", bound)
		return proxyInfo{}, nil
	}
}

// readHeader runs readProxyHeader with a deadline testTimeout away.
func readHeader(t testing.TB, nc net.Conn, mode ProxyProtocol) (proxyInfo, error) {
	t.Helper()
	return readHeaderWithin(t, nc, mode, time.Now().Add(testTimeout), testTimeout+time.Second)
}

// withNextReads returns rest followed by what nc gives next, n bytes in all
// (rest may hold more than n).
func withNextReads(t testing.TB, nc net.Conn, rest []byte, n int) string {
	t.Helper()
	got := make([]byte, max(n, len(rest)))
	m := copy(got, rest)
	if err := nc.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(nc, got[m:]); err != nil {
		t.Fatalf("reading after the header: %v", err)
	}
	return string(got)
}

// addrString is a's address, or "" for nil; a must be a *net.TCPAddr.
func addrString(t testing.TB, a net.Addr) string {
	t.Helper()
	if a == nil {
		return ""
	}
	if _, ok := a.(*net.TCPAddr); !ok {
		t.Fatalf("address %v is a %T, not a *net.TCPAddr", a, a)
	}
	return a.String()
}

func TestProxyHeaderGood(t *testing.T) {
	slow(t)
	const data = "GET / HTTP/1.0\r\n\r\n"
	for _, h := range goodProxyHeaders {
		size := max(1, len(h.header)/64) // byte by byte, but not 64 KiB of writes
		deliveries := []struct {
			name  string
			parts []string
			rest  string
		}{
			{"one write", []string{h.header}, ""},
			{"one write with data", []string{h.header + data}, data},
			{fmt.Sprintf("%d-byte writes", size), splitEvery(h.header, size), ""},
			{fmt.Sprintf("%d-byte writes with data", size), withLast(splitEvery(h.header, size), data), data},
			{"split in the signature", withLast(splitAt(h.header, 3, 5, 11, 13, 15), data), data},
		}
		for _, d := range deliveries {
			for _, mode := range []ProxyProtocol{ProxyOptional, ProxyRequired} {
				t.Run(fmt.Sprintf("%s/%s/%s", h.name, d.name, modeName(mode)), func(t *testing.T) {
					is := is.New(t)
					client, server := tcpPair(t)
					sent := sendSlowly(client, d.parts...)
					info, err := readHeader(t, server, mode)
					is.NoErr(err)
					is.Equal(addrString(t, info.remote), h.remote)
					is.Equal(addrString(t, info.local), h.local)
					if len(h.header) < proxyFirstRead {
						is.Equal(string(info.rest), d.rest) // read with the header's end
					} else {
						// Reading stops at the longest header's end: the data
						// may be left in the socket.
						is.Equal(withNextReads(t, server, info.rest, len(d.rest)), d.rest)
					}
					waitSent(t, sent)
				})
			}
		}
	}
}

// TestProxyHeaderEverySplit sends a header and data in two writes, cut at every
// offset: the result must not depend on how the bytes arrive.
func TestProxyHeaderEverySplit(t *testing.T) {
	const data = "hello\r\n"
	for _, h := range []string{goodProxyHeaders[0].header, v2Header(0x21, 0x11, v4Addrs, tlvALPN)} {
		all := h + data
		for i := 1; i < len(all); i++ {
			t.Run(fmt.Sprintf("%s/at %d", headerName(h), i), func(t *testing.T) {
				is := is.New(t)
				client, server := tcpPair(t)
				sent := sendSlowly(client, all[:i], all[i:])
				info, err := readHeader(t, server, ProxyRequired)
				is.NoErr(err)
				is.Equal(addrString(t, info.remote), v4Remote)
				is.Equal(addrString(t, info.local), v4Local)
				waitSent(t, sent)
				// The data arrives in rest, in the next reads, or across both.
				is.Equal(withNextReads(t, server, info.rest, len(data)), data)
			})
		}
	}
}

// TestProxyHeaderLotsOfData sends a header and 1 MiB in one stream: rest and
// the reads after it give back every byte, in order.
func TestProxyHeaderLotsOfData(t *testing.T) {
	for _, h := range []string{goodProxyHeaders[0].header, v2Header(0x21, 0x11, v4Addrs)} {
		t.Run(headerName(h), func(t *testing.T) {
			is := is.New(t)
			client, server := tcpPair(t)
			data := make([]byte, 1<<20)
			for i := range data {
				data[i] = byte(i * 7)
			}
			sent := sendSlowly(client, h+string(data))
			info, err := readHeader(t, server, ProxyRequired)
			is.NoErr(err)
			is.Equal(addrString(t, info.remote), v4Remote)
			is.True(withNextReads(t, server, info.rest, len(data)) == string(data))
			waitSent(t, sent)
		})
	}
}

// TestProxyNoHeader sends bytes that cannot begin a header, and keeps the
// connection open: the answer comes at once, not at the deadline, and nothing
// read is lost.
func TestProxyNoHeader(t *testing.T) {
	for _, tc := range []struct{ name, sent string }{
		{"HTTP request", "GET / HTTP/1.0\r\n"},
		{"client waiting after GE", "GE"},
		{"one byte", "G"},
		{"TLS ClientHello start", "\x16\x03\x01\x02\x00"},
		{"PROXY without the space", "PROXY\r\n"},
		{"PROXZ", "PROXZ"},
		{"v1 prefix in lower case", "proxy TCP4"},
		{"CRLF CRLF then not NUL", "\r\n\r\nX"},
		{"v2 signature wrong in its last byte", proxySig[:11] + "X"},
	} {
		for _, mode := range []ProxyProtocol{ProxyOptional, ProxyRequired} {
			t.Run(fmt.Sprintf("%s/%s", tc.name, modeName(mode)), func(t *testing.T) {
				is := is.New(t)
				client, server := tcpPair(t)
				_, err := io.WriteString(client, tc.sent)
				is.NoErr(err)
				// A deadline far beyond the bound: returning within the bound
				// shows the decision did not wait for it.
				info, err := readHeaderWithin(t, server, mode, time.Now().Add(6*testTimeout), testTimeout)
				if mode == ProxyRequired {
					is.True(errors.Is(err, ErrProxyHeader))
					is.True(!errors.Is(err, os.ErrDeadlineExceeded))
					return
				}
				is.NoErr(err)
				is.Equal(info.remote, nil)
				is.Equal(info.local, nil)
				is.Equal(string(info.rest), tc.sent)
			})
		}
	}
}

// TestProxyHeaderEOF closes the client's side before a header is complete.
func TestProxyHeaderEOF(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sent     string
		optional error // the error under ProxyOptional; nil: no header, rest == sent
	}{
		{"nothing", "", nil},
		{"part of the v1 prefix", "PROX", nil},
		{"part of the v2 signature", proxySig[:11], nil},
		{"v1 cut short", "PROXY TCP4 192.0", io.ErrUnexpectedEOF},
		{"v2 cut short in the fixed part", proxySig + "\x21", io.ErrUnexpectedEOF},
		{"v2 cut short in the addresses", v2Header(0x21, 0x11, v4Addrs)[:20], io.ErrUnexpectedEOF},
	} {
		for _, mode := range []ProxyProtocol{ProxyOptional, ProxyRequired} {
			t.Run(fmt.Sprintf("%s/%s", tc.name, modeName(mode)), func(t *testing.T) {
				is := is.New(t)
				client, server := tcpPair(t)
				_, err := io.WriteString(client, tc.sent)
				is.NoErr(err)
				is.NoErr(client.(*net.TCPConn).CloseWrite())
				info, err := readHeader(t, server, mode)
				switch {
				case tc.optional != nil:
					is.True(errors.Is(err, ErrProxyHeader))
					is.True(errors.Is(err, tc.optional))
				case mode == ProxyRequired:
					is.True(errors.Is(err, ErrProxyHeader))
				default:
					is.NoErr(err)
					is.Equal(string(info.rest), tc.sent)
				}
			})
		}
	}
}

// TestProxyHeaderTimeout: a client that stops inside a header gets an error at
// the deadline, in either mode, and so does one that sends nothing under
// ProxyRequired; under ProxyOptional that one has no header.
func TestProxyHeaderTimeout(t *testing.T) {
	slow(t)
	for _, tc := range []struct{ name, sent string }{
		{"silent", ""},
		{"stops in the v1 prefix", "PROX"},
		{"stops in the v1 line", "PROXY TCP4 192.0.2.1"},
		{"stops in the v2 signature", proxySig[:5]},
		{"stops in the v2 addresses", v2Header(0x21, 0x11, v4Addrs)[:20]},
		{"v2 length claims 64 KiB", v2HeaderLen(0x21, 0x11, 0xffff, v4Addrs)},
	} {
		for _, mode := range []ProxyProtocol{ProxyOptional, ProxyRequired} {
			t.Run(fmt.Sprintf("%s/%s", tc.name, modeName(mode)), func(t *testing.T) {
				is := is.New(t)
				client, server := tcpPair(t)
				_, err := io.WriteString(client, tc.sent)
				is.NoErr(err)
				deadline := time.Now().Add(200 * time.Millisecond)
				info, err := readHeaderWithin(t, server, mode, deadline, testTimeout)
				is.True(!time.Now().Before(deadline))
				if tc.sent == "" && mode == ProxyOptional {
					// A client waiting for the server to speak first: no header.
					is.NoErr(err)
					is.Equal(len(info.rest), 0)
					is.True(info.remote == nil)
					return
				}
				is.True(errors.Is(err, ErrProxyHeader))
				is.True(errors.Is(err, os.ErrDeadlineExceeded))
				var ne net.Error
				is.True(errors.As(err, &ne) && ne.Timeout())
			})
		}
	}
}

// TestProxyHeaderBad sends malformed headers, the connection left open: each is
// an error matching ErrProxyHeader, at once.
func TestProxyHeaderBad(t *testing.T) {
	for _, tc := range []struct{ name, sent string }{
		{"v1 bad address", "PROXY TCP4 192.0.2.256 198.51.100.2 56324 443\r\n"},
		{"v1 IPv6 address in TCP4", "PROXY TCP4 2001:db8::1 198.51.100.2 56324 443\r\n"},
		{"v1 IPv4 address in TCP6", "PROXY TCP6 192.0.2.1 2001:db8::2 56324 443\r\n"},
		{"v1 port out of range", "PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n"},
		{"v1 ports missing", "PROXY TCP4 192.0.2.1 198.51.100.2\r\n"},
		{"v1 two spaces", "PROXY TCP4  192.0.2.1 198.51.100.2 56324 443\r\n"},
		{"v1 unknown protocol", "PROXY UDP4 192.0.2.1 198.51.100.2 56324 443\r\n"},
		{"v1 LF without CR", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n"},
		{"v1 empty", "PROXY \r\n"},
		{"v1 108 bytes", "PROXY UNKNOWN " + ffff6 + " " + ffff6 + " 65535 655355\r\n"},
		{"v1 over 107 bytes without CRLF", "PROXY TCP4 " + strings.Repeat("1", 120)},
		{"v2 version 1", v2Header(0x11, 0x11, v4Addrs)},
		{"v2 version 3", v2Header(0x31, 0x11, v4Addrs)},
		{"v2 command 2", v2Header(0x22, 0x11, v4Addrs)},
		{"v2 length shorter than IPv4 addresses", v2HeaderLen(0x21, 0x11, 8, v4Addrs[:8])},
		{"v2 length shorter than IPv6 addresses", v2Header(0x21, 0x21, v4Addrs)},
		{"v2 length shorter than Unix addresses", v2Header(0x21, 0x31, v6Addrs)},
		{"v2 PROXY with AF_UNSPEC", v2Header(0x21, 0x00)},
		{"v2 family 4", v2Header(0x21, 0x41, v4Addrs)},
		{"v2 protocol 3", v2Header(0x21, 0x13, v4Addrs)},
		{"v2 IPv4 with no protocol", v2Header(0x21, 0x10, v4Addrs)},
	} {
		for _, mode := range []ProxyProtocol{ProxyOptional, ProxyRequired} {
			t.Run(fmt.Sprintf("%s/%s", tc.name, modeName(mode)), func(t *testing.T) {
				is := is.New(t)
				client, server := tcpPair(t)
				_, err := io.WriteString(client, tc.sent+"GET / HTTP/1.0\r\n\r\n")
				is.NoErr(err)
				_, err = readHeaderWithin(t, server, mode, time.Now().Add(6*testTimeout), testTimeout)
				is.True(errors.Is(err, ErrProxyHeader))
				is.True(!errors.Is(err, os.ErrDeadlineExceeded))
				// The reason follows the sentinel's message.
				is.True(strings.HasPrefix(err.Error(), ErrProxyHeader.Error()+": "))
				is.True(len(err.Error()) > len(ErrProxyHeader.Error())+2)
			})
		}
	}
}

// TestProxyHeaderReset: a peer's reset is a read error, not a header error.
func TestProxyHeaderReset(t *testing.T) {
	for _, mode := range []ProxyProtocol{ProxyOptional, ProxyRequired} {
		t.Run(modeName(mode), func(t *testing.T) {
			is := is.New(t)
			client, server := tcpPair(t)
			_, err := io.WriteString(client, "PROX")
			is.NoErr(err)
			is.NoErr(client.(*net.TCPConn).SetLinger(0))
			is.NoErr(client.Close()) // sends RST
			_, err = readHeader(t, server, mode)
			is.True(errors.Is(err, syscall.ECONNRESET))
			is.True(!errors.Is(err, ErrProxyHeader))
		})
	}
}

// TestProxyHeaderClearsDeadline: once the header is read, a read with no
// deadline of its own waits for data, past the deadline the header had.
func TestProxyHeaderClearsDeadline(t *testing.T) {
	for _, tc := range []struct {
		name, sent string
		mode       ProxyProtocol
	}{
		{"after a header", goodProxyHeaders[0].header, ProxyRequired},
		{"after no header", "GE", ProxyOptional},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			client, server := tcpPair(t)
			_, err := io.WriteString(client, tc.sent)
			is.NoErr(err)
			deadline := time.Now().Add(100 * time.Millisecond)
			_, err = readHeaderWithin(t, server, tc.mode, deadline, testTimeout)
			is.NoErr(err)

			read := make(chan proxyResult, 1)
			go func() { // ends when the client writes below, or cleanup closes server
				b := make([]byte, 16)
				n, err := server.Read(b)
				read <- proxyResult{proxyInfo{rest: b[:n]}, err}
			}()
			select {
			case r := <-read:
				t.Fatalf("read returned before any data: %q, %v", r.info.rest, r.err)
			case <-time.After(time.Until(deadline) + 200*time.Millisecond):
			}
			_, err = io.WriteString(client, "late")
			is.NoErr(err)
			select {
			case r := <-read:
				is.NoErr(r.err)
				is.Equal(string(r.info.rest), "late")
			case <-time.After(testTimeout):
				t.Fatal("read still blocked after the write")
			}
		})
	}
}

// TestProxyOff: with ProxyOff nothing is read, and the header is data.
func TestProxyOff(t *testing.T) {
	is := is.New(t)
	client, server := tcpPair(t)
	h := goodProxyHeaders[0].header
	_, err := io.WriteString(client, h)
	is.NoErr(err)
	info, err := readHeader(t, server, ProxyOff)
	is.NoErr(err)
	is.Equal(info, proxyInfo{})
	is.NoErr(server.SetReadDeadline(time.Now().Add(testTimeout)))
	got := make([]byte, len(h))
	_, err = io.ReadFull(server, got)
	is.NoErr(err)
	is.Equal(string(got), h)
}

// readSizeConn checks, on every Read, that the buffer offered is not out of
// proportion to the bytes received so far.
type readSizeConn struct {
	net.Conn
	received, worst int // worst: the largest len(p) - received seen
}

func (c *readSizeConn) Read(p []byte) (int, error) {
	c.worst = max(c.worst, len(p)-c.received)
	n, err := c.Conn.Read(p)
	c.received += n
	return n, err
}

// TestProxyHeaderMemory: a v2 header that claims 64 KiB gets a buffer that
// grows with what arrives, not with what it claims.
func TestProxyHeaderMemory(t *testing.T) {
	for _, sent := range []int{0, 1000, 5000} {
		t.Run(fmt.Sprintf("%d bytes of 64 KiB", sent), func(t *testing.T) {
			is := is.New(t)
			client, server := tcpPair(t)
			h := v2HeaderLen(0x21, 0x11, 0xffff, v4Addrs+strings.Repeat("\x00", sent))
			_, err := io.WriteString(client, h)
			is.NoErr(err)
			rc := &readSizeConn{Conn: server}
			_, err = readHeaderWithin(t, rc, ProxyRequired, time.Now().Add(200*time.Millisecond), testTimeout)
			is.True(errors.Is(err, os.ErrDeadlineExceeded))
			is.Equal(rc.received, len(h))
			// The buffer doubles when full: never more than the bytes received
			// plus the first read's size.
			is.True(rc.worst <= proxyFirstRead)
		})
	}
}

func TestWithProxyProtocol(t *testing.T) {
	is := is.New(t)
	cfg, err := newConfig(nil)
	is.NoErr(err)
	is.Equal(cfg.proxy, ProxyOff)
	for _, p := range []ProxyProtocol{ProxyOff, ProxyOptional, ProxyRequired} {
		cfg, err := newConfig([]Option{WithProxyProtocol(p)})
		is.NoErr(err)
		is.Equal(cfg.proxy, p)
	}
	for _, p := range []ProxyProtocol{-1, 3} {
		_, err := newConfig([]Option{WithProxyProtocol(p)})
		is.True(err != nil)
	}
}

// proxySeen is what a handler behind WithProxyProtocol reports of its Conn.
type proxySeen struct {
	remote, local, socketPeer string
	line                      string
}

// proxyServer runs a Server with the PROXY protocol in mode whose handler
// reports what it saw on seen and echoes the first line.
func proxyServer(t *testing.T, mode ProxyProtocol, opts ...Option) (*Server, <-chan proxySeen) {
	seen := make(chan proxySeen, 16)
	s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
		line, err := c.ReadLine(ctx)
		seen <- proxySeen{c.RemoteAddr().String(), c.LocalAddr().String(), c.NetConn().RemoteAddr().String(), string(line)}
		if err != nil {
			return err
		}
		_, err = c.Write(line)
		return err
	}, append(opts, WithProxyProtocol(mode), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))...)
	return s, seen
}

// Behind a proxy, a Server's Conns report the addresses the header carries
// (LOCAL keeps the real ones), the socket the proxy's, and the data after the
// header is the Conn's first data, however the header arrives.
func TestServerProxyProtocol(t *testing.T) {
	headers := []struct {
		name, header, remote, local string
	}{
		{"v1 TCP4", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", v4Remote, v4Local},
		{"v1 TCP6", "PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n", v6Remote, v6Local},
		{"v2 TCP4", v2Header(0x21, 0x11, v4Addrs), v4Remote, v4Local},
		{"v2 TCP6", v2Header(0x21, 0x21, v6Addrs), v6Remote, v6Local},
		{"v2 LOCAL", v2Header(0x20, 0x00), "", ""},
	}
	for _, mode := range []ProxyProtocol{ProxyOptional, ProxyRequired} {
		for _, h := range headers {
			for _, split := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/split=%v", modeName(mode), h.name, split)
				t.Run(name, func(t *testing.T) {
					srvNoLeaks(t)
					is := is.New(t)
					s, seen := proxyServer(t, mode)
					nc := srvDial(t, s.Addrs()[0])
					parts := []string{h.header + "hello\n"} // the header shares a write with data
					if split {
						parts = withLast(splitEvery(h.header, 1), "hello\n")
					}
					waitSent(t, sendSlowly(nc, parts...))
					got := recv(t, seen)
					is.Equal(got.line, "hello\n")
					is.Equal(got.socketPeer, nc.LocalAddr().String()) // the proxy's
					if h.remote == "" {                               // LOCAL: the real endpoints
						is.Equal(got.remote, nc.LocalAddr().String())
						is.Equal(got.local, nc.RemoteAddr().String())
					} else {
						is.Equal(got.remote, h.remote)
						is.Equal(got.local, h.local)
					}
					reply := make([]byte, 6)
					_, err := io.ReadFull(nc, reply)
					is.NoErr(err)
					is.Equal(string(reply), "hello\n")
					waitUntil(t, func() bool { return s.Stats().BytesRead == 6 }) // the header is not counted
				})
			}
		}
	}
}

// Without a header, ProxyRequired refuses the connection before its handler
// runs and counts it in Rejected; ProxyOptional serves it as it is.
func TestServerProxyMissing(t *testing.T) {
	t.Run("required", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		s, seen := proxyServer(t, ProxyRequired)
		nc := srvDial(t, s.Addrs()[0])
		nc.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		got, _ := io.ReadAll(nc)
		is.Equal(len(got), 0) // closed without a word
		waitUntil(t, func() bool { return s.Stats().Rejected == 1 })
		st := s.Stats()
		is.Equal(st.Accepted, int64(1))
		is.Equal(st.Errors, int64(0))
		quietFor(t, seen, 10*time.Millisecond, "the handler ran")
	})
	t.Run("optional", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		s, seen := proxyServer(t, ProxyOptional)
		nc := srvDial(t, s.Addrs()[0])
		nc.Write([]byte("GE")) // cannot begin a header: decided at once
		nc.Write([]byte("T\n"))
		got := recv(t, seen)
		is.Equal(got.line, "GET\n")
		is.Equal(got.remote, nc.LocalAddr().String())
		is.Equal(s.Stats().Rejected, int64(0))
	})
	t.Run("silent, within the idle timeout", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		s, seen := proxyServer(t, ProxyRequired, WithIdleTimeout(100*time.Millisecond))
		nc := srvDial(t, s.Addrs()[0])
		got, _ := io.ReadAll(nc) // refused once the idle timeout passes
		is.Equal(len(got), 0)
		waitUntil(t, func() bool { return s.Stats().Rejected == 1 })
		quietFor(t, seen, 10*time.Millisecond, "the handler ran")
	})
	t.Run("optional, silent: the server speaks first", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		s := srvListen(t, "tcp", "127.0.0.1:0", func(ctx context.Context, c *Conn) error {
			if _, err := c.Write([]byte("220 ready\n")); err != nil { // SMTP's greeting
				return err
			}
			_, err := c.ReadLine(ctx)
			return err
		}, WithProxyProtocol(ProxyOptional), WithIdleTimeout(100*time.Millisecond),
			WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		nc := srvDial(t, s.Addrs()[0])
		nc.SetReadDeadline(time.Now().Add(testTimeout))
		line, err := bufio.NewReader(nc).ReadString('\n') // once the header's time is up
		is.NoErr(err)
		is.Equal(line, "220 ready\n")
		is.Equal(s.Stats().Rejected, int64(0))
	})
	t.Run("AbortClients while the header is awaited", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		s, _ := proxyServer(t, ProxyRequired)
		nc := srvDial(t, s.Addrs()[0])
		nc.Write([]byte("PROXY TCP4 ")) // a header begun, not finished
		waitUntil(t, func() bool { return s.Stats().Accepted == 1 })
		s.AbortClients()
		got, _ := io.ReadAll(nc)
		is.Equal(len(got), 0)
		is.NoErr(s.Shutdown(testCtx(t)))
		is.Equal(s.Stats().Rejected, int64(0)) // closed by the Server, not refused
	})
}

// The header comes before TLS: the proxy's header, then the client's
// handshake, then data over TLS, and the Conn reports the header's addresses.
func TestServerProxyThenTLS(t *testing.T) {
	srvNoLeaks(t)
	is := is.New(t)
	s, seen := proxyServer(t, ProxyRequired, WithTLS(serverTLS()))
	nc := srvDial(t, s.Addrs()[0])
	_, err := io.WriteString(nc, v2Header(0x21, 0x11, v4Addrs))
	is.NoErr(err)
	cfg := clientTLS()
	cfg.ServerName = "localhost"
	tc := tls.Client(nc, cfg)
	tc.SetDeadline(time.Now().Add(testTimeout))
	_, err = tc.Write([]byte("secret\n"))
	is.NoErr(err)
	got := recv(t, seen)
	is.Equal(got.line, "secret\n")
	is.Equal(got.remote, v4Remote)
	reply := make([]byte, 7)
	_, err = io.ReadFull(tc, reply)
	is.NoErr(err)
	is.Equal(string(reply), "secret\n")
}
