//go:build !linux

package sluice

import "errors"

// inbound is Linux's (relay_linux.go): elsewhere Relay does not splice, as
// *net.TCPConn's ReadFrom would copy through user space anyway.
type inbound struct{}

func newInbound(*rawSock) *inbound { return nil }

func (*inbound) wait() (int, error) { return 0, errors.ErrUnsupported }
