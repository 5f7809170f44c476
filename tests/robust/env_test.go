// Package robust_test proves that kvmnet survives crashes, errors, hostile
// input and concurrency: it kills and fails up and down at every failpoint,
// runs gc, feeds bad input and runs a stress test, each inside network
// namespaces the test creates, and checks that nothing is left behind.
package robust_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/kvmnet/kvmnet/internal/testenv"
)

// failpointBin builds, once per test binary, the kvmnet command with the
// failpoints build tag. Without KVMNET_FAILPOINT it behaves like a release
// build, so every test here uses it.
var failpointBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "kvmnet-robust-bin-")
	if err != nil {
		return "", fmt.Errorf("create build dir: %w", err)
	}
	bin := filepath.Join(dir, "kvmnet")
	cmd := exec.Command("go", "build", "-tags", "failpoints", "-o", bin, "./cmd/kvmnet")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build kvmnet with failpoints: %w\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := failpointBin(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// env is one namespace with a kvmnet state dir, net dir and CNI path.
type env struct {
	t   testing.TB
	ns  *testenv.NS
	bin string
	// stateDir, netDir and cniPath are passed as global options.
	stateDir, netDir string
	cniPath          []string
}

// newEnv creates a namespace and empty kvmnet directories for one test.
func newEnv(t testing.TB, prefix string) *env {
	t.Helper()
	ns := testenv.NewNS(t, prefix)
	bin, err := failpointBin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &env{t: t, ns: ns, bin: bin, stateDir: filepath.Join(dir, "state"), netDir: filepath.Join(dir, "net.d"), cniPath: testenv.CNIPath(t)}
	if err := os.Mkdir(e.netDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// devDir holds the macvtap device nodes. It is inside the state dir, so
// that the residue check covers it.
func (e *env) devDir() string { return filepath.Join(e.stateDir, "dev") }

// ipamDir is the host-local data dir of the built-in networks. The test
// networks keep their reservations there too.
func (e *env) ipamDir() string { return filepath.Join(e.stateDir, "ipam") }

// writeNet writes a network config file into the net dir, with IPAMDIR in
// text replaced by ipamDir.
func (e *env) writeNet(name, text string) {
	e.t.Helper()
	text = strings.ReplaceAll(text, "IPAMDIR", e.ipamDir())
	if err := os.WriteFile(filepath.Join(e.netDir, name), []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// result is what one kvmnet run printed and how it ended.
type result struct {
	stdout, stderr string
	// code is the exit status, or -1 when the process was killed by a signal.
	code int
	// killed is set when SIGKILL ended the process.
	killed bool
	// signal is the signal that ended the process, or 0.
	signal syscall.Signal
}

func (r result) String() string {
	return fmt.Sprintf("exit status %d (killed %v)\nstdout:\n%s\nstderr:\n%s", r.code, r.killed, r.stdout, r.stderr)
}

// command returns the kvmnet command with args inside the namespace, with
// extra environment variables.
func (e *env) command(extraEnv []string, args ...string) *exec.Cmd {
	full := []string{"netns", "exec", e.ns.Name, e.bin, "--state-dir", e.stateDir, "--dev-dir", e.devDir(),
		"--net-dir", e.netDir, "--cni-path", strings.Join(e.cniPath, ":")}
	cmd := exec.Command("ip", append(full, args...)...)
	cmd.Env = append(os.Environ(), extraEnv...)
	return cmd
}

// wait waits for a started command and returns its result.
func wait(cmd *exec.Cmd, stdout, stderr *bytes.Buffer) result {
	err := cmd.Wait()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.signal = ws.Signal()
			r.killed = r.signal == syscall.SIGKILL
		}
	default:
		r.code = -1
		r.stderr += err.Error()
	}
	return r
}

// runEnv runs kvmnet with extra environment variables.
func (e *env) runEnv(extraEnv []string, args ...string) result {
	cmd := e.command(extraEnv, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return result{code: -1, stderr: err.Error()}
	}
	return wait(cmd, &stdout, &stderr)
}

// run runs kvmnet.
func (e *env) run(args ...string) result { return e.runEnv(nil, args...) }

// mustRun runs kvmnet and fails the test unless it exits 0.
func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("kvmnet %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// state is everything kvmnet may leave behind: the namespace's kernel
// state, the files of the state dir and the reservations.
type state struct {
	kernel testenv.Snapshot
	// files are the paths under the state dir, with a trailing / for dirs.
	// Reservation files are in reservations instead.
	files []string
	// reservations maps "<network>/<IP>" to the VM id holding it.
	reservations map[string]string
}

// snapshot records the current state.
func (e *env) snapshot() state {
	e.t.Helper()
	s := state{kernel: e.ns.Snapshot(e.t), reservations: testenv.Reservations(e.t, e.ipamDir())}
	err := filepath.WalkDir(e.stateDir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(e.stateDir, path)
		// The state dir itself and the lock of objects shared between VMs
		// are created on first use and kept, like host-local's lock file.
		if rel == "." || rel == ".shared.lock" {
			return nil
		}
		if key, ok := strings.CutPrefix(filepath.ToSlash(rel), "ipam/"); ok {
			if _, isReservation := s.reservations[key]; isReservation {
				return nil
			}
		}
		if d.IsDir() {
			rel += "/"
		}
		s.files = append(s.files, rel)
		return nil
	})
	if err != nil {
		e.t.Fatalf("list state dir: %v", err)
	}
	slices.Sort(s.files)
	return s
}

// diff returns what differs between a and b, or "".
func diffState(a, b state) string {
	var out strings.Builder
	out.WriteString(testenv.Diff(a.kernel, b.kernel))
	for _, f := range a.files {
		if !slices.Contains(b.files, f) {
			fmt.Fprintf(&out, "-file %s\n", f)
		}
	}
	for _, f := range b.files {
		if !slices.Contains(a.files, f) {
			fmt.Fprintf(&out, "+file %s\n", f)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(a.reservations)) {
		if b.reservations[k] != a.reservations[k] {
			fmt.Fprintf(&out, "-reservation %s %s\n", k, a.reservations[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b.reservations)) {
		if a.reservations[k] != b.reservations[k] {
			fmt.Fprintf(&out, "+reservation %s %s\n", k, b.reservations[k])
		}
	}
	return out.String()
}

// requireBaseline fails the test when the state differs from base.
func (e *env) requireBaseline(base state, when string) {
	e.t.Helper()
	if d := diffState(base, e.snapshot()); d != "" {
		e.t.Fatalf("residue %s (-baseline +now):\n%s", when, d)
	}
}

// bridgeNet is a second network for two-network VMs: a bridge kvmnet
// creates, with the gateway on it and masquerade, its reservations next to
// those of the built-ins. 192.0.2.0/24 is a documentation range; no traffic
// is sent to it.
const bridgeNet = `{"cniVersion":"1.0.0","name":"br","type":"bridge","bridge":"kvmtbr0","isGateway":true,"ipMasq":true,
 "ipam":{"type":"host-local","subnet":"192.0.2.0/24","dataDir":"IPAMDIR"}}`

// macvlanNet is a third network for failpoint walks: a macvtap on the
// veth kvmtm0 that addMacvlanMaster creates. 203.0.113.0/24 is a
// documentation range; no traffic is sent to it.
const macvlanNet = `{"cniVersion":"1.0.0","name":"mv","type":"macvlan","master":"kvmtm0","mode":"bridge",
 "ipam":{"type":"host-local","subnet":"203.0.113.0/24","dataDir":"IPAMDIR"}}`

// addMacvlanMaster creates the veth pair kvmtm0/kvmtm1 in the namespace as
// the master link of macvlanNet.
func (e *env) addMacvlanMaster() {
	e.t.Helper()
	e.ns.Run(e.t, "ip", "link", "add", "kvmtm0", "type", "veth", "peer", "name", "kvmtm1")
	e.ns.Run(e.t, "ip", "link", "set", "kvmtm0", "up")
}

// warmUp brings one VM up and down, so that what the first use creates
// and later ones keep (the nftables table, forwarding sysctls, host-local's
// lock files, kvmnet's shared lock) is part of the baseline that follows.
func (e *env) warmUp(nets string) state {
	e.t.Helper()
	e.mustRun("up", "warm-up", "--net", nets)
	e.mustRun("down", "warm-up")
	return e.snapshot()
}

// recordExists reports whether VM id has a state record.
func (e *env) recordExists(id string) bool {
	_, err := os.Stat(filepath.Join(e.stateDir, id+".json"))
	return err == nil
}
