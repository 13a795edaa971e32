package sluice

import (
	"context"
	"net"
)

// dialNet is replaced by the Happy Eyeballs dialer in dial.go.
func dialNet(ctx context.Context, network, address string, cfg *config) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}
