//go:build linux

// Package networks_test holds kernel tests of kvmnet's macvtap, flannel,
// multi-network and tap-option support. Every test runs the kvmnet command
// inside a network namespace of its own, records the namespace's state
// before the first up and checks after down that nothing is left.
package networks_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/internal/testenv"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the tap-opening helper of the tap owner
	// test, run as another user inside a namespace.
	if os.Getenv(openTapHelperEnv) != "" {
		os.Exit(runOpenTapHelper(os.Args[1:]))
	}
	testenv.Main(m)
}

// world is one test's namespace, the kvmnet runner inside it and the
// namespace's state before the first up.
type world struct {
	t   *testing.T
	ns  *testenv.NS
	cli *testenv.CLI
	// devDir is passed as --dev-dir: the directory of macvtap device nodes.
	devDir string
	// baseline is the namespace's state before the first up, set by
	// takeBaseline.
	baseline testenv.Snapshot
}

// newWorld creates a namespace and a kvmnet runner with private state, net
// and dev dirs. The caller adds its own links and then calls takeBaseline.
func newWorld(t *testing.T, prefix string) *world {
	t.Helper()
	ns := testenv.NewNS(t, prefix)
	w := &world{t: t, ns: ns, cli: testenv.Kvmnet(t, ns), devDir: filepath.Join(t.TempDir(), "dev")}
	return w
}

// in returns a copy of w that reports to t, for subtests that share one
// namespace.
func (w *world) in(t *testing.T) *world {
	c := *w
	c.t = t
	return &c
}

// takeBaseline records the namespace's state, which checkClean compares
// against.
func (w *world) takeBaseline() {
	w.t.Helper()
	w.baseline = w.ns.Snapshot(w.t)
}

// addVeth creates the veth pair name/name-p in the namespace with the given
// MTU and sets name up, for use as a macvtap master.
func (w *world) addVeth(name string, mtu int) {
	w.t.Helper()
	w.ns.Run(w.t, "ip", "link", "add", name, "mtu", fmt.Sprint(mtu), "type", "veth", "peer", "name", name+"-p", "mtu", fmt.Sprint(mtu))
	w.ns.Run(w.t, "ip", "link", "set", name, "up")
}

// writeNet writes a network config file called <name>.conf into the net dir.
// The placeholder IPAMDIR in conf is replaced by the runner's IPAM dir, so
// that every reservation of the test lands in one place.
func (w *world) writeNet(name, conf string) {
	w.t.Helper()
	conf = strings.ReplaceAll(conf, "IPAMDIR", w.cli.IPAMDir())
	if !json.Valid([]byte(conf)) {
		w.t.Fatalf("network config %s is not valid JSON: %s", name, conf)
	}
	if err := os.WriteFile(filepath.Join(w.cli.NetDir, name+".conf"), []byte(conf), 0o644); err != nil {
		w.t.Fatalf("write network config %s: %v", name, err)
	}
}

// kvmnet runs the command with --dev-dir set.
func (w *world) kvmnet(args ...string) testenv.Output {
	w.t.Helper()
	return w.cli.Run(append([]string{"--dev-dir", w.devDir}, args...)...)
}

// up runs `kvmnet up vm --json` with extra args, fails the test unless it
// exits 0, and returns the decoded result.
func (w *world) up(vm string, args ...string) *kvmnet.Result {
	w.t.Helper()
	out := w.kvmnet(append([]string{"up", vm, "--json"}, args...)...)
	if out.Code != 0 {
		w.t.Fatalf("kvmnet up %s %s failed:\n%s", vm, strings.Join(args, " "), out)
	}
	checkNoPanic(w.t, out)
	var res kvmnet.Result
	if err := json.Unmarshal([]byte(out.Stdout), &res); err != nil {
		w.t.Fatalf("decode result of up %s: %v\n%s", vm, err, out.Stdout)
	}
	return &res
}

// upFails runs `kvmnet up vm` with extra args and fails the test unless it
// exits 1 with an error message. It returns the output.
func (w *world) upFails(vm string, args ...string) testenv.Output {
	w.t.Helper()
	out := w.kvmnet(append([]string{"up", vm}, args...)...)
	if out.Code != 1 {
		w.t.Fatalf("kvmnet up %s %s: want exit status 1, got:\n%s", vm, strings.Join(args, " "), out)
	}
	if !strings.HasPrefix(out.Stderr, "kvmnet: ") {
		w.t.Errorf("kvmnet up %s: error message missing on stderr:\n%s", vm, out)
	}
	checkNoPanic(w.t, out)
	return out
}

// down runs `kvmnet down vm` and fails the test unless it exits 0.
func (w *world) down(vm string) {
	w.t.Helper()
	out := w.kvmnet("down", vm)
	if out.Code != 0 {
		w.t.Fatalf("kvmnet down %s failed:\n%s", vm, out)
	}
	checkNoPanic(w.t, out)
}

