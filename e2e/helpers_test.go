//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/internal/guesttest"
)

// pingWait bounds the first ping to a freshly booted guest or host address.
// The first packets can be lost while neighbour discovery runs.
const pingWait = 10 * time.Second

// env is one test's world: the kvmnet binary, a private "host" namespace
// where kvmnet and QEMU run, and temporary state, network config and
// macvtap device node directories.
type env struct {
	t        *testing.T
	bin      string
	host     *guesttest.Netns
	dir      string
	stateDir string
	netDir   string
	devDir   string
}

// newEnv builds kvmnet and creates the host namespace and directories.
func newEnv(t *testing.T) *env {
	t.Helper()
	guesttest.RequireGuests(t)
	e := &env{t: t, dir: t.TempDir()}
	e.stateDir = filepath.Join(e.dir, "state")
	e.netDir = filepath.Join(e.dir, "net.d")
	e.devDir = filepath.Join(e.dir, "dev")
	for _, d := range []string{e.stateDir, e.netDir, e.devDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatalf("create %s: %v", d, err)
		}
	}
	e.bin = buildKvmnet(t, e.dir)
	e.host = guesttest.NewNetns(t, "host")
	return e
}

// buildKvmnet compiles cmd/kvmnet into dir and returns the binary's path.
func buildKvmnet(t *testing.T, dir string) string {
	t.Helper()
	root, err := guesttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "kvmnet")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kvmnet")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kvmnet: %v\n%s", err, out)
	}
	return bin
}

