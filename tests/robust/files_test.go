package robust_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateFileModes(t *testing.T) {
	e := newEnv(t, "modes")
	e.mustRun("up", "vm-1")
	defer e.mustRun("down", "vm-1")
	want := map[string]os.FileMode{
		e.stateDir:                             0o700 | os.ModeDir,
		filepath.Join(e.stateDir, "vm-1.json"): 0o600,
		filepath.Join(e.stateDir, "vm-1.lock"): 0o600,
	}
	for path, mode := range want {
		info, err := os.Stat(path)
		if err != nil {
			t.Errorf("stat %s: %v", path, err)
			continue
		}
		if got := info.Mode() & (os.ModePerm | os.ModeDir); got != mode {
			t.Errorf("mode of %s = %v, want %v", path, got, mode)
		}
	}
}

// TestStateDirWritableByOthers checks that kvmnet never works in an
// existing state dir that other users can write to, where they could plant
// records and lock files: it either rejects the dir, naming it, or makes it
// private first.
func TestStateDirWritableByOthers(t *testing.T) {
	e := newEnv(t, "loose")
	if err := os.MkdirAll(e.stateDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.stateDir, 0o777); err != nil {
		t.Fatal(err)
	}
	r := e.run("up", "vm-1")
	info, err := os.Stat(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case r.code == 0:
		defer e.mustRun("down", "vm-1")
		if got := info.Mode().Perm(); got&0o022 != 0 {
			t.Errorf("up used a state dir of mode %v, writable by other users", got)
		}
	case !strings.Contains(r.stderr, e.stateDir):
		t.Errorf("error does not name the state dir %s: %s", e.stateDir, r)
	}
}

// TestPluginOnlyFromCNIPath puts a plugin named host-local on $PATH that
// leaves a marker when run, and checks kvmnet never runs it.
func TestPluginOnlyFromCNIPath(t *testing.T) {
	e := newEnv(t, "path")
	decoyDir := t.TempDir()
	marker := filepath.Join(t.TempDir(), "decoy-ran")
	script := "#!/bin/sh\ntouch " + marker + "\nexit 1\n"
	if err := os.WriteFile(filepath.Join(decoyDir, "host-local"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	pathEnv := "PATH=" + decoyDir + ":" + os.Getenv("PATH")

	r := e.runEnv([]string{pathEnv}, "up", "vm-1")
	if r.code != 0 {
		t.Fatalf("up with the decoy on PATH: %s", r)
	}
	e.mustRun("down", "vm-1")
	if _, err := os.Stat(marker); err == nil {
		t.Error("the host-local on PATH ran, but only the CNI path may be searched")
	}

	// With a CNI path that lacks the plugin, up fails even though PATH has one.
	e.cniPath = []string{t.TempDir()}
	r = e.runEnv([]string{pathEnv}, "up", "vm-2")
	if r.code != 1 || !strings.Contains(r.stderr, `"host-local" not found in CNI path`) {
		t.Errorf("up with an empty CNI path: want exit 1 naming the missing plugin: %s", r)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the host-local on PATH ran, but only the CNI path may be searched")
	}
}