// show runs `kvmnet show vm --format format` and fails the test unless it
// exits 0. It returns standard output.
func (w *world) show(vm, format string, args ...string) string {
	w.t.Helper()
	out := w.kvmnet(append([]string{"show", vm, "--format", format}, args...)...)
	if out.Code != 0 {
		w.t.Fatalf("kvmnet show %s --format %s failed:\n%s", vm, format, out)
	}
	checkNoPanic(w.t, out)
	return out.Stdout
}

// checkClean fails the test unless the namespace equals the baseline (the
// forwarding sysctls, which kvmnet leaves on, aside), no host-local
// reservation is left in the IPAM dir, no state record is listed and the
// dev dir holds no device node.
func (w *world) checkClean() {
	w.t.Helper()
	now := w.ns.Snapshot(w.t)
	if diff := diffSnapshots(w.baseline, now); diff != "" {
		w.t.Errorf("namespace differs from the baseline (-baseline +now):\n%s", diff)
	}
	if res := testenv.Reservations(w.t, w.cli.IPAMDir()); len(res) != 0 {
		w.t.Errorf("host-local reservations left: %v", res)
	}
	list := w.kvmnet("list", "--json")
	if list.Code != 0 {
		w.t.Errorf("kvmnet list failed:\n%s", list)
	} else if strings.TrimSpace(list.Stdout) != "[]" {
		w.t.Errorf("state records left: %s", list.Stdout)
	}
	nodes, err := os.ReadDir(w.devDir)
	if err != nil && !os.IsNotExist(err) {
		w.t.Errorf("read dev dir: %v", err)
	}
	for _, n := range nodes {
		w.t.Errorf("device node left in dev dir: %s", n.Name())
	}
}

// diffSnapshots returns the difference of two snapshots, the forwarding
// sysctls aside, or "".
func diffSnapshots(a, b testenv.Snapshot) string {
	return testenv.Diff(a.Without(testenv.ForwardingSysctls...), b.Without(testenv.ForwardingSysctls...))
}

// checkNoPanic fails the test when the command's output shows a Go panic.
func checkNoPanic(t *testing.T, out testenv.Output) {
	t.Helper()
	if strings.Contains(out.Stderr, "panic:") || strings.Contains(out.Stderr, "goroutine ") {
		t.Errorf("kvmnet panicked:\n%s", out)
	}
}

// checkContains fails the test unless text contains every one of parts.
func checkContains(t *testing.T, what, text string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(text, p) {
			t.Errorf("%s does not contain %q:\n%s", what, p, text)
		}
	}
}

// ipLinkDetails is the part of `ip -json -details link show dev X` that the
// tests read.
type ipLinkDetails struct {
	Index   int    `json:"ifindex"`
	Name    string `json:"ifname"`
	MTU     int    `json:"mtu"`
	Address string `json:"address"`
	Info    struct {
		Kind string `json:"info_kind"`
		Data struct {
			Mode string `json:"mode"`
			Type string `json:"type"`
		} `json:"info_data"`
	} `json:"linkinfo"`
}

// linkDetails returns the details of link name in the namespace.
func (w *world) linkDetails(name string) ipLinkDetails {
	w.t.Helper()
	var links []ipLinkDetails
	out := w.ns.Run(w.t, "ip", "-json", "-details", "link", "show", "dev", name)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		w.t.Fatalf("parse ip link output of %s: %v\n%s", name, err, out)
	}
	return links[0]
}

// readNSFile reads a file under /proc/sys or /sys as the namespace shows it.
func (w *world) readNSFile(path string) string {
	w.t.Helper()
	return strings.TrimSpace(w.ns.Run(w.t, "cat", path))
}

// defaultRoutes lists, as "<guest device> <dst> via <gw>", the default
// routes of every interface of res.
func defaultRoutes(res *kvmnet.Result) []string {
	var out []string
	for _, ifc := range res.Interfaces {
		for _, rt := range ifc.Routes {
			if rt.Dst.Bits() == 0 {
				out = append(out, fmt.Sprintf("%s %s via %s", ifc.GuestDevice, rt.Dst, rt.GW))
			}
		}
	}
	slices.Sort(out)
	return out
}

// savedConfig returns the network config that the state record of vm keeps
// for attachment index: the config exactly as up used it.
func (w *world) savedConfig(vm string, index int) map[string]any {
	w.t.Helper()
	data, err := os.ReadFile(filepath.Join(w.cli.StateDir, vm+".json"))
	if err != nil {
		w.t.Fatalf("read state record of %s: %v", vm, err)
	}
	var rec struct {
		Attachments []struct {
			Config json.RawMessage `json:"config"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		w.t.Fatalf("decode state record of %s: %v", vm, err)
	}
	if index >= len(rec.Attachments) {
		w.t.Fatalf("state record of %s has %d attachments, want index %d", vm, len(rec.Attachments), index)
	}
	var conf map[string]any
	if err := json.Unmarshal(rec.Attachments[index].Config, &conf); err != nil {
		w.t.Fatalf("decode saved config of %s attachment %d: %v", vm, index, err)
	}
	return conf
}
