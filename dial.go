package sluice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/sourcegraph/conc"
)

// Dial connects to address on network ("tcp", "tcp4", "tcp6" or "unix") and
// returns the Conn (asyncio's open_connection and open_unix_connection). A
// "unix" address is a socket file's path, or on Linux "@name", an abstract
// socket (elsewhere an error matching errors.ErrUnsupported). A host
// name is resolved and its addresses raced per RFC 8305 (see
// WithHappyEyeballsDelay); with WithTLS the TLS handshake completes before Dial
// returns, verifying the server's certificate for WithServerName's name, else
// the tls.Config's ServerName, else the host part of address. ctx bounds the
// whole dial, the handshake included (which WithTLSHandshakeTimeout bounds too);
// its end afterwards does not affect the Conn. Errors: an invalid option,
// ctx.Err(), the dial's own (joined over every address tried), the handshake's
// (see StartTLS).
func Dial(ctx context.Context, network, address string, opts ...Option) (*Conn, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	nc, err := dialNet(ctx, network, address, cfg)
	if err != nil {
		return nil, err
	}
	var o connOptions
	if host, _, err := net.SplitHostPort(address); err == nil {
		o.host = host
	}
	c := newConn(nc, cfg, o)
	if err := c.dialTLS(ctx); err != nil {
		return nil, err // c is closed
	}
	return c, nil
}

// dialNet connects to address on network ("tcp", "tcp4", "tcp6", "unix") per cfg.
//
// A TCP host name is resolved to every address of the network's family and the
// addresses are raced as RFC 8305 (Happy Eyeballs v2) and asyncio's
// create_connection do: ordered by interleaveFamilies, started
// cfg.happyEyeballsDelay apart, the next one at once when an attempt fails. The
// first to connect wins; the others are cancelled and closed before dialNet
// returns, so no goroutine or socket outlives it. If every attempt fails, the
// error joins theirs. An empty host means the loopback addresses, as asyncio's
// getaddrinfo(None, port). ctx bounds everything, resolution included; once it
// is done dialNet returns ctx.Err().
func dialNet(ctx context.Context, network, address string, cfg *config) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch network {
	case "unix":
		return dialUnix(ctx, address, cfg)
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("sluice: dial %s %s: unsupported network", network, address)
	}
	attempts, err := planTCP(ctx, network, address, cfg)
	if err != nil {
		return nil, dialError(ctx, network, address, err)
	}
	return race(ctx, network, address, attempts, cfg)
}

// dialUnix connects to the socket at path, as asyncio's open_unix_connection.
func dialUnix(ctx context.Context, path string, cfg *config) (net.Conn, error) {
	if cfg.localAddr != "" {
		// A "host:port" cannot name the local end of a Unix socket; saying so
		// beats silently ignoring the option.
		return nil, fmt.Errorf("sluice: dial unix %s: WithLocalAddr applies to TCP only", path)
	}
	if err := abstractErr(path); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: err}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, dialError(ctx, "unix", path, unwrapOp(err))
	}
	return c, nil
}

// dialError returns ctx's error once ctx is done, whatever err the cancellation
// caused, so callers can match it by identity; else err with its context.
func dialError(ctx context.Context, network, address string, err error) error {
	if ctxErr := doneErr(ctx); ctxErr != nil {
		return ctxErr
	}
	return fmt.Errorf("sluice: dial %s %s: %w", network, address, err)
}

// doneErr is ctx.Err(), but also reports a deadline that has passed while ctx's
// timer has yet to fire: net.Dialer and the resolver time out at that deadline
// on their own, and may get there first.
func doneErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// An attempt is one connection a race may start: a remote address and the
// local address to bind (the zero AddrPort: chosen by the system).
type attempt struct {
	raddr, laddr netip.AddrPort
}

// planTCP resolves address and cfg.localAddr and returns the attempts in the
// order they are to be started.
func planTCP(ctx context.Context, network, address string, cfg *config) ([]attempt, error) {
	r := cfg.resolverOrDefault()
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	raddrs, err := resolveAddrs(ctx, r, network, host, port)
	if err != nil {
		return nil, err
	}
	laddrs, err := resolveLocal(ctx, r, network, cfg.localAddr)
	if err != nil {
		return nil, fmt.Errorf("local address %s: %w", cfg.localAddr, err)
	}
	attempts := pairLocal(interleaveFamilies(raddrs, cfg.interleave), laddrs)
	if len(attempts) == 0 {
		return nil, fmt.Errorf("local address %s has no family in common with %v", cfg.localAddr, raddrs)
	}
	return attempts, nil
}

