package sluice

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/matryer/is"

	"golang.org/x/net/nettest"
)

// Tests of the socket pairs, whatever the platform: Pipe's own, and the
// listened pairs that Windows makes Pipe of (sockpair.go), which run here too.

func TestPipeHalfClose(t *testing.T) {
	listened := func(pair func() (net.Conn, net.Conn, error)) func() (*Conn, *Conn, error) {
		return func() (*Conn, *Conn, error) {
			a, b, err := pair()
			if err != nil {
				return nil, nil, err
			}
			return NewConn(a), NewConn(b), nil
		}
	}
	for _, tc := range []struct {
		name string
		pair func() (*Conn, *Conn, error)
	}{
		{"Pipe", func() (*Conn, *Conn, error) { return Pipe() }},
		{"listened AF_UNIX", listened(unixListenedPair)},
		{"listened TCP", listened(tcpListenedPair)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			// os.TempDir, where unixListenedPair puts its socket file, is
			// TMPDIR on the Unix systems and TMP or TEMP on Windows.
			tmp := t.TempDir()
			for _, env := range []string{"TMPDIR", "TMP", "TEMP"} {
				t.Setenv(env, tmp)
			}
			a, b, err := tc.pair()
			is.NoErr(err)
			defer a.Close()
			defer b.Close()
			left, err := os.ReadDir(tmp)
			is.NoErr(err)
			is.Equal(len(left), 0) // no socket file or directory stays behind

			// a half-closes: b reads to EOF, and b's direction stays open.
			is.True(a.CanWriteEOF())
			_, err = a.Write([]byte("request"))
			is.NoErr(err)
			is.NoErr(a.WriteEOF())
			got, err := b.ReadAll(testCtx(t))
			is.NoErr(err)
			is.Equal(string(got), "request")
			is.True(b.AtEOF())

			_, err = b.Write([]byte("response"))
			is.NoErr(err)
			is.NoErr(b.WriteEOF())
			got, err = a.ReadAll(testCtx(t))
			is.NoErr(err)
			is.Equal(string(got), "response")
		})
	}
}

// A stranger that connects to the loopback port first is not taken for the
// pair's far end, and is closed.
func TestConnectPairTakesItsOwn(t *testing.T) {
	is := is.New(t)
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	is.NoErr(err)
	stranger, err := net.DialTimeout("tcp4", ln.Addr().String(), testTimeout)
	is.NoErr(err)
	defer stranger.Close()

	a, b, err := connectPair(ln, sameEnds)
	is.NoErr(err)
	defer a.Close()
	defer b.Close()
	is.Equal(b.RemoteAddr().String(), a.LocalAddr().String())
	is.True(b.RemoteAddr().String() != stranger.LocalAddr().String())

	// Accepted and closed, or left in the backlog and reset with the listener.
	stranger.SetDeadline(time.Now().Add(testTimeout))
	n, err := stranger.Read(make([]byte, 1))
	is.Equal(n, 0)
	is.True(err == io.EOF || isReset(err))

	_, err = ln.Accept() // connectPair closed it
	is.True(errors.Is(err, net.ErrClosed))
}

// The listened pairs, under Conns, behave as net.Conns, as Pipe's do. The
// close timeout is short because nettest's CloseTimeout closes a Conn whose
// peer has stopped reading: its flush waits that long.
func TestNetConnListenedPairs(t *testing.T) {
	for name, pair := range map[string]func() (net.Conn, net.Conn, error){
		"AF_UNIX": unixListenedPair,
		"TCP":     tcpListenedPair,
	} {
		t.Run(name, func(t *testing.T) {
			nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
				a, b, err := pair()
				if err != nil {
					return nil, nil, nil, err
				}
				ca, cb := NewConn(a, WithCloseTimeout(time.Second)), NewConn(b, WithCloseTimeout(time.Second))
				return ca, cb, func() { ca.Close(); cb.Close() }, nil
			})
		})
	}
}

// The error numbers of a peer gone and of accepting's passing troubles
// (platformErrors) are told apart by identity, however net wraps them.
func TestErrorClassification(t *testing.T) {
	for _, tc := range append(platformErrors(), errorCase{"not an errno", errors.New("sluice test: other"), false, false}) {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			is.Equal(isReset(tc.err), tc.reset)
			is.Equal(isTemporaryAccept(tc.err), tc.temporary)
		})
	}
}

// errorCase is an error and how it must be classified: as a peer gone
// (isReset), as a passing trouble of accept (isTemporaryAccept).
type errorCase struct {
	name             string
	err              error
	reset, temporary bool
}

// wrapErrno wraps errno as net wraps a failed system call's.
func wrapErrno(op string, errno error) error {
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)}
}
