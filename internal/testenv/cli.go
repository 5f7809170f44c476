package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// ReferencePlugins are the CNI plugins that CNIPath provides in version
// PluginsVersion. Debian's containernetworking-plugins (v1.1.1) support CNI
// spec versions up to 1.0.0 only, so tests of 1.1.0 configs need these.
var ReferencePlugins = []string{"host-local", "static"}

// PluginsVersion is the version of github.com/containernetworking/plugins
// that CNIPath installs.
const PluginsVersion = "v1.10.0"

// builds caches, per test binary, the plugins and the kvmnet binary that
// tests share. A package variable is the only place a cache that outlives
// one test can live.
var builds struct {
	pluginsMu sync.Mutex
	kvmnet    func() (string, error)
	dir       string
}

func init() {
	builds.kvmnet = sync.OnceValues(buildKvmnet)
}

// Main runs the tests of m and then removes the kvmnet binary that Kvmnet
// built. Packages that use Kvmnet call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if builds.dir != "" {
		if err := os.RemoveAll(builds.dir); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: remove build dir: %v\n", err)
		}
	}
	os.Exit(code)
}

// CNIPath returns the CNI plugin directories for tests:
// <repo>/.cache/cni, then /usr/lib/cni. It installs ReferencePlugins into
// the first with `go install` when they are missing there.
func CNIPath(t testing.TB) []string {
	t.Helper()
	root := RepoRoot(t)
	cacheDir := filepath.Join(root, ".cache", "cni")
	builds.pluginsMu.Lock()
	defer builds.pluginsMu.Unlock()
	for _, name := range ReferencePlugins {
		if _, err := os.Stat(filepath.Join(cacheDir, name)); err == nil {
			continue
		}
		pkg := "github.com/containernetworking/plugins/plugins/ipam/" + name + "@" + PluginsVersion
		cmd := exec.Command("go", "install", pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOBIN="+cacheDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("install CNI plugin %s into %s: %v\n%s", pkg, cacheDir, err, out)
		}
	}
	return []string{cacheDir, "/usr/lib/cni"}
}

func buildKvmnet() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "kvmnet-test-bin-")
	if err != nil {
		return "", fmt.Errorf("create build dir: %w", err)
	}
	builds.dir = dir
	bin := filepath.Join(dir, "kvmnet")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kvmnet")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build kvmnet: %w\n%s", err, out)
	}
	return bin, nil
}

// CLI runs the kvmnet command inside a namespace, with its own state dir,
// net dir and CNI path.
type CLI struct {
	// NS is the namespace the command runs in.
	NS *NS
	// Bin is the kvmnet binary, built once per test binary.
	Bin string
	// StateDir is passed as --state-dir. kvmnet creates it on first use.
	StateDir string
	// NetDir is passed as --net-dir. It exists and is empty at first.
	NetDir string
	// CNIPath is passed as --cni-path. Tests may prepend a directory of
	// fake plugins.
	CNIPath []string
}

// Kvmnet returns a runner for the kvmnet command in ns, with a state dir
// and a net dir under t.TempDir() and the directories of CNIPath. It
// builds the command on first use.
func Kvmnet(t testing.TB, ns *NS) *CLI {
	t.Helper()
	bin, err := builds.kvmnet()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &CLI{
		NS:       ns,
		Bin:      bin,
		StateDir: filepath.Join(dir, "state"),
		NetDir:   filepath.Join(dir, "net.d"),
		CNIPath:  CNIPath(t),
	}
	if err := os.Mkdir(c.NetDir, 0o755); err != nil {
		t.Fatalf("create net dir: %v", err)
	}
	return c
}

// IPAMDir returns the host-local data dir of the built-in networks, which
// kvmnet keeps in its state dir. Tests put the reservations of their own
// networks there too, so that one place shows every reservation.
func (c *CLI) IPAMDir() string { return filepath.Join(c.StateDir, "ipam") }

// Output is what one kvmnet run printed and its exit status.
type Output struct {
	Stdout, Stderr string
	// Code is the exit status, or -1 when the command could not be started.
	Code int
}

// String formats o for test failure messages.
func (o Output) String() string {
	return fmt.Sprintf("exit status %d\nstdout:\n%s\nstderr:\n%s", o.Code, o.Stdout, o.Stderr)
}

// Run runs kvmnet with args inside the namespace, after the global options
// --state-dir, --net-dir and --cni-path. It is safe for concurrent use.
func (c *CLI) Run(args ...string) Output {
	full := []string{"netns", "exec", c.NS.Name, c.Bin,
		"--state-dir", c.StateDir, "--net-dir", c.NetDir, "--cni-path", strings.Join(c.CNIPath, ":")}
	cmd := exec.Command("ip", append(full, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := Output{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		out.Code = exitErr.ExitCode()
	default:
		out.Code = -1
		out.Stderr += err.Error()
	}
	return out
}
