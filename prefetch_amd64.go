package sluice

import "unsafe"

// prefetch asks the CPU to bring the bytes from p+from up to p+to into its
// cache, where they will soon be used: prefetch_amd64.s. It only hints: it
// changes no memory, and the bytes need not lie in p's object (nor in valid
// memory at all).
//
//go:noescape
func prefetch(p unsafe.Pointer, from, to uintptr)
