package robust_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/internal/failpoint"
	"github.com/kvmnet/kvmnet/internal/vmid"
)

// waitPlugins waits until no CNI plugin runs for a VM whose id starts with
// prefix. A plugin outlives a killed kvmnet, and a DEL that runs before
// the orphaned ADD finishes releases nothing.
func waitPlugins(t testing.TB, prefix string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if !pluginRunning(prefix) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CNI plugins for vms %s* still run after 10s", prefix)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pluginRunning reports whether a process has CNI_CONTAINERID=prefix... in
// its environment.
func pluginRunning(prefix string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	needle := []byte("\x00CNI_CONTAINERID=" + prefix)
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if bytes.Contains(append([]byte{0}, data...), needle) {
			return true
		}
	}
	return false
}

// upKilled starts up of id and sends SIGKILL to the kvmnet process after
// delay. It returns the result; killed is false when up finished first.
func (e *env) upKilled(id string, delay time.Duration, args ...string) result {
	cmd := e.command(nil, append([]string{"up", id}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return result{code: -1, stderr: err.Error()}
	}
	timer := time.AfterFunc(delay, func() { cmd.Process.Kill() })
	r := wait(cmd, &stdout, &stderr)
	timer.Stop()
	return r
}

// requireIntact checks each VM on the networks default and br. Both taps
// must exist with the VM's owner alias. The first tap must carry the
// gateway address and a host route to the guest, and the second tap must
// be on the bridge.
func (e *env) requireIntact(vms []vmSummary) {
	e.t.Helper()
	snap := e.ns.Snapshot(e.t)
	for _, vm := range vms {
		if len(vm.Devices) != 2 || len(vm.Addresses) != 2 {
			e.t.Errorf("vm %s: devices %v, addresses %v; want two of each", vm.VM, vm.Devices, vm.Addresses)
			continue
		}
		for i, dev := range vm.Devices {
			l, ok := snap.Link(dev)
			if !ok || l.Type != "tap" || l.Alias != "kvmnet vm="+vm.VM {
				e.t.Errorf("vm %s: tap %s missing or not owned: %+v", vm.VM, dev, l)
			}
			if i == 1 && l.Master != "kvmtbr0" {
				e.t.Errorf("vm %s: tap %s is on %q, want kvmtbr0", vm.VM, dev, l.Master)
			}
		}
		guest, _, _ := strings.Cut(vm.Addresses[0], "/")
		route := guest + " dev " + vm.Devices[0] + " scope link"
		if !slices.Contains(snap.Routes, route) {
			e.t.Errorf("vm %s: no route %q", vm.VM, route)
		}
		if addrs := snap.AddrsOf(vm.Devices[0]); !slices.Contains(addrs, "172.16.28.1/24") {
			e.t.Errorf("vm %s: tap %s has addresses %v, want the gateway 172.16.28.1/24", vm.VM, vm.Devices[0], addrs)
		}
	}
}

// whileGC runs gc again and again while fn runs. It returns the result of
// the first gc that failed, or of the last one.
func (e *env) whileGC(fn func()) result {
	done := make(chan struct{})
	gcResult := make(chan result)
	go func() {
		var last result
		for {
			select {
			case <-done:
				gcResult <- last
				return
			default:
			}
			if last = e.run("gc"); last.code != 0 {
				<-done
				gcResult <- last
				return
			}
		}
	}()
	fn()
	close(done)
	return <-gcResult
}

// TestStress brings 50 VMs up and down concurrently, 5 rounds, killing some
// ups at random, with gc running during the ups and after them. Each VM is
// on the ptp network default and the bridge network br.
func TestStress(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test: run without -short")
	}
	const (
		vms      = 50
		rounds   = 5
		limit    = 8
		killRate = 5 // one up in killRate is killed
	)
	e := newEnv(t, "stress")
	e.writeNet("br.conf", bridgeNet)
	base := e.warmUp(stressNets)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	start := time.Now()
	kills := 0

	for round := range rounds {
		type plan struct {
			kill  bool
			delay time.Duration
		}
		plans := make([]plan, vms)
		for i := range plans {
			plans[i] = plan{kill: rng.IntN(killRate) == 0, delay: time.Duration(rng.IntN(80)) * time.Millisecond}
		}

		// Up every VM, with gc running alongside.
		results := make([]result, vms)
		gcResult := e.whileGC(func() {
			parallel(vms, limit, func(i int) {
				id := fmt.Sprintf("st-%d", i)
				if plans[i].kill {
					results[i] = e.upKilled(id, plans[i].delay, "--net", stressNets)
				} else {
					results[i] = e.run("up", id, "--net", stressNets)
				}
			})
		})
		if gcResult.code != 0 {
			t.Errorf("round %d: gc during the ups: %s", round, gcResult)
		}
		for i, r := range results {
			switch {
			case r.killed:
				kills++
			case r.code != 0:
				t.Errorf("round %d: up st-%d: %s", round, i, r)
			}
		}
		waitPlugins(t, "st-")

		// gc completes the killed ups and leaves the others.
		e.mustRun("gc")
		survivors := e.list()
		for _, vm := range survivors {
			if vm.Phase != "up" {
				t.Errorf("round %d: vm %s in phase %s after gc", round, vm.VM, vm.Phase)
			}
		}
		for i, r := range results {
			if r.code == 0 && !slicesContainsVM(survivors, fmt.Sprintf("st-%d", i)) {
				t.Errorf("round %d: st-%d came up but is gone after gc", round, i)
			}
		}
		requireUniqueAddresses(t, survivors)
		e.requireIntact(survivors)
		reservations := e.snapshot().reservations
		if len(reservations) != 2*len(survivors) {
			t.Errorf("round %d: %d reservations for %d vms: %v", round, len(reservations), len(survivors), reservations)
		}

		// Down every VM, killed or not, concurrently, with gc alongside.
		gcResult = e.whileGC(func() {
			parallel(vms, limit, func(i int) {
				if r := e.run("down", fmt.Sprintf("st-%d", i)); r.code != 0 {
					t.Errorf("round %d: down st-%d: %s", round, i, r)
				}
			})
		})
		if gcResult.code != 0 {
			t.Errorf("round %d: gc during the downs: %s", round, gcResult)
		}
		e.mustRun("gc")
		e.requireBaseline(base, fmt.Sprintf("after round %d", round))
	}
	t.Logf("%d vms, %d rounds, %d ups killed, %s", vms, rounds, kills, time.Since(start).Round(time.Millisecond))
}

