package sluice

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/sourcegraph/conc"
)

func TestInterleaveFamilies(t *testing.T) {
	tests := []struct {
		name  string
		addrs string
		first int
		want  string
	}{
		{"empty", "", 1, ""},
		{"one family keeps its order", "10.0.0.3 10.0.0.1 10.0.0.2", 1, "10.0.0.3 10.0.0.1 10.0.0.2"},
		{"alternate from the first", "::1 ::2 ::3 1.0.0.1 1.0.0.2 1.0.0.3", 1, "::1 1.0.0.1 ::2 1.0.0.2 ::3 1.0.0.3"},
		{"first family is the first address's", "1.0.0.1 ::1 1.0.0.2 ::2", 1, "1.0.0.1 ::1 1.0.0.2 ::2"},
		{"mixed input keeps order within family", "::1 ::2 1.0.0.1 ::3 1.0.0.2", 1, "::1 1.0.0.1 ::2 1.0.0.2 ::3"},
		{"count 2", "::1 ::2 ::3 1.0.0.1 1.0.0.2 1.0.0.3", 2, "::1 ::2 1.0.0.1 ::3 1.0.0.2 1.0.0.3"},
		{"count 3", "::1 ::2 ::3 ::4 1.0.0.1 1.0.0.2", 3, "::1 ::2 ::3 1.0.0.1 ::4 1.0.0.2"},
		{"count beyond the first family", "::1 ::2 1.0.0.1 1.0.0.2", 5, "::1 ::2 1.0.0.1 1.0.0.2"},
		{"other family longer", "::1 1.0.0.1 1.0.0.2 1.0.0.3", 1, "::1 1.0.0.1 1.0.0.2 1.0.0.3"},
		{"first family longer", "1.0.0.1 1.0.0.2 1.0.0.3 ::1", 1, "1.0.0.1 ::1 1.0.0.2 1.0.0.3"},
		{"count 0 acts as 1", "::1 ::2 1.0.0.1", 0, "::1 1.0.0.1 ::2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			var in []netip.AddrPort
			for _, s := range strings.Fields(tt.addrs) {
				in = append(in, netip.AddrPortFrom(netip.MustParseAddr(s), 80))
			}
			var got []string
			for _, a := range interleaveFamilies(in, tt.first) {
				got = append(got, a.Addr().String())
			}
			is.Equal(strings.Join(got, " "), tt.want)
		})
	}
}

// TestDialRace races an address that never answers against one that works.
func TestDialRace(t *testing.T) {
	port, ls := listenSamePort(t, "127.0.0.2", "127.0.0.3")
	blackHole(t, ls[0])
	dns := startDNS(t, map[string][]string{
		"race.sluice.test.":  {"127.0.0.2", "127.0.0.3"},
		"twice.sluice.test.": {"127.0.0.2", "127.0.0.2"},
	})
	hole := net.JoinHostPort("127.0.0.2", port)
	working := net.JoinHostPort("127.0.0.3", port)

	for _, delay := range []time.Duration{100 * time.Millisecond, 0} {
		t.Run("delay "+delay.String(), func(t *testing.T) {
			is := is.New(t)
			cfg, tried := testConfig(t, WithResolver(dns.resolver()), WithHappyEyeballsDelay(delay))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			c, err := dialNet(ctx, "tcp", net.JoinHostPort("race.sluice.test", port), cfg)
			elapsed := time.Since(start)
			is.NoErr(err)
			defer c.Close()
			is.Equal(c.RemoteAddr().String(), working)
			is.Equal(*tried, []string{hole, working})
			// The black hole's connect would take minutes to give up; the
			// second attempt must not have waited for it.
			is.True(elapsed >= delay)
			is.True(elapsed < 5*time.Second)
			noRacers(t)
		})
	}

	t.Run("ctx bounds a lone attempt", func(t *testing.T) {
		is := is.New(t)
		cfg, _ := testConfig(t)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		c, err := dialNet(ctx, "tcp", hole, cfg)
		is.True(c == nil)
		is.Equal(err, context.DeadlineExceeded)
		is.True(time.Since(start) < 5*time.Second)
	})

	t.Run("cancel stops every running attempt", func(t *testing.T) {
		is := is.New(t)
		cfg, tried := testConfig(t, WithResolver(dns.resolver()), WithHappyEyeballsDelay(time.Millisecond))
		ctx, cancel := context.WithCancel(context.Background())
		cfg.dialAttempt = func(addr string) {
			*tried = append(*tried, addr)
			if len(*tried) == 2 {
				cancel() // both attempts are, or are about to be, blocked in connect
			}
		}
		c, err := dialNet(ctx, "tcp", net.JoinHostPort("twice.sluice.test", port), cfg)
		is.True(c == nil)
		is.Equal(err, context.Canceled)
		is.Equal(len(*tried), 2)
		noRacers(t)
	})
}

