package robust_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// runSignaled starts kvmnet with args and sends sig to it after delay.
func (e *env) runSignaled(sig syscall.Signal, delay time.Duration, args ...string) result {
	cmd := e.command(nil, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return result{code: -1, stderr: err.Error()}
	}
	timer := time.AfterFunc(delay, func() { cmd.Process.Signal(sig) })
	r := wait(cmd, &stdout, &stderr)
	timer.Stop()
	return r
}

// TestTerminateDuringUp sends SIGTERM to up at random points. Up either
// finishes, or stops, undoes its work and exits 1, leaving the baseline. A
// signal that comes before kvmnet's handler is installed (or before
// `ip netns exec` started kvmnet) ends the process before it did anything.
func TestTerminateDuringUp(t *testing.T) {
	e := newEnv(t, "term")
	e.writeNet("br.conf", bridgeNet)
	base := e.warmUp("default,br")
	stopped := 0
	for i := range 20 {
		delay := time.Duration(rand.IntN(60)) * time.Millisecond
		r := e.runSignaled(syscall.SIGTERM, delay, "up", "term", "--net", "default,br")
		switch {
		case r.code == 0:
			e.mustRun("down", "term")
		case r.code == 1, r.signal == syscall.SIGTERM:
			stopped++
		default:
			t.Fatalf("run %d: up after SIGTERM at %s: %s", i, delay, r)
		}
		e.requireBaseline(base, fmt.Sprintf("after run %d, SIGTERM at %s", i, delay))
	}
	t.Logf("%d of 20 ups stopped by SIGTERM", stopped)
}

// TestTerminateDuringDown sends SIGTERM to down at random points: down
// either finishes or exits 1, and a second down then leaves the baseline.
func TestTerminateDuringDown(t *testing.T) {
	e := newEnv(t, "termd")
	e.writeNet("br.conf", bridgeNet)
	base := e.warmUp("default,br")
	for i := range 20 {
		e.mustRun("up", "term", "--net", "default,br")
		delay := time.Duration(rand.IntN(40)) * time.Millisecond
		r := e.runSignaled(syscall.SIGTERM, delay, "down", "term")
		if r.code != 0 && r.code != 1 && r.signal != syscall.SIGTERM {
			t.Fatalf("run %d: down after SIGTERM at %s: %s", i, delay, r)
		}
		e.mustRun("down", "term")
		e.requireBaseline(base, fmt.Sprintf("after run %d, SIGTERM at %s", i, delay))
	}
}