const stressNets = "default,br"

func slicesContainsVM(vms []vmSummary, id string) bool {
	for _, vm := range vms {
		if vm.VM == id {
			return true
		}
	}
	return false
}

// smallNet is a /29: host-local hands out .2 to .6, the gateway is .1.
const smallNet = `{"cniVersion":"1.0.0","name":"small","type":"ptp",
 "ipam":{"type":"host-local","subnet":"198.51.100.0/29","dataDir":"IPAMDIR"}}`

// smallNetSize is the number of guest addresses of smallNet.
const smallNetSize = 5

// fillRange brings VMs up on network until up fails and returns how many
// came up, with the error of the first failure.
func (e *env) fillRange(network, prefix string, limit int) (int, result) {
	e.t.Helper()
	for i := range limit {
		r := e.run("up", fmt.Sprintf("%s-%d", prefix, i), "--net", network)
		if r.code != 0 {
			return i, r
		}
	}
	return limit, result{}
}

// TestKillDuringFourthUp brings 3 VMs up on a /29, kills the 4th up in the
// middle, cleans up with down or gc, and checks the range then holds
// exactly as many VMs as it has addresses.
func TestKillDuringFourthUp(t *testing.T) {
	type variant struct {
		name    string
		kill    func(e *env) result
		cleanup []string
	}
	atFailpoint := func(e *env) result {
		return e.runEnv([]string{failpoint.EnvVar + "=" + failpoint.UpIPAMAdded + ":kill"}, "up", "fourth", "--net", "small")
	}
	whileRunning := func(e *env) result {
		// Kill at a random point of the run, as kill -9 would.
		return e.upKilled("fourth", time.Duration(rand.IntN(30))*time.Millisecond, "--net", "small")
	}
	variants := []variant{
		{"failpoint/down", atFailpoint, []string{"down", "fourth"}},
		{"failpoint/gc", atFailpoint, []string{"gc"}},
		{"timed/down", whileRunning, []string{"down", "fourth"}},
		{"timed/gc", whileRunning, []string{"gc"}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			e := newEnv(t, "fc11")
			e.writeNet("small.conf", smallNet)
			base := e.warmUp("small")
			for i := range 3 {
				e.mustRun("up", fmt.Sprintf("first-%d", i), "--net", "small")
			}
			r := v.kill(e)
			t.Logf("fourth up killed: %v", r.killed)
			waitPlugins(t, "fourth")
			e.mustRun(v.cleanup...)
			// The kill can land after up committed (while it prints), and then
			// the VM is rightly up: gc leaves it, and it is taken down here.
			if e.run("show", "fourth").code == 0 {
				e.mustRun("down", "fourth")
			}

			n, failure := e.fillRange("small", "fill", smallNetSize)
			if got := 3 + n; got != smallNetSize {
				t.Errorf("range holds %d vms, want %d: %s", got, smallNetSize, failure)
			}
			if r := e.run("up", "one-too-many", "--net", "small"); r.code != 1 || !strings.Contains(r.stderr, "no IP addresses available") {
				t.Errorf("up beyond the range: want exit 1 saying no addresses are left: %s", r)
			}

			for i := range 3 {
				e.mustRun("down", fmt.Sprintf("first-%d", i))
			}
			for i := range n {
				e.mustRun("down", fmt.Sprintf("fill-%d", i))
			}
			e.requireBaseline(base, "after the range was emptied")
		})
	}
}

