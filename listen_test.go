package sluice

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

// srvTempSocket returns a Unix socket path in a fresh short directory.
func srvTempSocket(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

func TestListenNetworks(t *testing.T) {
	tests := []struct {
		name, network, address string
		ipv6                   bool
	}{
		{"tcp", "tcp", "127.0.0.1:0", false},
		{"tcp4", "tcp4", "127.0.0.1:0", false},
		{"tcp6", "tcp6", "[::1]:0", true},
		{"tcp host name", "tcp4", "localhost:0", false},
		{"unix", "unix", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srvNoLeaks(t)
			is := is.New(t)
			if tt.ipv6 {
				needIPv6(t)
			}
			if tt.network == "unix" {
				tt.address = srvTempSocket(t)
			}
			s := srvListen(t, tt.network, tt.address, srvEcho)
			is.True(s.IsServing())
			addrs := s.Addrs()
			is.Equal(len(addrs), 1)
			if tt.network == "unix" {
				is.Equal(addrs[0].String(), tt.address)
			} else {
				is.True(addrs[0].(*net.TCPAddr).Port != 0) // port 0 resolved
			}
			c := srvDial(t, addrs[0])
			is.Equal(srvRoundTrip(t, c, "hello "+tt.name), "hello "+tt.name)
		})
	}
}

func TestListenEveryInterface(t *testing.T) {
	srvNoLeaks(t)
	needIPv6(t)
	is := is.New(t)
	s := srvListen(t, "tcp", ":0", srvEcho)
	addrs := s.Addrs()
	is.Equal(len(addrs), 2) // one socket per family, as asyncio
	v4, v6 := addrs[0].(*net.TCPAddr), addrs[1].(*net.TCPAddr)
	is.True(v4.IP.Equal(net.IPv4zero))
	is.True(v6.IP.Equal(net.IPv6unspecified))
	is.True(v4.Port != 0)
	is.Equal(v4.Port, v6.Port) // port 0: both on the port the first got
	for _, host := range []string{"127.0.0.1", "::1"} {
		c := srvDial(t, &net.TCPAddr{IP: net.ParseIP(host), Port: v4.Port})
		is.Equal(srvRoundTrip(t, c, "via "+host), "via "+host)
	}

	t.Run("tcp4 only", func(t *testing.T) {
		is := is.New(t)
		s := srvListen(t, "tcp4", ":0", srvEcho)
		is.Equal(len(s.Addrs()), 1)
		is.True(s.Addrs()[0].(*net.TCPAddr).IP.To4() != nil)
	})
}

func TestListenErrors(t *testing.T) {
	srvNoLeaks(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name, network, address string
		h                      Handler
		opts                   []Option
		is                     error
	}{
		{"unknown network", "udp", "127.0.0.1:0", srvEcho, nil, nil},
		{"nil handler", "tcp", "127.0.0.1:0", nil, nil, nil},
		{"bad option", "tcp", "127.0.0.1:0", srvEcho, []Option{WithBacklog(0)}, nil},
		{"no port", "tcp", "127.0.0.1", srvEcho, nil, nil},
		{"address in use", "tcp", taken.Addr().String(), srvEcho, nil, errAddrInUse},
		{"wrong family", "tcp6", "127.0.0.1:0", srvEcho, nil, nil},
		{"empty unix path", "unix", "", srvEcho, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			s, err := Listen(testCtx(t), tt.network, tt.address, tt.h, tt.opts...)
			is.True(err != nil)
			is.True(s == nil)
			is.True(strings.HasPrefix(err.Error(), "sluice: ") || strings.HasPrefix(err.Error(), "listen "))
			if tt.is != nil {
				is.True(errors.Is(err, tt.is))
			}
		})
	}
	t.Run("NewServer", func(t *testing.T) {
		is := is.New(t)
		_, err := NewServer(nil, srvEcho)
		is.True(err != nil)
		_, err = NewServer(taken, nil)
		is.True(err != nil)
		_, err = NewServer(taken, srvEcho, WithMaxConns(-1))
		is.True(err != nil)
	})
}

