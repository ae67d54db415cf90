package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the flush timer's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBufferedLogKeepsLinesWhole(t *testing.T) {
	var sink syncBuffer
	l := newBufferedLog(&sink)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				fmt.Fprintf(l, "{\"g\":%d,\"i\":%d,\"pad\":%q}\n", g, i, strings.Repeat("x", i%300))
			}
		})
	}
	wg.Wait()
	l.Close()
	lines := strings.Split(strings.TrimSuffix(sink.String(), "\n"), "\n")
	if len(lines) != 8*500 {
		t.Fatalf("%d lines, want %d", len(lines), 8*500)
	}
	for _, line := range lines {
		if !strings.HasPrefix(line, `{"g":`) || !strings.HasSuffix(line, `"}`) {
			t.Fatalf("torn line: %q", line)
		}
	}
}

func TestBufferedLogFlushesWithoutMoreWrites(t *testing.T) {
	var sink syncBuffer
	l := newBufferedLog(&sink)
	defer l.Close()
	fmt.Fprintln(l, "one line")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(sink.String(), "one line"); {
		if time.Now().After(deadline) {
			t.Fatal("a lone line never reached the output")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBufferedLogAfterClose(t *testing.T) {
	var sink syncBuffer
	l := newBufferedLog(&sink)
	fmt.Fprintln(l, "before")
	l.Close()
	if sink.String() != "before\n" {
		t.Fatalf("Close did not flush: %q", sink.String())
	}
	fmt.Fprintln(l, "after")
	if sink.String() != "before\nafter\n" {
		t.Fatalf("a write after Close was held back: %q", sink.String())
	}
}
