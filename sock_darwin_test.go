package sluice

import "golang.org/x/sys/unix"

// tcpKeepIdle is the option that holds TCP's keep-alive idle time: macOS
// calls it TCP_KEEPALIVE.
const tcpKeepIdle = unix.TCP_KEEPALIVE