// kvmnet runs the CLI in the host namespace with the test's directories and
// returns its standard output. The error carries standard error.
func (e *env) kvmnet(args ...string) (string, error) {
	full := append([]string{"netns", "exec", e.host.Name, e.bin,
		"--state-dir", e.stateDir, "--net-dir", e.netDir, "--dev-dir", e.devDir}, args...)
	cmd := exec.Command("ip", full...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kvmnet %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// mustKvmnet is kvmnet that fails the test on error.
func (e *env) mustKvmnet(args ...string) string {
	e.t.Helper()
	out, err := e.kvmnet(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// writeNetConf writes a CNI network config file into the test's net dir.
func (e *env) writeNetConf(name, content string) {
	e.t.Helper()
	path := filepath.Join(e.netDir, name+".conf")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		e.t.Fatalf("write network config %s: %v", path, err)
	}
}

// vmNet is what `kvmnet up` printed for one VM.
type vmNet struct {
	id string
	// qemuArgs is the `up --format qemu` output, split into words.
	qemuArgs []string
	// kernelArgs is the `show --format kernel-args` output.
	kernelArgs string
	result     kvmnet.Result
}

// up brings up a VM with `kvmnet up VMID --net ... --format qemu`, reads the
// kernel arguments and the JSON result with `kvmnet show`, and registers
// `kvmnet down` for cleanup. down is idempotent, so tests may also call it.
func (e *env) up(id string, upArgs ...string) *vmNet {
	e.t.Helper()
	vm, err := e.tryUp(id, upArgs...)
	if err != nil {
		e.t.Fatal(err)
	}
	return vm
}

// tryUp is up that returns the error of `kvmnet up` instead of failing the
// test. Errors of the later `kvmnet show` calls still fail the test.
func (e *env) tryUp(id string, upArgs ...string) (*vmNet, error) {
	e.t.Helper()
	qemu, err := e.kvmnet(append([]string{"up", id, "--format", "qemu"}, upArgs...)...)
	if err != nil {
		return nil, err
	}
	e.t.Cleanup(func() {
		if _, err := e.kvmnet("down", id); err != nil {
			e.t.Errorf("cleanup: %v", err)
		}
	})
	vm := &vmNet{id: id, qemuArgs: guesttest.SplitArgs(qemu)}
	vm.kernelArgs = strings.TrimSpace(e.mustKvmnet("show", id, "--format", "kernel-args"))
	if err := json.Unmarshal([]byte(e.mustKvmnet("show", id, "--json")), &vm.result); err != nil {
		e.t.Fatalf("parse kvmnet show %s --json: %v", id, err)
	}
	if len(vm.result.Interfaces) == 0 {
		e.t.Fatalf("kvmnet up %s: result has no interfaces", id)
	}
	e.t.Logf("vm %s: qemu %s; kernel %s", id, strings.Join(vm.qemuArgs, " "), vm.kernelArgs)
	return vm, nil
}

// boot starts a guest in the host namespace with exactly the arguments
// kvmnet printed. Macvtap devices (Interface.DevicePath) are opened and
// passed at the descriptors the fd= and fds= options name.
func (e *env) boot(vm *vmNet) *guesttest.Guest {
	e.t.Helper()
	return guesttest.Boot(e.t, guesttest.Options{
		Name:       vm.id,
		Netns:      e.host.Name,
		NetArgs:    vm.qemuArgs,
		KernelArgs: vm.kernelArgs,
		Files:      e.openTaps(vm),
	})
}

var fdOption = regexp.MustCompile(`(?:^|,)fds?=([0-9:]+)`)

// openTaps opens each macvtap device of vm once per descriptor that the
// QEMU arguments name, in descriptor order from 3 up, and closes them in
// cleanup. It returns nil when no argument names a descriptor.
func (e *env) openTaps(vm *vmNet) []*os.File {
	e.t.Helper()
	var paths, hostDevices []string
	for _, ifc := range vm.result.Interfaces {
		if ifc.DevicePath != "" {
			queues := max(ifc.Queues, 1)
			for range queues {
				paths = append(paths, ifc.DevicePath)
				hostDevices = append(hostDevices, ifc.HostDevice)
			}
		}
	}
	var fds []string
	for _, a := range vm.qemuArgs {
		for _, m := range fdOption.FindAllStringSubmatch(a, -1) {
			fds = append(fds, strings.Split(m[1], ":")...)
		}
	}
	if len(fds) != len(paths) {
		e.t.Fatalf("qemu arguments name %d descriptors (%v), but the result lists %d macvtap queues (%v)", len(fds), fds, len(paths), paths)
	}
	var files []*os.File
	for i, p := range paths {
		if want := fmt.Sprint(3 + i); fds[i] != want {
			e.t.Fatalf("qemu argument descriptor %s for %s, want %s (descriptors are numbered from 3 in interface order)", fds[i], p, want)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			e.t.Fatalf("open macvtap %s: %v\n%s", p, err, e.describeMacvtapNode(p, hostDevices[i]))
		}
		e.t.Cleanup(func() { f.Close() })
		files = append(files, f)
	}
	return files
}

// describeMacvtapNode returns the device number of the node at path and
// the one the kernel gives the macvtap link in sysfs, which must match.
func (e *env) describeMacvtapNode(path, link string) string {
	var node string
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		node = err.Error()
	} else {
		node = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	sysfs, err := e.host.Try("sh", "-c", "cat /sys/class/net/"+link+"/macvtap/tap*/dev")
	if err != nil {
		sysfs = err.Error()
	}
	return fmt.Sprintf("node %s has device number %s; sysfs of link %s gives %s", path, node, link, strings.TrimSpace(sysfs))
}

// guestAddr returns the first IPv4 address of interface i of vm.
func (vm *vmNet) guestAddr(t *testing.T, i int) string {
	t.Helper()
	for _, p := range vm.result.Interfaces[i].Addresses {
		if p.Addr().Is4() {
			return p.Addr().String()
		}
	}
	t.Fatalf("vm %s interface %d has no IPv4 address: %v", vm.id, i, vm.result.Interfaces[i].Addresses)
	return ""
}

// gateway returns the first IPv4 gateway of interface i of vm.
func (vm *vmNet) gateway(t *testing.T, i int) string {
	t.Helper()
	for _, a := range vm.result.Interfaces[i].Gateways {
		if a.Is4() {
			return a.String()
		}
	}
	t.Fatalf("vm %s interface %d has no IPv4 gateway: %v", vm.id, i, vm.result.Interfaces[i].Gateways)
	return ""
}

// addVeth links namespace a (device aDev, address aCIDR) with namespace b
// (device bDev, address bCIDR) by a veth pair, both ends up.
func addVeth(t *testing.T, a *guesttest.Netns, aDev, aCIDR string, b *guesttest.Netns, bDev, bCIDR string) {
	t.Helper()
	a.IP("link", "add", aDev, "type", "veth", "peer", "name", bDev, "netns", b.Name)
	for _, side := range []struct {
		ns   *guesttest.Netns
		dev  string
		cidr string
	}{{a, aDev, aCIDR}, {b, bDev, bCIDR}} {
		if side.cidr != "" {
			side.ns.IP("addr", "add", side.cidr, "dev", side.dev)
		}
		side.ns.IP("link", "set", side.dev, "up")
	}
}

// startSourceServer runs busybox httpd on port 80 in ns with a CGI script
// at /cgi-bin/source that prints the client's address as "client=ADDR".
func startSourceServer(t *testing.T, ns *guesttest.Netns) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "cgi-bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
client=${REMOTE_ADDR#[}
client=${client%]}
echo "client=${client#::ffff:}"
`
	if err := os.WriteFile(filepath.Join(dir, "cgi-bin", "source"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ns.Start("busybox", "httpd", "-f", "-p", "80", "-h", dir)
}

// requirePing fails the test unless ns reaches addr within pingWait.
func requirePing(t *testing.T, ns *guesttest.Netns, addr string) {
	t.Helper()
	if err := ns.WaitPing(addr, pingWait); err != nil {
		t.Fatalf("ping %s from namespace %s: %v", addr, ns.Name, err)
	}
}

// guestPing runs one ping from the guest and reports whether a reply came
// within 2 s.
func guestPing(g *guesttest.Guest, addr string) (bool, string) {
	out, rc := g.Run("ping -c1 -W2 " + addr)
	return rc == 0, out
}

// guestFetch fetches a URL from inside the guest, bounded to 5 s.
func guestFetch(g *guesttest.Guest, url string) (string, int) {
	return g.Run("timeout 5 wget -q -O- " + url)
}

// snapshot is the network state of a namespace that kvmnet may change.
type snapshot struct {
	links, addrs, routes4, routes6, ruleset string
}

// takeSnapshot reads links, addresses, routes and the nftables ruleset of
// ns.
func takeSnapshot(t *testing.T, ns *guesttest.Netns) snapshot {
	t.Helper()
	return snapshot{
		links:   ns.IP("-o", "link", "show"),
		addrs:   ns.IP("-o", "addr", "show"),
		routes4: ns.IP("-4", "route", "show", "table", "all"),
		routes6: ns.IP("-6", "route", "show", "table", "all"),
		ruleset: ns.Run("nft", "list", "ruleset"),
	}
}
