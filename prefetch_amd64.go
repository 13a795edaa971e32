package sluice

// prefetchAfter asks the CPU to bring into its cache the memory just past the
// n bytes at p, where the next allocations of n bytes are likely to lie (see
// Reader.take): prefetch_amd64.s. It only hints: it changes no memory and
// cannot fault.
//
//go:noescape
func prefetchAfter(p *byte, n uintptr)
