package robust_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/kvmnet/kvmnet/internal/failpoint"
	"github.com/kvmnet/kvmnet/internal/vmid"
)

// gcItem is one entry of `kvmnet gc --json`.
type gcItem struct {
	Kind   string `json:"kind"`
	VM     string `json:"vm"`
	Object string `json:"object"`
	Action string `json:"action"`
	Done   bool   `json:"done"`
	Error  string `json:"error"`
}

// gc runs `kvmnet gc --json` with extra arguments and returns its items.
func (e *env) gc(args ...string) []gcItem {
	e.t.Helper()
	r := e.mustRun(append([]string{"gc", "--json"}, args...)...)
	var items []gcItem
	if err := json.Unmarshal([]byte(r.stdout), &items); err != nil {
		e.t.Fatalf("parse gc output: %v\n%s", err, r.stdout)
	}
	return items
}

// itemKeys returns "kind vm object" of each item, sorted.
func itemKeys(items []gcItem) []string {
	var keys []string
	for _, it := range items {
		keys = append(keys, it.Kind+" "+it.VM+" "+it.Object)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// makeOrphans leaves objects of VM ids without a usable record, as a crash
// or a hand-deleted record would. ghost has a tap, a reservation in the
// default network and a temporary record file. ghost2 has a reservation in
// a network without a config, and ghost3 a lock file. broken has a
// tap and a corrupt record. killed has the record of an up killed after
// IPAM ADD.
func (e *env) makeOrphans() {
	e.t.Helper()
	for _, id := range []string{"ghost", "broken"} {
		name := vmid.LinkName(id, 0)
		e.ns.Run(e.t, "ip", "tuntap", "add", name, "mode", "tap")
		e.ns.Run(e.t, "ip", "link", "set", name, "alias", "kvmnet vm="+id)
	}
	files := map[string]string{
		"ipam/default/172.16.28.250": "ghost\r\neth0",
		"ipam/lost/10.255.0.9":       "ghost2\r\neth0",
		"ghost3.lock":                "",
		".ghost.123456.tmp":          "{",
		"broken.json":                `{"version":1,"vm":"broken","pha`,
	}
	for rel, text := range files {
		path := filepath.Join(e.stateDir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	r := e.runEnv([]string{failpoint.EnvVar + "=" + failpoint.UpIPAMAdded + ":kill"}, "up", "killed", "--net", "default,br")
	if !r.killed {
		e.t.Fatalf("up of killed did not die at the failpoint: %s", r)
	}
}

func TestGCRemovesOrphansOnly(t *testing.T) {
	e := newEnv(t, "gc")
	e.writeNet("br.conf", bridgeNet)
	e.warmUp("default,br")
	e.mustRun("up", "live", "--net", "default,br")
	// gc removes reservation files but keeps the dirs of their networks.
	if err := os.MkdirAll(filepath.Join(e.ipamDir(), "lost"), 0o700); err != nil {
		t.Fatal(err)
	}
	withLive := e.snapshot()
	e.makeOrphans()
	orphaned := e.snapshot()

	want := []string{
		"link broken " + vmid.LinkName("broken", 0),
		"link ghost " + vmid.LinkName("ghost", 0),
		"lock-file ghost3 " + filepath.Join(e.stateDir, "ghost3.lock"),
		"record broken " + filepath.Join(e.stateDir, "broken.json"),
		"record killed " + filepath.Join(e.stateDir, "killed.json"),
		"reservation ghost default/172.16.28.250",
		"reservation ghost2 lost/10.255.0.9",
		"temp-file ghost " + filepath.Join(e.stateDir, ".ghost.123456.tmp"),
	}

	// A dry run lists and changes nothing.
	items := e.gc("--dry-run")
	if got := itemKeys(items); !slices.Equal(got, want) {
		t.Errorf("dry run items:\n got %q\nwant %q", got, want)
	}
	for _, it := range items {
		if it.Done {
			t.Errorf("dry run reports %s %s as done", it.Kind, it.Object)
		}
	}
	if d := diffState(orphaned, e.snapshot()); d != "" {
		t.Errorf("dry run changed the state (-before +after):\n%s", d)
	}

	items = e.gc()
	if got := itemKeys(items); !slices.Equal(got, want) {
		t.Errorf("gc items:\n got %q\nwant %q", got, want)
	}
	for _, it := range items {
		if !it.Done || it.Error != "" {
			t.Errorf("gc did not finish %s %s: %+v", it.Kind, it.Object, it)
		}
		if it.VM == "live" {
			t.Errorf("gc touched the live vm: %+v", it)
		}
	}
	for _, it := range items {
		if it.Kind == "reservation" && it.VM == "ghost" && !strings.Contains(it.Action, "IPAM DEL") {
			t.Errorf("reservation of a built-in network released with %q, want IPAM DEL", it.Action)
		}
		if it.Kind == "reservation" && it.VM == "ghost2" && !strings.Contains(it.Action, "file") {
			t.Errorf("reservation of an unknown network released with %q, want file removal", it.Action)
		}
	}
	after := e.snapshot()
	if d := diffState(withLive, after); d != "" {
		t.Errorf("state after gc differs from the state with only the live vm (-want +got):\n%s", d)
	}

	if items := e.gc(); len(items) != 0 {
		t.Errorf("second gc found %v", itemKeys(items))
	}
	e.mustRun("down", "live")
}

func TestGCSkipsLockedVM(t *testing.T) {
	e := newEnv(t, "gclk")
	e.writeNet("br.conf", bridgeNet)
	base := e.warmUp("default")
	r := e.runEnv([]string{failpoint.EnvVar + "=" + failpoint.UpLinkUp + ":kill"}, "up", "held")
	if !r.killed {
		t.Fatalf("up did not die at the failpoint: %s", r)
	}
	killed := e.snapshot()

	// Hold the VM's lock as a running up or down would.
	f, err := os.OpenFile(filepath.Join(e.stateDir, "held.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if items := e.gc(); len(items) != 0 {
		t.Errorf("gc touched a vm whose lock is held: %v", itemKeys(items))
	}
	if d := diffState(killed, e.snapshot()); d != "" {
		t.Errorf("gc changed a vm whose lock is held (-before +after):\n%s", d)
	}
	f.Close()

	items := e.gc()
	if got := itemKeys(items); !slices.Equal(got, []string{"record held " + filepath.Join(e.stateDir, "held.json")}) {
		t.Errorf("gc after the lock was released: %q", got)
	}
	e.requireBaseline(base, "after gc")
}

// TestGCHumanOutput checks one line per removal without --json.
func TestGCHumanOutput(t *testing.T) {
	e := newEnv(t, "gctx")
	e.warmUp("default")
	if r := e.mustRun("gc"); strings.TrimSpace(r.stdout) != "nothing to remove" {
		t.Errorf("gc of a clean state dir printed %q", r.stdout)
	}
	r := e.runEnv([]string{failpoint.EnvVar + "=" + failpoint.UpCommitted + ":fail"}, "up", "one")
	if r.code != 1 {
		t.Fatalf("up with a failing commit: %s", r)
	}
	for _, id := range []string{"a", "b"} {
		name := vmid.LinkName(id, 0)
		e.ns.Run(t, "ip", "tuntap", "add", name, "mode", "tap")
		e.ns.Run(t, "ip", "link", "set", name, "alias", "kvmnet vm="+id)
	}
	out := e.mustRun("gc", "--dry-run").stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "vm a: would delete link ") || !strings.HasPrefix(lines[1], "vm b: would delete link ") {
		t.Errorf("gc --dry-run output:\n%s", out)
	}
	out = e.mustRun("gc").stdout
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], ": done") {
		t.Errorf("gc output:\n%s", out)
	}
}

// TestGCBridgeGatewayAddress leaves the gateway address kvmnet put on a
// bridge it did not create, with no record to remove it, and checks gc
// removes it and keeps the bridge.
func TestGCBridgeGatewayAddress(t *testing.T) {
	e := newEnv(t, "gcbr")
	e.ns.Run(t, "ip", "link", "add", "kvmtpre", "type", "bridge")
	e.writeNet("pre.conf", `{"cniVersion":"1.0.0","name":"pre","type":"bridge","bridge":"kvmtpre","isGateway":true,
 "ipam":{"type":"host-local","subnet":"198.51.100.0/24","dataDir":"IPAMDIR"}}`)
	base := e.warmUp("pre")

	e.mustRun("up", "lost", "--net", "pre")
	r := e.runEnv([]string{failpoint.EnvVar + "=" + failpoint.DownLinkRemoved + ":kill"}, "down", "lost")
	if !r.killed {
		t.Fatalf("down did not die at the failpoint: %s", r)
	}
	// The record is lost, as if deleted by hand.
	if err := os.Remove(filepath.Join(e.stateDir, "lost.json")); err != nil {
		t.Fatal(err)
	}
	if got := e.ns.Snapshot(t).AddrsOf("kvmtpre"); !slices.Contains(got, "198.51.100.1/24") {
		t.Fatalf("bridge addresses before gc = %v, want the gateway", got)
	}

	dry := itemKeys(e.gc("--dry-run"))
	if !slices.Contains(dry, "bridge  kvmtpre [198.51.100.1/24]") {
		t.Errorf("dry run does not list the gateway address: %q", dry)
	}
	items := e.gc()
	if got := itemKeys(items); !slices.Contains(got, "bridge  kvmtpre [198.51.100.1/24]") {
		t.Errorf("gc does not list the gateway address: %q", got)
	}
	e.requireBaseline(base, "after gc")
	if _, ok := e.ns.Snapshot(t).Link("kvmtpre"); !ok {
		t.Error("gc deleted a bridge kvmnet did not create")
	}
}

// TestGCLostRecord deletes the record of a VM that is up, on a masqueraded
// ptp network and a bridge network, and checks that gc finds every object
// by the VM id it carries: taps, firewall entries, reservations.
func TestGCLostRecord(t *testing.T) {
	e := newEnv(t, "gclost")
	e.writeNet("br.conf", bridgeNet)
	base := e.warmUp("default,br")
	e.mustRun("up", "lost", "--net", "default,br")
	if !strings.Contains(e.ns.Snapshot(t).Ruleset, "lost") {
		t.Fatalf("no firewall entry names vm lost:\n%s", e.ns.Snapshot(t).Ruleset)
	}
	if err := os.Remove(filepath.Join(e.stateDir, "lost.json")); err != nil {
		t.Fatal(err)
	}

	items := e.gc()
	want := []string{
		"firewall lost lost",
		"link lost " + vmid.LinkName("lost", 0),
		"link lost " + vmid.LinkName("lost", 1),
		"lock-file lost " + filepath.Join(e.stateDir, "lost.lock"),
	}
	got := itemKeys(items)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("gc items %q lack %q", got, w)
		}
	}
	for _, it := range items {
		if it.Error != "" {
			t.Errorf("gc failed on %s %s: %s", it.Kind, it.Object, it.Error)
		}
	}
	e.requireBaseline(base, "after gc of a vm whose record was lost")
}