// TestFailureAfterTapRepeated fails up after the tap exists, by exhausting
// the range, 50 times. Each error must name the cause, and each failure
// must leave nothing.
func TestFailureAfterTapRepeated(t *testing.T) {
	e := newEnv(t, "fc15")
	e.writeNet("tiny.conf", `{"cniVersion":"1.0.0","name":"tiny","type":"ptp",
 "ipam":{"type":"host-local","subnet":"198.51.100.0/30","dataDir":"IPAMDIR"}}`)
	e.mustRun("up", "holder", "--net", "tiny")
	base := e.snapshot()
	for i := range 50 {
		id := fmt.Sprintf("late-%d", i)
		r := e.run("up", id, "--net", "tiny")
		if r.code != 1 {
			t.Fatalf("up %s exit status = %d, want 1: %s", id, r.code, r)
		}
		if !strings.Contains(r.stderr, "no IP addresses available") {
			t.Fatalf("up %s error does not say the range is exhausted: %s", id, r.stderr)
		}
		e.requireBaseline(base, "after failure "+id)
	}
	e.mustRun("down", "holder")
}

// TestDownIdempotent runs down twice, for an unknown id, and after the
// taps were deleted by hand: each succeeds and releases what is held.
func TestDownIdempotent(t *testing.T) {
	e := newEnv(t, "fc18")
	e.writeNet("br.conf", bridgeNet)
	base := e.warmUp("default,br")

	e.mustRun("up", "twice", "--net", "default,br")
	e.mustRun("down", "twice")
	e.mustRun("down", "twice")
	e.requireBaseline(base, "after down twice")

	e.mustRun("down", "never-existed")
	e.requireBaseline(base, "after down of an unknown id")

	e.mustRun("up", "by-hand", "--net", "default,br")
	for i := range 2 {
		e.ns.Run(t, "ip", "link", "del", vmid.LinkName("by-hand", i))
	}
	if len(e.snapshot().reservations) != 2 {
		t.Fatal("want the two reservations of by-hand before down")
	}
	e.mustRun("down", "by-hand")
	e.requireBaseline(base, "after down of a vm whose taps were deleted by hand")
}

// TestUpReleasesStaleReservation leaves a reservation of a VM id without a
// record, as a plugin that outlived a killed up leaves it, and checks that
// the next up of that id succeeds and down leaves the baseline.
func TestUpReleasesStaleReservation(t *testing.T) {
	e := newEnv(t, "stale")
	base := e.warmUp("default")
	stale := filepath.Join(e.ipamDir(), "default", "172.16.28.77")
	if err := os.WriteFile(stale, []byte("again\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("up", "again")
	if _, err := os.Stat(stale); err == nil {
		t.Error("the stale reservation is still there")
	}
	if got := e.snapshot().reservations; len(got) != 1 {
		t.Errorf("reservations after up = %v, want one", got)
	}
	e.mustRun("down", "again")
	e.requireBaseline(base, "after down")
}
