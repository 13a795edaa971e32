package sluice

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestLineChan(t *testing.T) {
	is := is.New(t)
	c := feed(t, defaultLimit, streamData)
	s := c.LineChan(testCtx(t))
	var got [][]byte
	for line := range s.C {
		got = append(got, line)
	}
	is.NoErr(s.Err())
	is.Equal(len(got), 3)
	// Values are owned copies: distinct arrays, intact after the stream ended.
	is.Equal(string(got[0]), "line1")
	is.Equal(string(got[2]), "line3")
	is.True(&got[0][0] != &got[1][0])
}

func TestLineChanError(t *testing.T) {
	is := is.New(t)
	c := feed(t, 4, "ok\ntoo long\n")
	s := c.LineChan(testCtx(t))
	var got []string
	for line := range s.C {
		got = append(got, string(line))
	}
	is.Equal(got, []string{"ok"})
	is.True(errors.Is(s.Err(), ErrLimitOverrun))
}

// A consumer that walks away with Stop ends the producer, even one blocked in a
// read on a silent peer.
func TestStreamStop(t *testing.T) {
	is := is.New(t)
	c := feedOpts(t, false, nil, "first\n")
	s := c.LineChan(context.Background())
	select {
	case line := <-s.C:
		is.Equal(string(line), "first")
	case <-time.After(testTimeout):
		t.Fatal("no line")
	}
	is.True(errors.Is(s.Stop(), context.Canceled))
	is.True(errors.Is(s.Stop(), context.Canceled)) // idempotent
	_, open := <-s.C
	is.True(!open)
}

func TestStreamContextEnds(t *testing.T) {
	is := is.New(t)
	c := feedOpts(t, false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s := c.ChunkChan(ctx, 16)
	for range s.C {
		t.Fatal("no data was sent")
	}
	is.True(errors.Is(s.Err(), context.DeadlineExceeded))
}

func TestChunkChanSelect(t *testing.T) {
	is := is.New(t)
	c := feed(t, defaultLimit, "abcdefgh")
	s := c.ChunkChan(testCtx(t), 3)
	var got string
	timeout := time.After(testTimeout)
	for done := false; !done; {
		select {
		case chunk, ok := <-s.C:
			if !ok {
				done = true
				break
			}
			got += string(chunk)
		case <-timeout:
			t.Fatal("stream did not end")
		}
	}
	is.NoErr(s.Err())
	is.Equal(got, "abcdefgh")
}
