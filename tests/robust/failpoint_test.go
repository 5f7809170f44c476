package robust_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/internal/failpoint"
)

// fpCase is one failpoint armed for one run.
type fpCase struct {
	point string
	// index is the attachment index, or -1 for the first time the point is
	// reached.
	index int
}

func (c fpCase) spec(action failpoint.Action) string {
	return failpoint.Spec{Name: c.point, Index: c.index, Action: action}.String()
}

func (c fpCase) String() string {
	if c.index < 0 {
		return c.point
	}
	return fmt.Sprintf("%s@%d", c.point, c.index)
}

// unreached lists the failpoints that a VM with the networks default
// (ptp), br (bridge) and mv (macvlan) never reaches, and why.
var unreached = map[string]string{
	failpoint.UpRouteAdded + "@1":   "a bridge network adds no host route",
	failpoint.UpRouteAdded + "@2":   "a macvlan network adds no host route",
	failpoint.UpAddressAdded + "@2": "a macvlan network adds no host address",
}

// fpCases returns every failpoint whose name starts with prefix, once per
// attachment of a VM on fpNets where the point is per attachment.
func fpCases(t *testing.T, prefix string) []fpCase {
	var cases []fpCase
	for _, p := range failpoint.Points() {
		if !strings.HasPrefix(p.Name, prefix) {
			continue
		}
		indexes := []int{-1}
		switch {
		case p.BridgeOnly:
			indexes = []int{1}
		case p.PerAttachment:
			indexes = []int{0, 1, 2}
		}
		for _, i := range indexes {
			c := fpCase{point: p.Name, index: i}
			if _, skip := unreached[c.String()]; !skip {
				cases = append(cases, c)
			}
		}
	}
	if len(cases) == 0 {
		t.Fatalf("no failpoints start with %q", prefix)
	}
	return cases
}

// fpNets are the networks of the VM that the failpoint walks bring up.
const fpNets = "default,br,mv"

// newFailpointEnv returns an env with the networks of fpNets and the
// baseline after one VM went up and down on them.
func newFailpointEnv(t *testing.T, prefix string) (*env, state) {
	e := newEnv(t, prefix)
	e.addMacvlanMaster()
	e.writeNet("br.conf", bridgeNet)
	e.writeNet("mv.conf", macvlanNet)
	return e, e.warmUp(fpNets)
}

// TestFailpointUpKill kills up at every failpoint, then checks that down,
// or else gc, completes the teardown and leaves the baseline.
func TestFailpointUpKill(t *testing.T) {
	e, base := newFailpointEnv(t, "fpuk")
	for _, c := range fpCases(t, "up.") {
		for _, cleanup := range [][]string{{"down", "fp-vm"}, {"gc"}} {
			t.Run(c.String()+"/"+cleanup[0], func(t *testing.T) {
				e.t = t
				r := e.runEnv([]string{failpoint.EnvVar + "=" + c.spec(failpoint.Kill)}, "up", "fp-vm", "--net", fpNets)
				if !r.killed {
					t.Fatalf("up did not die at the failpoint: %s", r)
				}
				if !e.recordExists("fp-vm") {
					t.Fatal("killed up left no state record")
				}
				if diffState(base, e.snapshot()) == "" {
					t.Fatal("state after the kill equals the baseline, so the residue check sees nothing")
				}
				before := e.snapshot()
				if r := e.run(cleanup...); r.code != 0 {
					t.Fatalf("%s after the kill: %s", cleanup[0], r)
				}
				if c.point == failpoint.UpCommitted && cleanup[0] == "gc" {
					// The record shows that up finished, so the VM is live
					// and gc must leave it alone. down removes it.
					if d := diffState(before, e.snapshot()); d != "" {
						t.Fatalf("gc changed a live vm (-before +after):\n%s", d)
					}
					e.mustRun("down", "fp-vm")
				}
				e.requireBaseline(base, "after kill at "+c.String()+" and "+cleanup[0])
			})
		}
	}
}

// TestFailpointUpFail makes up fail at every failpoint, then checks the
// error names the step and the undo leaves the baseline.
func TestFailpointUpFail(t *testing.T) {
	e, base := newFailpointEnv(t, "fpuf")
	for _, c := range fpCases(t, "up.") {
		t.Run(c.String(), func(t *testing.T) {
			e.t = t
			r := e.runEnv([]string{failpoint.EnvVar + "=" + c.spec(failpoint.Fail)}, "up", "fp-vm", "--net", fpNets)
			if r.code != 1 {
				t.Fatalf("up exit status = %d, want 1: %s", r.code, r)
			}
			if !strings.Contains(r.stderr, "failpoint "+c.point) {
				t.Errorf("error does not name the step %s: %s", c.point, r.stderr)
			}
			if strings.Contains(r.stderr, "undo") {
				t.Errorf("undo reported a failure: %s", r.stderr)
			}
			e.requireBaseline(base, "after failure at "+c.String())
		})
	}
}

// TestFailpointDownKill kills down at every failpoint, then checks that a
// second down completes and leaves the baseline.
func TestFailpointDownKill(t *testing.T) {
	e, base := newFailpointEnv(t, "fpdk")
	for _, c := range fpCases(t, "down.") {
		t.Run(c.String(), func(t *testing.T) {
			e.t = t
			e.mustRun("up", "fp-vm", "--net", fpNets)
			r := e.runEnv([]string{failpoint.EnvVar + "=" + c.spec(failpoint.Kill)}, "down", "fp-vm")
			if !r.killed {
				t.Fatalf("down did not die at the failpoint: %s", r)
			}
			if r := e.run("down", "fp-vm"); r.code != 0 {
				t.Fatalf("second down: %s", r)
			}
			e.requireBaseline(base, "after kill at "+c.String()+" and down")
		})
	}
}

// TestFailpointDownFail makes down fail at every failpoint, then checks
// the error names the step and a second down leaves the baseline.
func TestFailpointDownFail(t *testing.T) {
	e, base := newFailpointEnv(t, "fpdf")
	for _, c := range fpCases(t, "down.") {
		t.Run(c.String(), func(t *testing.T) {
			e.t = t
			e.mustRun("up", "fp-vm", "--net", fpNets)
			r := e.runEnv([]string{failpoint.EnvVar + "=" + c.spec(failpoint.Fail)}, "down", "fp-vm")
			if r.code != 1 {
				t.Fatalf("down exit status = %d, want 1: %s", r.code, r)
			}
			if !strings.Contains(r.stderr, "failpoint "+c.point) {
				t.Errorf("error does not name the step %s: %s", c.point, r.stderr)
			}
			if r := e.run("down", "fp-vm"); r.code != 0 {
				t.Fatalf("second down: %s", r)
			}
			e.requireBaseline(base, "after failure at "+c.String()+" and down")
		})
	}
}

// TestFailpointsAllWalked checks that the walks above cover every failpoint.
func TestFailpointsAllWalked(t *testing.T) {
	walked := map[string]bool{}
	for _, c := range append(fpCases(t, "up."), fpCases(t, "down.")...) {
		walked[c.point] = true
	}
	for _, name := range failpoint.Names() {
		if !walked[name] {
			t.Errorf("failpoint %s is not walked", name)
		}
	}
}
