// Package testenv holds helpers for kvmnet's privileged tests: a fresh
// network namespace per test, snapshots of its kernel state for residue
// checks, a runner for the kvmnet command inside it, and a reader for
// host-local reservation files. It is for tests only.
//
// Every helper that changes network state does so inside a namespace that
// NewNS created; nothing here touches the machine's own namespace.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequireRoot stops a test that needs root. Without root it fails when the
// environment variable CI is "true", because a skip there would hide a
// broken setup, and skips otherwise.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("test needs root to create network namespaces and links (CI=true, so this is a failure)")
	}
	t.Skip("test needs root to create network namespaces and links")
}

// NS is a named network namespace, as `ip netns` knows it, that one test
// created. It is deleted in the test's cleanup.
type NS struct {
	// Name is the namespace name: kvmt-<prefix>-<random hex>.
	Name string
	// Path is the namespace's bind mount, /run/netns/<Name>.
	Path string
}

// NewNS creates a network namespace with its loopback link up and deletes
// it in t.Cleanup. A failed deletion fails the test. Keep prefix short,
// because the name becomes a file name under /run/netns.
func NewNS(t testing.TB, prefix string) *NS {
	t.Helper()
	RequireRoot(t)
	var random [4]byte
	if _, err := rand.Read(random[:]); err != nil {
		t.Fatalf("create namespace name: %v", err)
	}
	name := "kvmt-" + prefix + "-" + hex.EncodeToString(random[:])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("create namespace %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, Path: "/run/netns/" + name}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("delete namespace %s: %v: %s", name, err, out)
		}
	})
	ns.Run(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Try runs a command inside the namespace and returns its standard output.
// The error includes the standard error output.
func (ns *NS) Try(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("run %q in namespace %s: %w: %s", strings.Join(args, " "), ns.Name, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Run runs a command inside the namespace, fails the test if it fails, and
// returns its standard output.
func (ns *NS) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.Try(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RepoRoot returns the directory of the kvmnet module, found by walking up
// from the working directory to its go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/kvmnet/kvmnet\n") {
			return dir, nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("find module root: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no go.mod of github.com/kvmnet/kvmnet above the working directory")
		}
		dir = parent
	}
}
