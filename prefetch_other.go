//go:build !amd64

package sluice

import "unsafe"

// prefetch does nothing here (see prefetch_amd64.go).
func prefetch(p unsafe.Pointer, from, to uintptr) {}

// prefetchStack does nothing here (see prefetch_amd64.go).
func prefetchStack() {}