// resolveLocal resolves a WithLocalAddr "host:port"; nil when local is empty.
// An empty host yields an address without IP, which binds only the port and
// serves either family.
func resolveLocal(ctx context.Context, r *net.Resolver, network, local string) ([]netip.AddrPort, error) {
	if local == "" {
		return nil, nil
	}
	host, port, err := net.SplitHostPort(local)
	if err != nil {
		return nil, err
	}
	if host == "" {
		p, err := r.LookupPort(ctx, network, port)
		if err != nil {
			return nil, err
		}
		return []netip.AddrPort{netip.AddrPortFrom(netip.Addr{}, uint16(p))}, nil
	}
	return resolveAddrs(ctx, r, network, host, port)
}

// resolveAddrs returns host's addresses of network's family, in the
// resolver's order, each with port (a number or a service name). An empty host
// means the loopback addresses, as getaddrinfo (which asyncio calls) gives
// when given no host.
func resolveAddrs(ctx context.Context, r *net.Resolver, network, host, port string) ([]netip.AddrPort, error) {
	p, err := r.LookupPort(ctx, network, port)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if host == "" {
		for _, ip := range []netip.Addr{netip.IPv6Loopback(), netip.AddrFrom4([4]byte{127, 0, 0, 1})} {
			if familyOK(network, ip) {
				ips = append(ips, ip)
			}
		}
	} else if ips, err = resolveIPs(ctx, r, network, host); err != nil {
		return nil, err
	}
	addrs := make([]netip.AddrPort, len(ips))
	for i, ip := range ips {
		addrs[i] = netip.AddrPortFrom(ip, uint16(p))
	}
	return addrs, nil
}

// resolveIPs is the one name resolution of Dial and Listen: it returns host's
// addresses of network's family ("tcp": both, as asyncio's family=0), a literal
// IP as it is, a name as the resolver gives it (asking only for the family
// network allows), IPv4-mapped IPv6 addresses as the IPv4 addresses they are,
// in the resolver's order, duplicates included (Listen drops them). No address
// left is an error.
func resolveIPs(ctx context.Context, r *net.Resolver, network, host string) ([]netip.Addr, error) {
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ipNet := "ip"
		switch network {
		case "tcp4":
			ipNet = "ip4"
		case "tcp6":
			ipNet = "ip6"
		}
		if ips, err = r.LookupNetIP(ctx, ipNet, host); err != nil {
			return nil, err
		}
	}
	kept := ips[:0:0]
	for _, ip := range ips {
		ip = ip.Unmap()
		if familyOK(network, ip) {
			kept = append(kept, ip)
		}
	}
	if len(kept) == 0 {
		return nil, &net.AddrError{Err: "no suitable address", Addr: host}
	}
	return kept, nil
}

// familyOK reports whether ip belongs to network's address family.
func familyOK(network string, ip netip.Addr) bool {
	switch network {
	case "tcp4":
		return ip.Is4()
	case "tcp6":
		return ip.Is6()
	}
	return true
}

// pairLocal gives each remote address the first local address of its family,
// and drops remote addresses no local address can reach. With no local
// addresses every remote address is kept, bound by the system.
func pairLocal(raddrs, laddrs []netip.AddrPort) []attempt {
	attempts := make([]attempt, 0, len(raddrs))
	for _, ra := range raddrs {
		if laddrs == nil {
			attempts = append(attempts, attempt{raddr: ra})
			continue
		}
		for _, la := range laddrs {
			if !la.Addr().IsValid() || la.Addr().Is4() == ra.Addr().Is4() {
				attempts = append(attempts, attempt{raddr: ra, laddr: la})
				break
			}
		}
	}
	return attempts
}

// interleaveFamilies orders addrs as RFC 8305 section 4: the family of the
// first address goes first, each family keeps the resolver's order, and after
// firstCount addresses of the first family (the "First Address Family Count")
// the families alternate one address each until one runs out. It is asyncio's
// _interleave_addrinfos in Lib/asyncio/base_events.py.
func interleaveFamilies(addrs []netip.AddrPort, firstCount int) []netip.AddrPort {
	if len(addrs) == 0 {
		return nil
	}
	var first, other []netip.AddrPort
	for _, a := range addrs {
		if a.Addr().Is4() == addrs[0].Addr().Is4() {
			first = append(first, a)
		} else {
			other = append(other, a)
		}
	}
	n := min(max(firstCount, 1), len(first))
	out := append(make([]netip.AddrPort, 0, len(addrs)), first[:n]...)
	first = first[n:]
	for len(first) > 0 || len(other) > 0 {
		if len(other) > 0 {
			out, other = append(out, other[0]), other[1:]
		}
		if len(first) > 0 {
			out, first = append(out, first[0]), first[1:]
		}
	}
	return out
}

