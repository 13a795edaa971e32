package sluice

import (
	"testing"

	"golang.org/x/sys/unix"
)

// tcpKeepIdle is the option that holds TCP's keep-alive idle time.
const tcpKeepIdle = unix.TCP_KEEPIDLE

// skipUnlessLinux skips a test of behaviour only Linux has (sock_other_test.go);
// here it does nothing.
func skipUnlessLinux(*testing.T, string) {}
