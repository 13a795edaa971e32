//go:build !amd64 || race

package sluice

import "sync/atomic"

// storeRelease stores v in *p (see release_amd64.go): where Store is no
// costlier than a release store (arm64's is one), and where the race detector
// must see it.
func storeRelease(p *atomic.Int32, v int32) { p.Store(v) }
