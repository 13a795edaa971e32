package main

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The whole program, checked line by line: each request is answered before the
// next is sent, so the order is fixed.
func Example_main() {
	main()
	// Output:
	// client: send "hello"
	// server: got "hello"
	// client: reply "HELLO"
	// client: send "length-prefixed"
	// server: got "length-prefixed"
	// client: reply "LENGTH-PREFIXED"
	// client: send "frames"
	// server: got "frames"
	// client: reply "FRAMES"
}
