package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/matryer/is"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The whole program: every line arrives, in order, and while the sink stalls
// the source is held back after a bounded number of lines, far fewer than it
// had left to send.
func TestPipeline(t *testing.T) {
	is := is.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	const n = 200_000
	is.NoErr(run(ctx, &out, n, 300*time.Millisecond))
	m := regexp.MustCompile(`^the sink stalled for 300ms: the source sent (\d+) more lines meanwhile, then waited\n200000 lines through Map in order\n$`).FindStringSubmatch(out.String())
	is.True(m != nil) // the output
	more, _ := strconv.Atoi(m[1])
	t.Logf("during the stall the source sent %d of the %d lines it had left", more, n-n/10)
	is.True(more < n/2) // held back by the stalled sink
}
