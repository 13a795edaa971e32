package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestEcho(t *testing.T) {
	is := is.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	is.NoErr(run(ctx, &out))
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	is.True(strings.HasPrefix(lines[0], "Serving on 127.0.0.1:"))
	is.Equal(strings.Join(lines[1:], "\n"), strings.TrimSpace(`
Send: 'Hello World!'
Received: 'Hello World!'
Send: 'How are you?'
Received: 'How are you?'
Send: 'Goodbye.'
Received: 'Goodbye.'
Close the connection`))
}
