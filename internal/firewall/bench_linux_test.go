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

// BenchmarkAddInterleaved measures the same Add as BenchmarkAddWithExisting
// for N = 1, 100 and 1000 existing VMs, alternating between the three
// namespaces in every iteration, so that load from other processes hits all
// three alike. It reports the median Add per N and the ratio of the
// medians for 1000 and 1.
func BenchmarkAddInterleaved(b *testing.B) {
	sizes := []int{1, 100, 1000}
	hosts := make([]*fwHost, len(sizes))
	for i, n := range sizes {
		hosts[i] = newBridgeHost(b)
		for j := range n {
			hosts[i].mustAdd(bridgedVM(j))
		}
	}
	times := make([][]time.Duration, len(sizes))
	b.ResetTimer()
	for range b.N {
		for i, h := range hosts {
			vm := bridgedVM(sizes[i])
			start := time.Now()
			r, err := h.add(vm)
			if err != nil {
				b.Fatal(err)
			}
			times[i] = append(times[i], time.Since(start))
			b.StopTimer()
			h.mustRemove(vm, r)
			b.StartTimer()
		}
	}
	medians := make([]float64, len(sizes))
	for i, n := range sizes {
		slices.Sort(times[i])
		medians[i] = float64(times[i][len(times[i])/2].Nanoseconds())
		b.ReportMetric(medians[i], fmt.Sprintf("median-ns/add-N%d", n))
	}
	b.ReportMetric(medians[2]/medians[0], "ratio-N1000/N1")
}
