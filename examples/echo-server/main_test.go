package main

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/sluice-go/sluice"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is written by the server's handlers and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestAsyncioClient runs the asyncio documentation's echo client, in Python,
// against this server.
func TestAsyncioClient(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: cannot run the asyncio echo client")
	}
	for _, message := range []string{"Hello World!", "sluice ↔ asyncio"} {
		t.Run(message, func(t *testing.T) {
			is := is.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			serveCtx, stop := context.WithCancel(ctx)
			defer stop()
			var out syncBuffer
			ready := make(chan *sluice.Server, 1)
			done := make(chan error, 1)
			go func() { done <- run(serveCtx, "127.0.0.1:0", &out, ready) }()
			var server *sluice.Server
			select {
			case server = <-ready:
			case err := <-done:
				t.Fatal(err)
			}
			port := server.Addrs()[0].(*net.TCPAddr).Port

			cmd := exec.CommandContext(ctx, python, "../../testdata/asyncio_echo_client.py",
				"127.0.0.1", strconv.Itoa(port), message)
			got, err := cmd.CombinedOutput()
			is.NoErr(err)
			is.Equal(string(got), "Send: '"+message+"'\nReceived: '"+message+"'\nClose the connection\n")

			stop()
			is.Equal(<-done, context.Canceled) // after Shutdown: every handler has returned
			lines := strings.Split(out.String(), "\n")
			is.Equal(len(lines), 5)
			is.Equal(lines[0], "Serving on ('127.0.0.1', "+strconv.Itoa(port)+")")
			from := regexp.MustCompile(`^Received '(.*)' from \('127\.0\.0\.1', \d+\)$`).FindStringSubmatch(lines[1])
			is.True(from != nil)
			is.Equal(from[1], message)
			is.Equal(lines[2], "Send: '"+message+"'")
			is.Equal(lines[3], "Close the connection")
		})
	}
}
