//go:build linux

package guesttest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// failOrSkip stops a test that cannot run here. Under CI (CI=true) that is
// a failure, because a skipped guest test there would hide a broken setup;
// elsewhere the test is skipped.
func failOrSkip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true, so this is a failure, not a skip)", msg)
	}
	t.Skip(msg)
}

// RequireRoot stops the test (see failOrSkip) unless it runs as root and
// the ip and busybox commands exist.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		failOrSkip(t, "test needs root to create network namespaces and taps")
	}
	for _, name := range []string{"ip", "busybox"} {
		if _, err := exec.LookPath(name); err != nil {
			failOrSkip(t, "test needs %s: %v", name, err)
		}
	}
}

// RequireGuests stops the test (see failOrSkip) unless guests can be
// booted here: root, ip, busybox and qemu-system-x86_64.
func RequireGuests(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		failOrSkip(t, "test needs qemu-system-x86_64 (Debian package qemu-system-x86): %v", err)
	}
}
