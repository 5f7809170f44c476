package firewall

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkAddWithExisting measures Add of one VM while N other such VMs
// exist. Each VM has one bridged attachment with an IPv4 and an IPv6
// address, masquerade, anti-spoofing and one forwarded port per family. The
// VM is removed again outside the timed part. Besides ns/op the benchmark
// reports the median of the single Adds, which a busy machine disturbs less.
func BenchmarkAddWithExisting(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			h := newBridgeHost(b)
			for i := range n {
				h.mustAdd(bridgedVM(i))
			}
			vm := bridgedVM(n)
			times := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				r, err := h.add(vm)
				if err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(start))
				b.StopTimer()
				h.mustRemove(vm, r)
				b.StartTimer()
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "median-ns/add")
		})
	}
}