// dialResult is what one attempt's goroutine sends when its dial ends.
type dialResult struct {
	conn net.Conn
	err  error
}

// A racer runs the attempts of one dial.
type racer struct {
	ctx     context.Context // cancelled when the race ends
	network string
	cfg     *config
	pending []attempt // not started yet, in order

	// results has room for every attempt: one send per started attempt, so a
	// goroutine never blocks on it, even after the race is decided.
	results chan dialResult
	wg      conc.WaitGroup // the attempts' goroutines
	running int            // started attempts whose result is not yet received
}

// race starts the attempts as RFC 8305 section 5 says and returns the first
// connection made; see dialNet.
//
// A single attempt has nothing to race: it is made in the caller's goroutine,
// with no goroutine, channel or timer of its own.
func race(ctx context.Context, network, address string, attempts []attempt, cfg *config) (net.Conn, error) {
	if len(attempts) == 1 {
		a := attempts[0]
		c, err := a.dialer(cfg).DialContext(ctx, network, a.raddr.String())
		if err == nil {
			return c, nil
		}
		return nil, raceLost(ctx, network, address, []error{err})
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &racer{ctx: ctx, network: network, cfg: cfg, pending: attempts,
		results: make(chan dialResult, len(attempts))}
	defer r.stop(cancel)
	delay := time.NewTimer(cfg.happyEyeballsDelay)
	defer delay.Stop()

	var errs []error
	r.launch(delay)
	for r.running > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case res := <-r.results:
			r.running--
			if res.err == nil {
				return res.conn, nil
			}
			errs = append(errs, res.err)
			r.launch(delay) // a failure starts the next attempt without waiting out the delay
		case <-delay.C:
			r.launch(delay)
		}
	}
	return nil, raceLost(ctx, network, address, errs)
}

// raceLost is the error of a dial whose every attempt failed with errs: ctx's,
// where they failed because it ended, else allFailed's.
func raceLost(ctx context.Context, network, address string, errs []error) error {
	if err := doneErr(ctx); err != nil {
		return err
	}
	return allFailed(network, address, errs)
}

// launch starts the next pending attempt and restarts the delay before the one
// after it. A delay of 0 starts every pending attempt at once.
func (r *racer) launch(delay *time.Timer) {
	for len(r.pending) > 0 {
		a := r.pending[0]
		r.pending = r.pending[1:]
		r.start(a)
		if r.cfg.happyEyeballsDelay > 0 {
			delay.Reset(r.cfg.happyEyeballsDelay)
			return
		}
	}
}

// start dials a in a goroutine that sends its result on r.results.
func (r *racer) start(a attempt) {
	d := a.dialer(r.cfg)
	r.running++
	// Waited for by r.stop, which cancels r.ctx first; the dial ends when it
	// connects, fails, or sees the cancellation.
	r.wg.Go(func() {
		c, err := d.DialContext(r.ctx, r.network, a.raddr.String())
		r.results <- dialResult{c, err}
	})
}

// dialer returns the net.Dialer for a, which is about to start: from
// a.laddr, with cfg's keep-alive.
func (a attempt) dialer(cfg *config) *net.Dialer {
	if cfg.dialAttempt != nil {
		cfg.dialAttempt(a.raddr.String())
	}
	d := &net.Dialer{}
	if a.laddr.Addr().IsValid() || a.laddr.Port() != 0 {
		d.LocalAddr = net.TCPAddrFromAddrPort(a.laddr)
	}
	if ka := cfg.keepAlive; ka != nil {
		d.KeepAliveConfig = *ka
		if !ka.Enable {
			d.KeepAlive = -1 // net.Dialer disables probes only with both set so
		}
	}
	return d
}

// stop ends the race: it cancels the attempts still running, waits for their
// goroutines, and closes any connection made after the winner's.
func (r *racer) stop(cancel context.CancelFunc) {
	cancel()
	r.wg.Wait()
	close(r.results)
	for res := range r.results {
		if res.conn != nil {
			res.conn.Close()
		}
	}
}

// allFailed reports a dial whose every attempt failed. Each attempt's error is a
// *net.OpError naming the address it tried.
func allFailed(network, address string, errs []error) error {
	if len(errs) == 1 {
		return fmt.Errorf("sluice: %w", errs[0])
	}
	return fmt.Errorf("sluice: dial %s %s: all %d attempts failed:\n%w",
		network, address, len(errs), errors.Join(errs...))
}
