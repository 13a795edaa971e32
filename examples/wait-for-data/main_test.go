package main

import (
	"bytes"
	"testing"

	"github.com/matryer/is"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestWaitForData(t *testing.T) {
	is := is.New(t)
	var out bytes.Buffer
	is.NoErr(waitForData(&out))
	is.Equal(out.String(), "Received: abc\n")
}
