package sluice

import (
	"errors"
	"testing"

	"github.com/matryer/is"
)

// What Windows cannot honour fails Listen with ErrUnsupported, before any
// socket is made; what it can, or the default, does not.
func TestListenOptionsSupported(t *testing.T) {
	for _, tc := range []struct {
		name        string
		opts        []Option
		unsupported bool
	}{
		{"backlog", []Option{WithBacklog(16)}, true},
		{"reuse port", []Option{WithReusePort(true)}, true},
		{"no reuse port", []Option{WithReusePort(false)}, false},
		{"exclusive address", []Option{WithReuseAddress(false)}, false},
		{"defaults", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvNoLeaks(t)
			is := is.New(t)
			s, err := Listen(testCtx(t), "tcp4", "127.0.0.1:0", srvEcho, tc.opts...)
			if s != nil {
				t.Cleanup(func() { srvShutdown(t, s) })
			}
			if tc.unsupported {
				is.True(errors.Is(err, errors.ErrUnsupported))
				return
			}
			is.NoErr(err)
			c := srvDial(t, s.Addrs()[0])
			is.Equal(srvRoundTrip(t, c, "hello "+tc.name), "hello "+tc.name)
		})
	}
}
