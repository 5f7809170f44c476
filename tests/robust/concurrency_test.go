package robust_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// vmSummary is one entry of `kvmnet list --json`.
type vmSummary struct {
	VM        string   `json:"vm"`
	Phase     string   `json:"phase"`
	Devices   []string `json:"devices"`
	Addresses []string `json:"addresses"`
}

// list returns the VMs with a record.
func (e *env) list() []vmSummary {
	e.t.Helper()
	r := e.mustRun("list", "--json")
	var out []vmSummary
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		e.t.Fatalf("parse list output: %v\n%s", err, r.stdout)
	}
	return out
}

// requireUniqueAddresses fails the test when two VMs share an address.
func requireUniqueAddresses(t testing.TB, vms []vmSummary) {
	t.Helper()
	owner := map[string]string{}
	for _, vm := range vms {
		for _, a := range vm.Addresses {
			if prev, ok := owner[a]; ok {
				t.Errorf("address %s given to both %s and %s", a, prev, vm.VM)
			}
			owner[a] = vm.VM
		}
	}
}

// parallel runs fn(i) for i in [0, n) with at most limit at once.
func parallel(n, limit int, fn func(i int)) {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}

func TestConcurrentDifferentVMs(t *testing.T) {
	e := newEnv(t, "conc")
	e.writeNet("br.conf", bridgeNet)
	base := e.warmUp("default,br")
	const n = 12

	results := make([]result, n)
	parallel(n, n, func(i int) { results[i] = e.run("up", fmt.Sprintf("vm-%d", i), "--net", "default,br") })
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("up vm-%d: %s", i, r)
		}
	}
	vms := e.list()
	if len(vms) != n {
		t.Errorf("list shows %d vms, want %d", len(vms), n)
	}
	for _, vm := range vms {
		if vm.Phase != "up" {
			t.Errorf("vm %s is in phase %s, want up", vm.VM, vm.Phase)
		}
	}
	requireUniqueAddresses(t, vms)
	if bridges := e.ns.Snapshot(t).LinksOfType("bridge"); len(bridges) != 1 {
		t.Errorf("got %d bridges, want 1: %v", len(bridges), bridges)
	}

	parallel(n, n, func(i int) { results[i] = e.run("down", fmt.Sprintf("vm-%d", i)) })
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("down vm-%d: %s", i, r)
		}
	}
	e.requireBaseline(base, "after concurrent up and down of different vms")
}

func TestConcurrentSameVM(t *testing.T) {
	e := newEnv(t, "same")
	e.writeNet("br.conf", bridgeNet)
	base := e.warmUp("default,br")
	const n = 6

	results := make([]result, n)
	parallel(n, n, func(i int) { results[i] = e.run("up", "same", "--net", "default,br") })
	succeeded := 0
	for _, r := range results {
		switch {
		case r.code == 0:
			succeeded++
		case r.code != 1:
			t.Errorf("concurrent up exit status = %d, want 0 or 1: %s", r.code, r)
		case !strings.Contains(r.stderr, "vm same") || !strings.Contains(r.stderr, "already up"):
			t.Errorf("concurrent up error does not say vm same is already up: %s", r.stderr)
		}
	}
	if succeeded != 1 {
		t.Errorf("%d of %d concurrent ups of one id succeeded, want 1", succeeded, n)
	}
	vms := e.list()
	if len(vms) != 1 || vms[0].Phase != "up" {
		t.Fatalf("list = %+v, want one vm in phase up", vms)
	}
	if got := len(e.ns.Snapshot(t).LinksOfType("tap")); got != 2 {
		t.Errorf("got %d taps, want 2", got)
	}

	parallel(n, n, func(i int) { results[i] = e.run("down", "same") })
	for _, r := range results {
		if r.code != 0 {
			t.Errorf("concurrent down: %s", r)
		}
	}
	e.requireBaseline(base, "after concurrent up and down of one id")
}

// TestConcurrentUpDownSameVM races up against down of one id: whichever
// runs first, a final down leaves the baseline.
func TestConcurrentUpDownSameVM(t *testing.T) {
	e := newEnv(t, "updn")
	base := e.warmUp("default")
	for round := range 5 {
		results := make([]result, 2)
		parallel(2, 2, func(i int) {
			if i == 0 {
				results[i] = e.run("up", "racer")
			} else {
				results[i] = e.run("down", "racer")
			}
		})
		for _, r := range results {
			if r.code != 0 {
				t.Errorf("round %d: %s", round, r)
			}
		}
		e.mustRun("down", "racer")
		e.requireBaseline(base, fmt.Sprintf("after round %d of up racing down", round))
	}
}

func TestSecondUpOfLiveVM(t *testing.T) {
	e := newEnv(t, "again")
	e.mustRun("up", "live-1")
	before := e.snapshot()
	r := e.run("up", "live-1")
	if r.code != 1 {
		t.Errorf("second up exit status = %d, want 1: %s", r.code, r)
	}
	if !strings.Contains(r.stderr, "vm live-1") || !strings.Contains(r.stderr, "already up") {
		t.Errorf("error does not say vm live-1 is already up: %s", r.stderr)
	}
	if d := diffState(before, e.snapshot()); d != "" {
		t.Errorf("second up changed the first vm (-before +after):\n%s", d)
	}
	e.mustRun("down", "live-1")
}
