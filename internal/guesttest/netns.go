//go:build linux

package guesttest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Netns is a named network namespace (as `ip netns` knows it) that one test
// created and deletes again in t.Cleanup. Its helpers run the ip and busybox
// commands; they are for tests only.
type Netns struct {
	// Name is the namespace name, kvmt-<label>-<random hex>.
	Name string
	t    testing.TB

	closeOnce sync.Once
}

// NewNetns creates a namespace with its loopback link up. The label names
// the test's role for it ("host", "outside"); keep it short, since ip netns
// names also become file names under /run/netns.
func NewNetns(t testing.TB, label string) *Netns {
	t.Helper()
	RequireRoot(t)
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("create namespace name: %v", err)
	}
	n := &Netns{Name: "kvmt-" + label + "-" + hex.EncodeToString(b[:]), t: t}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("create namespace %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(n.Close)
	n.IP("link", "set", "lo", "up")
	return n
}

// Close deletes the namespace. NewNetns registers it with t.Cleanup;
// calling it earlier is allowed, and later calls do nothing.
func (n *Netns) Close() {
	n.closeOnce.Do(func() {
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			n.t.Errorf("delete namespace %s: %v: %s", n.Name, err, out)
		}
	})
}

// Try runs a command inside the namespace and returns its combined output.
func (n *Netns) Try(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("run %q in %s: %w: %s", strings.Join(args, " "), n.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Run runs a command inside the namespace and fails the test if it fails.
func (n *Netns) Run(args ...string) string {
	n.t.Helper()
	out, err := n.Try(args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// IP runs `ip -n NAME args...` and fails the test if it fails.
func (n *Netns) IP(args ...string) string {
	n.t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("ip -n %s %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Start starts a long-running command inside the namespace and kills it by
// its pid in t.Cleanup, before the namespace is deleted.
func (n *Netns) Start(args ...string) *exec.Cmd {
	n.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start %q in %s: %v", strings.Join(args, " "), n.Name, err)
	}
	n.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// Ping sends one ICMP echo request from the namespace and waits up to 2 s
// for the reply.
func (n *Netns) Ping(addr string) error {
	_, err := n.Try("busybox", "ping", "-c1", "-W2", addr)
	return err
}

// HTTPGet fetches a URL from inside the namespace with busybox wget,
// bounded to 5 s by timeout(1) because busybox's own wget -T crashes.
func (n *Netns) HTTPGet(url string) (string, error) {
	return n.Try("timeout", "5", "busybox", "wget", "-q", "-O-", url)
}

// WaitPing pings addr from the namespace until it answers or d passes. A
// guest's first packets can be lost while neighbour discovery runs.
func (n *Netns) WaitPing(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := n.Ping(addr)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}