// TestGCLeavesNewerRecord checks that gc touches neither a record of a
// newer format version nor the objects that carry its VM id: a newer
// kvmnet owns them.
func TestGCLeavesNewerRecord(t *testing.T) {
	e := newEnv(t, "gcnew")
	e.warmUp("default")
	e.writeRecord("newer", `{"version":99,"vm":"newer","phase":"creating","attachments":[]}`)
	name := vmid.LinkName("newer", 0)
	e.ns.Run(t, "ip", "tuntap", "add", name, "mode", "tap")
	e.ns.Run(t, "ip", "link", "set", name, "alias", "kvmnet vm=newer")
	before := e.snapshot()
	if items := e.gc(); len(items) != 0 {
		t.Errorf("gc removed objects of a newer kvmnet: %q", itemKeys(items))
	}
	if d := diffState(before, e.snapshot()); d != "" {
		t.Errorf("gc changed the state (-before +after):\n%s", d)
	}
}

// TestGCLostMacvtapRecord deletes the record of a VM on a macvlan network
// and checks that gc removes the macvtap, its device node and its
// reservation.
func TestGCLostMacvtapRecord(t *testing.T) {
	e := newEnv(t, "gcmv")
	e.addMacvlanMaster()
	e.writeNet("mv.conf", macvlanNet)
	base := e.warmUp("mv")
	e.mustRun("up", "lost", "--net", "mv")
	node := filepath.Join(e.devDir(), vmid.LinkName("lost", 0))
	if _, err := os.Lstat(node); err != nil {
		t.Fatalf("no device node after up: %v", err)
	}
	if err := os.Remove(filepath.Join(e.stateDir, "lost.json")); err != nil {
		t.Fatal(err)
	}
	got := itemKeys(e.gc())
	for _, w := range []string{"device-node lost " + node, "link lost " + vmid.LinkName("lost", 0)} {
		if !slices.Contains(got, w) {
			t.Errorf("gc items %q lack %q", got, w)
		}
	}
	if !slices.ContainsFunc(got, func(k string) bool { return strings.HasPrefix(k, "reservation lost mv/") }) {
		t.Errorf("gc items %q lack the reservation of lost", got)
	}
	e.requireBaseline(base, "after gc")
}

