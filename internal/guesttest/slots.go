//go:build linux

package guesttest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// MaxGuests is the number of guests that may run at once on the machine. A
// TCG guest keeps one host core busy while it boots, and the test machines
// have two cores; each guest also takes about 220 MB at -m 256.
const MaxGuests = 2

// slotPollInterval is how often a waiting Boot tries the slots again.
const slotPollInterval = 100 * time.Millisecond

// slot is one held guest slot: an exclusive flock on a file in the
// system's temporary directory. Locks are shared by every test process on
// the machine, and the kernel drops them when a process dies.
type slot struct {
	file *os.File
}

// acquireSlot takes a free slot, polling until ctx ends.
func acquireSlot(ctx context.Context) (*slot, error) {
	dir := filepath.Join(os.TempDir(), "kvmnet-guest-slots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create guest slot directory %s: %w", dir, err)
	}
	for {
		for i := range MaxGuests {
			name := filepath.Join(dir, "slot"+strconv.Itoa(i))
			f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				return nil, fmt.Errorf("open guest slot %s: %w", name, err)
			}
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if err == nil {
				return &slot{file: f}, nil
			}
			f.Close()
			if err != syscall.EWOULDBLOCK {
				return nil, fmt.Errorf("lock guest slot %s: %w", name, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for a free guest slot (at most %d guests run at once): %w", MaxGuests, context.Cause(ctx))
		case <-time.After(slotPollInterval):
		}
	}
}

// release unlocks the slot by closing its file.
func (s *slot) release() {
	s.file.Close()
}