// TestDialFailureStartsNext checks that a refused attempt starts the next one at
// once instead of waiting out the delay.
func TestDialFailureStartsNext(t *testing.T) {
	is := is.New(t)
	port, _ := listenSamePort(t, "127.0.0.3")
	dns := startDNS(t, map[string][]string{"next.sluice.test.": {"127.0.0.2", "127.0.0.3"}})
	cfg, tried := testConfig(t, WithResolver(dns.resolver()), WithHappyEyeballsDelay(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialNet(ctx, "tcp", net.JoinHostPort("next.sluice.test", port), cfg)
	is.NoErr(err) // would be ctx's deadline had the hour-long delay been waited out
	defer c.Close()
	is.Equal(c.RemoteAddr().String(), net.JoinHostPort("127.0.0.3", port))
	is.Equal(len(*tried), 2)
}

// TestDialLoserClosed connects two attempts at once and checks that the one
// that lost is closed.
func TestDialLoserClosed(t *testing.T) {
	is := is.New(t)
	port, ls := listenSamePort(t, "127.0.0.2", "127.0.0.3")
	dns := startDNS(t, map[string][]string{"both.sluice.test.": {"127.0.0.2", "127.0.0.3"}})
	cfg, _ := testConfig(t, WithResolver(dns.resolver()), WithHappyEyeballsDelay(0))
	c, err := dialNet(context.Background(), "tcp", net.JoinHostPort("both.sluice.test", port), cfg)
	is.NoErr(err)
	defer c.Close()
	loser := ls[1]
	if c.RemoteAddr().String() == ls[1].Addr().String() {
		loser = ls[0]
	}
	// A marker connection, dialled now, queues behind the loser's if the loser
	// connected at all; whatever is accepted before it must be closed.
	marker, err := net.Dial("tcp", loser.Addr().String())
	is.NoErr(err)
	defer marker.Close()
	loser.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	for {
		s, err := loser.Accept()
		is.NoErr(err)
		if s.RemoteAddr().String() == marker.LocalAddr().String() {
			s.Close()
			return
		}
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = s.Read(make([]byte, 1))
		s.Close()
		is.Equal(err, io.EOF) // the losing attempt's socket was closed
	}
}

// TestRacerStopClosesLateConns checks the path TestDialLoserClosed can seldom
// reach: a losing attempt whose dial returned a connection before it saw the
// cancellation (usually net.Dialer closes such a socket itself).
func TestRacerStopClosesLateConns(t *testing.T) {
	is := is.New(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	defer l.Close()
	late, err := net.Dial("tcp", l.Addr().String())
	is.NoErr(err)
	peer, err := l.Accept()
	is.NoErr(err)
	defer peer.Close()

	r := &racer{results: make(chan dialResult, 2)}
	r.results <- dialResult{conn: late}
	r.results <- dialResult{err: errors.New("refused")}
	r.stop(func() {})
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = peer.Read(make([]byte, 1))
	is.Equal(err, io.EOF)
}

// TestDialOrder makes every attempt fail and checks the error and the order of
// the attempts.
func TestDialOrder(t *testing.T) {
	port := refusedPort(t)
	dns := startDNS(t, map[string][]string{
		"v4.sluice.test.": {"127.0.0.4", "127.0.0.2", "127.0.0.3"},
		// Go's resolver sorts as RFC 6724, which puts ::1 before 127/8, and ::1 is
		// the only IPv6 loopback address: it is listed twice so that the first
		// family has enough addresses for the interleave to show.
		"mixed.sluice.test.": {"127.0.0.2", "127.0.0.3", "::1", "::1"},
	})
	a := func(ip string) string { return net.JoinHostPort(ip, port) }
	tests := []struct {
		name       string
		host       string
		interleave int
		v6         bool
		want       []string
	}{
		{"one family keeps the resolver's order", "v4.sluice.test", 1, false, []string{a("127.0.0.4"), a("127.0.0.2"), a("127.0.0.3")}},
		{"interleave 1", "mixed.sluice.test", 1, true, []string{a("::1"), a("127.0.0.2"), a("::1"), a("127.0.0.3")}},
		{"interleave 2", "mixed.sluice.test", 2, true, []string{a("::1"), a("::1"), a("127.0.0.2"), a("127.0.0.3")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.v6 {
				needIPv6(t)
			}
			is := is.New(t)
			cfg, tried := testConfig(t, WithResolver(dns.resolver()), WithInterleave(tt.interleave))
			c, err := dialNet(context.Background(), "tcp", net.JoinHostPort(tt.host, port), cfg)
			is.True(c == nil)
			is.Equal(*tried, tt.want)
			msg := err.Error()
			is.True(strings.HasPrefix(msg, "sluice: "))
			is.True(errors.Is(err, errConnRefused))
			for _, addr := range tt.want {
				is.True(strings.Contains(msg, "dial tcp "+addr+": ")) // each attempt's error names its address
			}
			is.Equal(strings.Count(msg, "connection refused"), len(tt.want))
		})
	}
}

func TestDialFamily(t *testing.T) {
	port := refusedPort(t)
	dns := startDNS(t, map[string][]string{"dual.sluice.test.": {"127.0.0.2", "::1"}})
	a := func(ip string) string { return net.JoinHostPort(ip, port) }
	for _, tt := range []struct {
		network string
		want    []string
	}{
		{"tcp4", []string{a("127.0.0.2")}},
		{"tcp6", []string{a("::1")}},
	} {
		t.Run(tt.network, func(t *testing.T) {
			if tt.network == "tcp6" {
				needIPv6(t)
			}
			is := is.New(t)
			cfg, tried := testConfig(t, WithResolver(dns.resolver()))
			_, err := dialNet(context.Background(), tt.network, a("dual.sluice.test"), cfg)
			is.True(errors.Is(err, errConnRefused))
			is.Equal(*tried, tt.want)
		})
	}
	t.Run("literal of the wrong family", func(t *testing.T) {
		is := is.New(t)
		cfg, tried := testConfig(t)
		_, err := dialNet(context.Background(), "tcp6", a("127.0.0.1"), cfg)
		is.True(err != nil)
		is.True(strings.HasPrefix(err.Error(), "sluice: "))
		is.Equal(len(*tried), 0)
	})
}

func TestDialLiteral(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			if ip == "::1" {
				needIPv6(t)
			}
			is := is.New(t)
			l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
			is.NoErr(err)
			defer l.Close()
			dns := startDNS(t, nil)
			cfg, tried := testConfig(t, WithResolver(dns.resolver()))
			c, err := dialNet(context.Background(), "tcp", l.Addr().String(), cfg)
			is.NoErr(err)
			defer c.Close()
			is.Equal(c.RemoteAddr().String(), l.Addr().String())
			is.Equal(*tried, []string{l.Addr().String()})
			is.Equal(dns.queryCount(), 0) // a literal is not looked up
		})
	}
	t.Run("service name", func(t *testing.T) {
		is := is.New(t)
		cfg, tried := testConfig(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := dialNet(ctx, "tcp", "127.0.0.1:http", cfg); err == nil {
			c.Close() // something serves HTTP here; only the port matters
		}
		is.Equal(*tried, []string{"127.0.0.1:80"})
	})
}

func TestDialLocalAddr(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	dns := startDNS(t, map[string][]string{
		"local.sluice.test.": {"::1", "127.0.0.1"},
		"only4.sluice.test.": {"127.0.0.1"},
	})

	t.Run("literal", func(t *testing.T) {
		is := is.New(t)
		cfg, _ := testConfig(t, WithLocalAddr("127.0.0.5:0"))
		c, err := dialNet(context.Background(), "tcp", l.Addr().String(), cfg)
		is.NoErr(err)
		defer c.Close()
		is.Equal(c.LocalAddr().(*net.TCPAddr).IP.String(), "127.0.0.5")
	})
	t.Run("skips the family it cannot serve", func(t *testing.T) {
		is := is.New(t)
		cfg, tried := testConfig(t, WithResolver(dns.resolver()), WithLocalAddr("127.0.0.5:0"))
		c, err := dialNet(context.Background(), "tcp", net.JoinHostPort("local.sluice.test", port), cfg)
		is.NoErr(err)
		defer c.Close()
		is.Equal(*tried, []string{l.Addr().String()})
		is.Equal(c.LocalAddr().(*net.TCPAddr).IP.String(), "127.0.0.5")
	})
	t.Run("no family in common", func(t *testing.T) {
		is := is.New(t)
		cfg, tried := testConfig(t, WithResolver(dns.resolver()), WithLocalAddr("[::1]:0"))
		_, err := dialNet(context.Background(), "tcp", net.JoinHostPort("only4.sluice.test", port), cfg)
		is.True(err != nil)
		is.True(strings.Contains(err.Error(), "local address [::1]:0"))
		is.Equal(len(*tried), 0)
	})
}

func TestDialKeepAlive(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tt := range []struct {
		name string
		opts []Option
		want int
	}{
		{"default", nil, 1},
		{"disabled", []Option{WithKeepAlive(net.KeepAliveConfig{Enable: false})}, 0},
		{"enabled", []Option{WithKeepAlive(net.KeepAliveConfig{Enable: true, Idle: time.Minute})}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			cfg, _ := testConfig(t, tt.opts...)
			c, err := dialNet(context.Background(), "tcp", l.Addr().String(), cfg)
			is.NoErr(err)
			defer c.Close()
			raw, err := c.(*net.TCPConn).SyscallConn()
			is.NoErr(err)
			var on int
			var serr error
			is.NoErr(raw.Control(func(fd uintptr) {
				on, serr = getsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
			}))
			is.NoErr(serr)
			is.Equal(on != 0, tt.want != 0)
		})
	}
}

