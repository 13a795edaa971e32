//go:build !race

package sluice

import "sync/atomic"

// storeRelease stores v in *p with release ordering only: a plain store, which
// x86 orders after every load and store before it (release_amd64.s). The race
// detector's builds use Store, which it sees (release_other.go).
//
//go:noescape
func storeRelease(p *atomic.Int32, v int32)
