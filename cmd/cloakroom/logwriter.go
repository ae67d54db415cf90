package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// logFlushDelay bounds how long a log line waits in the buffer.
const logFlushDelay = 50 * time.Millisecond

// bufferedLog batches log lines into few writes: with one access-log line
// per request, a write(2) per line is a measurable share of a proxied
// call's CPU. Each Write (one whole line from slog) is buffered intact and
// goes out within logFlushDelay, or at once when the buffer fills; Close
// flushes what is left. A crash can lose at most the last logFlushDelay of
// lines.
type bufferedLog struct {
	mu      sync.Mutex
	w       *bufio.Writer
	pending bool // a flush is scheduled
	closed  bool
}

func newBufferedLog(w io.Writer) *bufferedLog {
	return &bufferedLog{w: bufio.NewWriterSize(w, 64<<10)}
}

func (l *bufferedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		n, err := l.w.Write(p)
		if err == nil {
			err = l.w.Flush()
		}
		return n, err
	}
	n, err := l.w.Write(p)
	if !l.pending && l.w.Buffered() > 0 {
		l.pending = true
		time.AfterFunc(logFlushDelay, l.flush)
	}
	return n, err
}

func (l *bufferedLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = false
	l.w.Flush()
}

// Close flushes and makes later writes unbuffered.
func (l *bufferedLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return l.w.Flush()
}
