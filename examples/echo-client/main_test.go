package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestAsyncioServer runs this client against the asyncio documentation's echo
// server (start_server), in Python.
func TestAsyncioServer(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: cannot run the asyncio echo server")
	}
	is := is.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-u", "../../testdata/asyncio_echo_server.py", "127.0.0.1", "0")
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	is.NoErr(err)
	is.NoErr(cmd.Start())
	defer func() { cancel(); cmd.Wait() }() // on failure: end Python before leaving

	// The server prints "Serving on ..." and then "PORT n" once it listens.
	var lines []string
	port := ""
	sc := bufio.NewScanner(stdout)
	for port == "" && sc.Scan() {
		lines = append(lines, sc.Text())
		if p, ok := strings.CutPrefix(sc.Text(), "PORT "); ok {
			port = p
		}
	}
	if port == "" {
		t.Fatalf("the asyncio server did not start: %s", stderr.String())
	}

	var out bytes.Buffer
	is.NoErr(tcpEchoClient(ctx, net.JoinHostPort("127.0.0.1", port), "Hello World!", &out))
	is.Equal(out.String(), "Send: 'Hello World!'\nReceived: 'Hello World!'\nClose the connection\n")

	for sc.Scan() { // it serves one client, then exits
		lines = append(lines, sc.Text())
	}
	is.NoErr(cmd.Wait())
	is.Equal(len(lines), 5)
	is.Equal(lines[0], "Serving on ('127.0.0.1', "+port+")")
	is.True(regexp.MustCompile(`^Received 'Hello World!' from \('127\.0\.0\.1', \d+\)$`).MatchString(lines[2]))
	is.Equal(lines[3], "Send: 'Hello World!'")
	is.Equal(lines[4], "Close the connection")
}