func TestDialContextBoundsResolution(t *testing.T) {
	is := is.New(t)
	dns := startDNS(t, map[string][]string{"silent.sluice.test.": nil})
	cfg, tried := testConfig(t, WithResolver(dns.resolver()))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := dialNet(ctx, "tcp", "silent.sluice.test:80", cfg)
	is.Equal(err, context.DeadlineExceeded)
	is.True(time.Since(start) < 5*time.Second)
	is.Equal(len(*tried), 0)
}

func TestDialUnix(t *testing.T) {
	is := is.New(t)
	dir, err := os.MkdirTemp("", "")
	is.NoErr(err)
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s")
	l, err := net.Listen("unix", path)
	is.NoErr(err)
	defer l.Close()

	cfg, _ := testConfig(t)
	c, err := dialNet(context.Background(), "unix", path, cfg)
	is.NoErr(err)
	defer c.Close()
	is.Equal(c.RemoteAddr().String(), path)

	cfg, _ = testConfig(t, WithLocalAddr("127.0.0.1:0"))
	_, err = dialNet(context.Background(), "unix", path, cfg)
	is.True(err != nil) // a host:port cannot bind a Unix socket

	_, err = dialNet(context.Background(), "unix", filepath.Join(dir, "missing"), cfg)
	is.True(err != nil)
}

