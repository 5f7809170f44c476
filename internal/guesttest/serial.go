//go:build linux

package guesttest

import (
	"bytes"
	"context"
	"errors"
	"sync"
)

// errConsoleClosed reports that QEMU closed its serial output, which means
// the guest is gone.
var errConsoleClosed = errors.New("serial console closed: qemu exited")

// serialLog collects everything the guest writes to its serial console and
// lets readers wait for text to appear. Carriage returns are dropped, so the
// stored text has plain "\n" line ends.
type serialLog struct {
	mu   sync.Mutex
	data []byte
	// changed is closed and replaced after every write and when the log ends.
	changed chan struct{}
	closed  bool
}

func newSerialLog() *serialLog {
	return &serialLog{changed: make(chan struct{})}
}

// Write appends console output. It never fails, so it can sit behind an
// io.Copy from QEMU's output pipe.
func (s *serialLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = append(s.data, bytes.ReplaceAll(p, []byte("\r"), nil)...)
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

// close marks the end of the output: waiters that have not matched yet
// return errConsoleClosed.
func (s *serialLog) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.changed)
	s.changed = make(chan struct{})
}

// size returns the number of bytes collected so far; it is the offset from
// which later waits look for new output.
func (s *serialLog) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.data)
}

// String returns the whole console output so far.
func (s *serialLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.data)
}

// waitFor calls match on the output from offset from on, after every write,
// until match returns a result with ok set. It returns that result, or an
// error when ctx ends or the console closes first.
func waitFor[T any](ctx context.Context, s *serialLog, from int, match func(text []byte) (T, bool)) (T, error) {
	for {
		s.mu.Lock()
		result, ok := match(s.data[from:])
		closed := s.closed
		changed := s.changed
		s.mu.Unlock()

		if ok {
			return result, nil
		}
		if closed {
			return result, errConsoleClosed
		}
		select {
		case <-ctx.Done():
			return result, context.Cause(ctx)
		case <-changed:
		}
	}
}