// TestDownRemovesTempRecords leaves the temporary record files of a save
// that a kill interrupted and checks that down removes those of its VM
// and only those.
func TestDownRemovesTempRecords(t *testing.T) {
	e := newEnv(t, "tmprec")
	e.mustRun("up", "vm")
	own := filepath.Join(e.stateDir, ".vm.123.tmp")
	other := filepath.Join(e.stateDir, ".vm.x.456.tmp")
	for _, path := range []string{own, other} {
		if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.mustRun("down", "vm")
	if _, err := os.Stat(own); err == nil {
		t.Errorf("down left its VM's temporary record %s", own)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("down removed the temporary record of another VM: %v", err)
	}
}

// TestDownRemovesTempRecordWithoutRecord covers an up killed during its
// first save, which leaves a temporary record and no record.
func TestDownRemovesTempRecordWithoutRecord(t *testing.T) {
	e := newEnv(t, "tmpone")
	e.mustRun("list")
	own := filepath.Join(e.stateDir, ".vm.123.tmp")
	if err := os.WriteFile(own, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("down", "vm")
	if _, err := os.Stat(own); err == nil {
		t.Errorf("down left the temporary record %s", own)
	}
}

// TestGCAdoptsInterruptedBridge stands for an up killed between creating a
// bridge and setting its alias: the bridge exists without the alias, and
// the creation mark is in the state dir. gc must remove the bridge as one
// kvmnet created, and a bridge made by the operator stays.
func TestGCAdoptsInterruptedBridge(t *testing.T) {
	e := newEnv(t, "gcadopt")
	base := e.snapshot()
	e.ns.Run(t, "ip", "link", "add", "kvmthalf", "type", "bridge")
	marks := filepath.Join(e.stateDir, "bridges")
	if err := os.MkdirAll(marks, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(marks, "kvmthalf.creating"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e.ns.Run(t, "ip", "link", "add", "kvmtmine", "type", "bridge")

	e.gc()
	snap := e.ns.Snapshot(t)
	if _, ok := snap.Link("kvmthalf"); ok {
		t.Error("gc left the bridge whose creation was interrupted")
	}
	if _, ok := snap.Link("kvmtmine"); !ok {
		t.Error("gc deleted a bridge without a creation mark")
	}
	if _, err := os.Stat(filepath.Join(marks, "kvmthalf.creating")); !os.IsNotExist(err) {
		t.Errorf("creation mark left after gc: %v", err)
	}
	e.ns.Run(t, "ip", "link", "del", "kvmtmine")
	e.requireBaseline(base, "after gc")
}