func TestDialBadInput(t *testing.T) {
	for _, tt := range []struct{ network, address string }{
		{"udp", "127.0.0.1:80"},
		{"tcp", "127.0.0.1"},
		{"tcp", "127.0.0.1:nosuchservice"},
	} {
		t.Run(tt.network+" "+tt.address, func(t *testing.T) {
			is := is.New(t)
			cfg, tried := testConfig(t)
			_, err := dialNet(context.Background(), tt.network, tt.address, cfg)
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), "sluice: "))
			is.Equal(len(*tried), 0)
		})
	}
}

// noRacers fails t if an attempt's goroutine is still running: dialNet must
// not return before they all have. (goleak, which retries for a while, would
// miss one that ends soon after.)
func noRacers(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	if strings.Contains(stacks, "sluice.(*racer)") {
		t.Fatalf("an attempt outlived dialNet:\n%s", stacks)
	}
}

// testConfig returns a config with opts and the addresses of the attempts a
// dial with it starts, in order.
func testConfig(t *testing.T, opts ...Option) (*config, *[]string) {
	t.Helper()
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	tried := new([]string)
	cfg.dialAttempt = func(addr string) { *tried = append(*tried, addr) }
	return cfg, tried
}

// refusedPort returns a port nothing listens on, as far as one can tell.
func refusedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// listenSamePort listens on every ip at one port, so that one host:port name
// can resolve to all of them.
func listenSamePort(t *testing.T, ips ...string) (string, []net.Listener) {
	t.Helper()
	for try := 0; try < 10; try++ {
		var ls []net.Listener
		port := "0"
		for _, ip := range ips {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				break
			}
			ls = append(ls, l)
			_, port, _ = net.SplitHostPort(l.Addr().String())
		}
		if len(ls) == len(ips) {
			t.Cleanup(func() {
				for _, l := range ls {
					l.Close()
				}
			})
			return port, ls
		}
		for _, l := range ls {
			l.Close()
		}
	}
	t.Fatalf("found no port free on all of %v", ips)
	return "", nil
}

