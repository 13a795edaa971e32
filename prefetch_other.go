//go:build !amd64

package sluice

// prefetchAfter does nothing here (see prefetch_amd64.go).
func prefetchAfter(p *byte, n uintptr) {}