func TestBacklogReachesListen(t *testing.T) {
	skipUnlessLinux(t, "an accept queue bounded at backlog+1")
	srvNoLeaks(t)
	is := is.New(t)
	s := srvListen(t, "tcp4", "127.0.0.1:0", srvEcho, WithBacklog(1), WithStartServing(false))
	// Nothing accepts: the kernel completes backlog+1 handshakes, then drops
	// SYNs, so a later dial times out.
	var queued []net.Conn
	for range 3 {
		c, err := net.DialTimeout("tcp4", s.Addrs()[0].String(), 250*time.Millisecond)
		if err != nil {
			var ne net.Error
			is.True(errors.As(err, &ne) && ne.Timeout())
			break
		}
		defer c.Close()
		queued = append(queued, c)
	}
	t.Logf("%d connections queued with backlog 1", len(queued))
	is.True(len(queued) >= 1 && len(queued) < 3)

	is.NoErr(s.StartServing())
	for i, c := range queued {
		c.SetDeadline(time.Now().Add(testTimeout))
		msg := fmt.Sprint("queued ", i)
		is.Equal(srvRoundTrip(t, c, msg), msg)
	}
}

func TestUnixSocketFile(t *testing.T) {
	t.Run("removed on close", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		path := srvTempSocket(t)
		s := srvListen(t, "unix", path, srvEcho)
		fi, err := os.Stat(path)
		is.NoErr(err)
		is.True(fi.Mode()&os.ModeSocket != 0)
		is.NoErr(s.Close())
		_, err = os.Stat(path)
		is.True(errors.Is(err, os.ErrNotExist))
	})
	t.Run("replaced file is kept", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		path := srvTempSocket(t)
		s := srvListen(t, "unix", path, srvEcho)
		is.NoErr(os.Remove(path))
		is.NoErr(os.WriteFile(path, []byte("someone else's"), 0o600))
		is.NoErr(s.Close())
		data, err := os.ReadFile(path)
		is.NoErr(err)
		is.Equal(string(data), "someone else's")
	})
	t.Run("stale socket is replaced", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		path := srvTempSocket(t)
		dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		is.NoErr(err)
		dead.SetUnlinkOnClose(false)
		dead.Close() // as a crashed process leaves it
		_, err = os.Stat(path)
		is.NoErr(err)
		s := srvListen(t, "unix", path, srvEcho)
		c := srvDial(t, s.Addrs()[0])
		is.Equal(srvRoundTrip(t, c, "fresh"), "fresh")
	})
	t.Run("live socket is kept", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		path := srvTempSocket(t)
		live, err := net.Listen("unix", path)
		is.NoErr(err)
		defer live.Close()
		_, err = Listen(testCtx(t), "unix", path, srvEcho)
		is.True(errors.Is(err, errAddrInUse))
		c, err := net.Dial("unix", path) // still the live one's
		is.NoErr(err)
		c.Close()
	})
	t.Run("other file is kept", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		path := srvTempSocket(t)
		is.NoErr(os.WriteFile(path, []byte("data"), 0o600))
		_, err := Listen(testCtx(t), "unix", path, srvEcho)
		is.True(errors.Is(err, errAddrInUse))
		data, err := os.ReadFile(path)
		is.NoErr(err)
		is.Equal(string(data), "data")
	})
	t.Run("abstract", func(t *testing.T) {
		srvNoLeaks(t)
		is := is.New(t)
		name := fmt.Sprintf("@sluice-test-%d-%d", os.Getpid(), time.Now().UnixNano())
		if !abstractUnixSockets {
			// Refused, rather than taken for a file called "@sluice-test-...".
			_, err := Listen(testCtx(t), "unix", name, srvEcho)
			is.True(errors.Is(err, errors.ErrUnsupported))
			_, err = Dial(testCtx(t), "unix", name)
			is.True(errors.Is(err, errors.ErrUnsupported))
			_, err = os.Lstat(name)
			is.True(errors.Is(err, os.ErrNotExist))
			return
		}
		s := srvListen(t, "unix", name, srvEcho)
		c := srvDial(t, s.Addrs()[0])
		is.Equal(srvRoundTrip(t, c, "abstract"), "abstract")
	})
}

// A feature a platform lacks is refused with an error that matches
// errors.ErrUnsupported and names the feature.
func TestUnsupported(t *testing.T) {
	is := is.New(t)
	err := unsupported("WithSomething")
	is.True(errors.Is(err, errors.ErrUnsupported))
	is.True(strings.HasPrefix(err.Error(), "sluice: WithSomething is not supported on "))
}
