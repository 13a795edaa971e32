//go:build !linux

package sluice

import "testing"

// skipUnlessLinux skips a test of behaviour only Linux has, saying what it is.
func skipUnlessLinux(t *testing.T, what string) {
	t.Helper()
	t.Skipf("%s is Linux's", what)
}
