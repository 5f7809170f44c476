// Package kernel_test runs the kvmnet command against the real kernel, each
// test in a network namespace of its own, and checks that down leaves the
// namespace as it was before up.
package kernel_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is one test's namespace, kvmnet runner and baseline snapshot.
type env struct {
	t    *testing.T
	ns   *testenv.NS
	cli  *testenv.CLI
	base testenv.Snapshot
}

// newEnv creates a namespace and a runner, and takes the baseline. Tests
// that add their own links call rebase once they are in place.
func newEnv(t *testing.T, prefix string) *env {
	t.Helper()
	testenv.RequireRoot(t)
	t.Parallel()
	ns := testenv.NewNS(t, prefix)
	e := &env{t: t, ns: ns, cli: testenv.Kvmnet(t, ns)}
	e.rebase()
	return e
}

func (e *env) rebase() {
	e.t.Helper()
	e.base = e.ns.Snapshot(e.t)
}

// writeConf writes a network config into the net dir. Every host-local
// ipam section without a dataDir gets the runner's IPAM dir, so that no
// test writes into the machine's /var/lib/cni.
func (e *env) writeConf(file, text string) {
	e.t.Helper()
	var conf map[string]any
	if err := json.Unmarshal([]byte(text), &conf); err != nil {
		e.t.Fatalf("test config %s is invalid JSON: %v", file, err)
	}
	plugins := []any{conf}
	if list, ok := conf["plugins"].([]any); ok {
		plugins = list
	}
	for _, p := range plugins {
		ipam, _ := p.(map[string]any)["ipam"].(map[string]any)
		if ipam != nil && ipam["type"] == "host-local" && ipam["dataDir"] == nil {
			ipam["dataDir"] = e.cli.IPAMDir()
		}
	}
	data, err := json.Marshal(conf)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.cli.NetDir, file), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// up runs `kvmnet up id --json args...` and returns the decoded result.
func (e *env) up(id string, args ...string) *kvmnet.Result {
	e.t.Helper()
	out := e.cli.Run(append([]string{"up", id, "--json"}, args...)...)
	if out.Code != 0 {
		e.t.Fatalf("up %s %v failed:\n%s", id, args, out)
	}
	var res kvmnet.Result
	if err := json.Unmarshal([]byte(out.Stdout), &res); err != nil {
		e.t.Fatalf("up %s: decode result: %v\n%s", id, err, out.Stdout)
	}
	return &res
}

// upFails runs `kvmnet up id args...`, expects exit status 1 and returns
// the standard error output.
func (e *env) upFails(id string, args ...string) string {
	e.t.Helper()
	out := e.cli.Run(append([]string{"up", id}, args...)...)
	if out.Code != 1 {
		e.t.Fatalf("up %s %v: want exit status 1\n%s", id, args, out)
	}
	return out.Stderr
}

func (e *env) down(id string) {
	e.t.Helper()
	if out := e.cli.Run("down", id); out.Code != 0 {
		e.t.Fatalf("down %s failed:\n%s", id, out)
	}
}

// requireBaseline fails the test unless the namespace equals the baseline,
// forwarding sysctls included, and no reservation or state record is left.
func (e *env) requireBaseline() {
	e.t.Helper()
	now := e.ns.Snapshot(e.t)
	if d := testenv.Diff(e.base, now); d != "" {
		e.t.Fatalf("namespace differs from the baseline (-before +after):\n%s", d)
	}
	if r := testenv.Reservations(e.t, e.cli.IPAMDir()); len(r) != 0 {
		e.t.Fatalf("host-local reservations left: %v", r)
	}
	records, _ := filepath.Glob(filepath.Join(e.cli.StateDir, "*.json"))
	if len(records) != 0 {
		e.t.Fatalf("state records left: %v", records)
	}
}

// requireSame fails the test unless the namespace equals snapshot want.
func (e *env) requireSame(want testenv.Snapshot, step string) {
	e.t.Helper()
	if d := testenv.Diff(want, e.ns.Snapshot(e.t)); d != "" {
		e.t.Fatalf("%s changed the namespace (-before +after):\n%s", step, d)
	}
}

// reservedBy returns the IPs reserved for VM id, as "<network>/<IP>".
func (e *env) reservedBy(id string) []string {
	e.t.Helper()
	var out []string
	for key, owner := range testenv.Reservations(e.t, e.cli.IPAMDir()) {
		if owner == id {
			out = append(out, key)
		}
	}
	return out
}

// checkMasquerade checks whether guest is in the masquerade4 set of table
// inet kvmnet, which the postrouting chain masquerades.
func checkMasquerade(t *testing.T, ns *testenv.NS, guest string, want bool) {
	t.Helper()
	t.Run("nft", func(t *testing.T) {
		set, err := ns.Try("nft", "list", "set", "inet", "kvmnet", "masquerade4")
		named := err == nil && regexp.MustCompile(`(^|[^0-9.])`+regexp.QuoteMeta(guest)+`([^0-9]|$)`).MatchString(set)
		switch {
		case want && err != nil:
			t.Errorf("no set inet kvmnet masquerade4, want an entry for %s: %v", guest, err)
		case want && !named:
			t.Errorf("set masquerade4 has no entry for %s:\n%s", guest, set)
		case !want && named:
			t.Errorf("set masquerade4 has an entry for %s, want none:\n%s", guest, set)
		}
		if want {
			table, _ := ns.Try("nft", "list", "chain", "inet", "kvmnet", "postrouting")
			if !strings.Contains(table, "@masquerade4 masquerade") {
				t.Errorf("chain postrouting does not masquerade @masquerade4:\n%s", table)
			}
		}
	})
}

// guestAddr returns the first address of the interface, without the prefix
// length.
func guestAddr(t *testing.T, ifc kvmnet.Interface) string {
	t.Helper()
	if len(ifc.Addresses) == 0 {
		t.Fatalf("interface %s has no address", ifc.GuestDevice)
	}
	return ifc.Addresses[0].Addr().String()
}

// decodeResult decodes the JSON result in out, failing the test when the
// command failed.
func decodeResult(t *testing.T, out testenv.Output) *kvmnet.Result {
	t.Helper()
	if out.Code != 0 {
		t.Fatalf("command failed:\n%s", out)
	}
	var res kvmnet.Result
	if err := json.Unmarshal([]byte(out.Stdout), &res); err != nil {
		t.Fatalf("decode result: %v\n%s", err, out.Stdout)
	}
	return &res
}
