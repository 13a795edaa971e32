package sluice

import "unsafe"

// prefetch asks the CPU to bring the bytes from p+from up to p+to into its
// cache, where they will soon be used: prefetch_amd64.s. It only hints: it
// changes no memory, and the bytes need not lie in p's object (nor in valid
// memory at all).
//
//go:noescape
func prefetch(p unsafe.Pointer, from, to uintptr)

// prefetchStack asks the CPU to bring the goroutine's stack, from the caller's
// frame up to the next 2 KiB boundary, into its cache: on a 2 KiB stack, the
// frames that the caller's callers reload from as they return
// (prefetch_amd64.s). It only hints, as prefetch does: on a larger stack it
// covers less of it.
//
//go:noescape
func prefetchStack()
