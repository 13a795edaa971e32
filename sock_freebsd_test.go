package sluice

import "golang.org/x/sys/unix"

// tcpKeepIdle is the option that holds TCP's keep-alive idle time.
const tcpKeepIdle = unix.TCP_KEEPIDLE
