package kernel_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeIPAM is an IPAM plugin script in a CNI directory of its own. It logs
// every call as "<CNI_COMMAND> <CNI_CONTAINERID> <CNI_IFNAME>" and prints
// a fixed output for ADD.
type fakeIPAM struct {
	dir string
	log string
}

// newFakeIPAM installs a plugin called name that prints addOutput for ADD,
// and puts its directory first in the runner's CNI path.
func newFakeIPAM(t *testing.T, e *env, name, addOutput string) *fakeIPAM {
	t.Helper()
	f := &fakeIPAM{dir: t.TempDir()}
	f.log = filepath.Join(f.dir, "calls.log")
	script := "#!/bin/sh\n" +
		"cat >/dev/null\n" +
		"echo \"$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME\" >>'" + f.log + "'\n" +
		"if [ \"$CNI_COMMAND\" = ADD ]; then\n" +
		"cat <<'EOF'\n" + addOutput + "\nEOF\n" +
		"fi\n"
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e.cli.CNIPath = append([]string{f.dir}, e.cli.CNIPath...)
	return f
}

// calls returns the logged calls, one per line.
func (f *fakeIPAM) calls(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(f.log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// count returns how many logged calls equal call.
func (f *fakeIPAM) count(t *testing.T, call string) int {
	t.Helper()
	n := 0
	for _, c := range f.calls(t) {
		if c == call {
			n++
		}
	}
	return n
}
