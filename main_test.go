package sluice

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every Conn, Server
// and channel form must leave nothing behind once closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