// blackHole makes l an address that never answers: with its accept queue
// shrunk to nothing and filled, Linux drops further SYNs, so a connect hangs
// until it gives up minutes later (unless net.ipv4.tcp_abort_on_overflow is
// set, when it is reset and the test is skipped).
func blackHole(t *testing.T, l net.Listener) {
	t.Helper()
	raw, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var lerr error
	if err := raw.Control(func(fd uintptr) { lerr = relisten(fd, 0) }); err != nil || lerr != nil {
		t.Fatal(err, lerr)
	}
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", l.Addr().String(), 500*time.Millisecond)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return // a SYN went unanswered: the queue is full
		}
		if err != nil {
			t.Skipf("connecting to a full accept queue fails at once here (%v): no black hole", err)
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("connects to a full accept queue still succeed here: no black hole")
}

// dnsServer is a minimal DNS server on 127.0.0.1 UDP that answers A and AAAA
// queries from a fixed table, and never answers for a name listed without
// addresses.
type dnsServer struct {
	pc      net.PacketConn
	records map[string][]netip.Addr // by lower-case FQDN, in answer order; empty: never answer
	wg      conc.WaitGroup          // the serving goroutine

	mu      sync.Mutex
	queries int        // queries received
	conns   []net.Conn // the resolvers' connections, closed at cleanup
	closed  bool
}

func startDNS(t *testing.T, records map[string][]string) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{pc: pc, records: map[string][]netip.Addr{}}
	for name, addrs := range records {
		s.records[name] = nil
		for _, a := range addrs {
			s.records[name] = append(s.records[name], netip.MustParseAddr(a))
		}
	}
	// Waited for by the cleanup below; ends when it closes pc.
	s.wg.Go(s.serve)
	t.Cleanup(s.close)
	return s
}

// close stops the server and closes the resolvers' connections, so that a
// lookup abandoned on a silent server ends instead of waiting out its timeout.
func (s *dnsServer) close() {
	s.mu.Lock()
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.pc.Close()
	s.wg.Wait()
}

func (s *dnsServer) queryCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// resolver returns a pure-Go resolver that sends every query to s.
func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "udp", s.pc.LocalAddr().String())
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			c.Close()
			return nil, net.ErrClosed
		}
		s.conns = append(s.conns, c)
		return c, nil
	}}
}

func (s *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.queries++
		s.mu.Unlock()
		if resp, ok := s.answer(buf[:n]); ok {
			s.pc.WriteTo(resp, from)
		}
	}
}

