package kvmnet_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/internal/netns"
	"github.com/kvmnet/kvmnet/internal/testenv"
)

// BenchmarkUpDownDefault measures one Up and one Down of a VM on the
// built-in default network, through the library, in a fresh namespace.
// Each iteration runs the host-local plugin twice (ADD and DEL).
func BenchmarkUpDownDefault(b *testing.B) {
	ns := testenv.NewNS(b, "bench")
	dir := b.TempDir()
	m, err := kvmnet.New(kvmnet.Options{
		StateDir: filepath.Join(dir, "state"),
		NetDirs:  []string{filepath.Join(dir, "net.d")},
		DevDir:   filepath.Join(dir, "dev"),
		CNIPath:  testenv.CNIPath(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	b.ResetTimer()
	err = netns.Do(ns.Path, func() error {
		for i := 0; i < b.N; i++ {
			if _, err := m.Up(ctx, kvmnet.UpRequest{VM: "bench-vm"}); err != nil {
				return fmt.Errorf("iteration %d: %w", i, err)
			}
			if err := m.Down(ctx, "bench-vm"); err != nil {
				return fmt.Errorf("iteration %d: %w", i, err)
			}
		}
		return nil
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if left := ns.Snapshot(b).LinksOfType("tap"); len(left) != 0 {
		b.Fatalf("taps left after the benchmark: %+v", left)
	}
}