// answer builds the response to query, NXDOMAIN for a name not in the table.
// It speaks just enough of RFC 1035 for Go's resolver: one question, A and AAAA
// answers, no compression but a pointer back to the question's name.
func (s *dnsServer) answer(query []byte) ([]byte, bool) {
	name, qtype, qend, ok := parseQuestion(query)
	if !ok {
		return nil, false
	}
	addrs, found := s.records[strings.ToLower(name)]
	if found && len(addrs) == 0 {
		return nil, false
	}
	var answers [][]byte
	for _, a := range addrs {
		switch {
		case qtype == 1 && a.Is4(): // A
			answers = append(answers, a.AsSlice())
		case qtype == 28 && a.Is6(): // AAAA
			answers = append(answers, a.AsSlice())
		}
	}
	flags := uint16(0x8000 | 0x0400 | 0x0080)            // response, authoritative, recursion available
	flags |= binary.BigEndian.Uint16(query[2:]) & 0x0100 // recursion desired, echoed
	if !found {
		flags |= 3 // NXDOMAIN
	}
	resp := binary.BigEndian.AppendUint16(nil, binary.BigEndian.Uint16(query)) // ID
	for _, v := range []uint16{flags, 1, uint16(len(answers)), 0, 0} {
		resp = binary.BigEndian.AppendUint16(resp, v)
	}
	resp = append(resp, query[12:qend]...) // the question
	for _, rdata := range answers {
		// Name: pointer to the question's at offset 12; class IN; TTL 60.
		resp = append(resp, 0xc0, 12, 0, byte(qtype), 0, 1, 0, 0, 0, 60, 0, byte(len(rdata)))
		resp = append(resp, rdata...)
	}
	return resp, true
}

// parseQuestion returns the first question's name (as "a.b.c."), its type, and
// the offset where it ends.
func parseQuestion(msg []byte) (name string, qtype uint16, end int, ok bool) {
	if len(msg) < 12 || binary.BigEndian.Uint16(msg[4:]) != 1 {
		return "", 0, 0, false
	}
	i := 12
	for i < len(msg) && msg[i] != 0 {
		n := int(msg[i])
		if n > 63 || i+1+n > len(msg) {
			return "", 0, 0, false
		}
		name += string(msg[i+1:i+1+n]) + "."
		i += 1 + n
	}
	if i+5 > len(msg) {
		return "", 0, 0, false
	}
	return name, binary.BigEndian.Uint16(msg[i+1:]), i + 5, true
}

// A failed Unix dial says what failed once, and matches the cause.
func TestDialUnixError(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "none.sock")
	_, err := Dial(testCtx(t), "unix", path)
	is.True(errors.Is(err, os.ErrNotExist))
	is.Equal(strings.Count(err.Error(), "dial unix"), 1)
}

// A Dial with WithTLS whose ctx ends once the connection is made, before the
// handshake begins, closes the connection it made: the peer reads its end.
func TestDialTLSCancelledClosesConn(t *testing.T) {
	is := is.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	defer ln.Close()
	for range 30 { // the window is narrow: about half the dials end in it
		ctx, cancel := context.WithTimeout(testCtx(t), testTimeout)
		accepted := make(chan net.Conn, 1)
		go func() {
			s, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			cancel() // ctx ends as the connection is made
			accepted <- s
		}()
		c, err := Dial(ctx, "tcp", ln.Addr().String(), WithTLS(clientTLS()), WithServerName("localhost"))
		s := recv(t, accepted)
		cancel()
		if err == nil {
			c.Close()
			s.Close()
			continue
		}
		is.True(errors.Is(err, context.Canceled))
		is.NoErr(s.SetReadDeadline(time.Now().Add(testTimeout)))
		_, err = io.Copy(io.Discard, s) // EOF or a reset, after any ClientHello
		is.True(!errors.Is(err, os.ErrDeadlineExceeded))
		s.Close()
	}
}

// BenchmarkDial dials a loopback listener by its address: one attempt, made in
// the caller's goroutine.
func BenchmarkDial(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer serveRaw(func(net.Conn) {})(ln)()
	ctx := testCtx(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c, err := Dial(ctx, "tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c.Abort()
	}
}
