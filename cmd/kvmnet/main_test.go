package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cliDirs are the state and net dirs of one test, under t.TempDir().
type cliDirs struct {
	root, state, net string
}

func newCLIDirs(t *testing.T) cliDirs {
	t.Helper()
	root := t.TempDir()
	d := cliDirs{root: root, state: filepath.Join(root, "state"), net: filepath.Join(root, "net.d")}
	if err := os.Mkdir(d.net, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// runCLI runs the command with the test's dirs and a CNI path that holds
// no plugin, so no test here reaches the kernel or an IPAM plugin.
func runCLI(t *testing.T, d cliDirs, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	full := append([]string{"--state-dir", d.state, "--net-dir", d.net, "--cni-path", filepath.Join(d.root, "no-plugins")}, args...)
	var out, errOut bytes.Buffer
	code = run(context.Background(), full, &out, &errOut)
	return code, out.String(), errOut.String()
}

// stateFiles lists the files in the state dir; a missing dir has none.
func stateFiles(t *testing.T, d cliDirs) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(d.state, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

// hasErrorLine reports whether stderr has a line starting with "kvmnet: ".
func hasErrorLine(stderr string) bool {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "kvmnet: ") {
			return true
		}
	}
	return false
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		fragment string
	}{
		{"no command", nil, 2, "missing command"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown global flag", []string{"--bogus", "list"}, 2, "bogus"},
		{"unknown up flag", []string{"up", "vm-1", "--bogus"}, 2, "bogus"},
		{"flag without value", []string{"up", "vm-1", "--net"}, 2, "net"},
		{"bad queue count", []string{"up", "vm-1", "--queues", "x"}, 2, "queues"},
		{"json and format", []string{"up", "vm-1", "--json", "--format", "qemu"}, 2, "--json and --format qemu conflict"},
		{"unknown format", []string{"up", "vm-1", "--format", "vmware"}, 2, `unknown format "vmware"`},
		{"up without id", []string{"up"}, 2, "up takes one VM id, got 0"},
		{"up with two ids", []string{"up", "a", "b"}, 2, "up takes one VM id, got 2"},
		{"negative tap owner", []string{"up", "vm-1", "--tap-owner", "-5"}, 2, "--tap-owner"},
		{"invalid dns", []string{"up", "vm-1", "--dns", "dns.example"}, 2, `invalid --dns "dns.example"`},
		{"down without id", []string{"down"}, 2, "down takes one VM id"},
		{"list with argument", []string{"list", "x"}, 2, "list takes no arguments"},
		{"up with path id", []string{"up", "../../etc/x"}, 1, "invalid VM id"},
		{"up with empty id", []string{"up", ""}, 1, "invalid VM id"},
		{"up with long id", []string{"up", strings.Repeat("v", 300)}, 1, "invalid VM id"},
		{"up with unknown network", []string{"up", "vm-1", "--net", "nosuch"}, 1, `unknown network "nosuch"`},
		{"up with bad net list", []string{"up", "vm-1", "--net", "none,default"}, 1, `"none" cannot be combined`},
		{"down with path id", []string{"down", "../x"}, 1, "invalid VM id"},
		{"show unknown vm", []string{"show", "vm-9"}, 1, "vm-9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newCLIDirs(t)
			code, _, stderr := runCLI(t, d, tc.args...)
			if code != tc.code {
				t.Errorf("kvmnet %q exit status %d, want %d; stderr:\n%s", tc.args, code, tc.code, stderr)
			}
			if !strings.Contains(stderr, tc.fragment) {
				t.Errorf("kvmnet %q stderr %q, want it to contain %q", tc.args, stderr, tc.fragment)
			}
			if !hasErrorLine(stderr) {
				t.Errorf("kvmnet %q stderr %q, want an error line starting with \"kvmnet: \"", tc.args, stderr)
			}
			if tc.code == 2 && !strings.Contains(stderr, "kvmnet help") {
				t.Errorf("kvmnet %q stderr %q, want a pointer to kvmnet help", tc.args, stderr)
			}
			if files := stateFiles(t, d); len(files) != 0 {
				t.Errorf("kvmnet %q left files in the state dir: %v", tc.args, files)
			}
			if _, err := os.Stat(filepath.Join(d.root, "etc")); err == nil {
				t.Errorf("kvmnet %q created a directory outside the state dir", tc.args)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		d := newCLIDirs(t)
		code, stdout, stderr := runCLI(t, d, args...)
		if code != 0 || !strings.Contains(stdout, "Usage:") || stderr != "" {
			t.Errorf("kvmnet %q: exit status %d, stdout %q, stderr %q; want 0 and usage on stdout", args, code, stdout, stderr)
		}
	}
}

func TestNetworksCommand(t *testing.T) {
	d := newCLIDirs(t)
	conf := `{"cniVersion":"1.0.0","name":"lan","type":"bridge","ipam":{"type":"host-local","subnet":"10.9.0.0/24"}}`
	if err := os.WriteFile(filepath.Join(d.net, "10-lan.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, d, "networks", "--json")
	if code != 0 {
		t.Fatalf("networks --json: exit status %d, stderr %s", code, stderr)
	}
	var rows []struct{ Name, Type, Source string }
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
		t.Fatalf("networks --json output %q: %v", stdout, err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name+"/"+r.Type)
	}
	if got, want := strings.Join(names, " "), "lan/bridge default/ptp default-restricted/ptp"; got != want {
		t.Errorf("networks: %q, want %q", got, want)
	}
}

func TestInvalidConfigFile(t *testing.T) {
	for name, text := range map[string]string{"null": "null", "truncated": `{"name":`, "wrong type": `{"name":"n","type":"ptp","mtu":"9000","ipam":{"type":"host-local"}}`} {
		t.Run(name, func(t *testing.T) {
			d := newCLIDirs(t)
			if err := os.WriteFile(filepath.Join(d.net, "10-bad.conf"), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"networks"}, {"up", "vm-1"}} {
				code, _, stderr := runCLI(t, d, args...)
				if code != 1 || !strings.Contains(stderr, "10-bad.conf") {
					t.Errorf("kvmnet %q with config %s: exit status %d, stderr %q; want 1 and the file named", args, text, code, stderr)
				}
			}
			if files := stateFiles(t, d); len(files) != 0 {
				t.Errorf("files left in the state dir: %v", files)
			}
		})
	}
}

func TestListEmpty(t *testing.T) {
	d := newCLIDirs(t)
	code, stdout, stderr := runCLI(t, d, "list", "--json")
	if code != 0 || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("list --json on an empty state dir: exit status %d, stdout %q, stderr %q; want 0 and []", code, stdout, stderr)
	}
}

func TestDownUnknownVM(t *testing.T) {
	d := newCLIDirs(t)
	if code, _, stderr := runCLI(t, d, "down", "never-was"); code != 0 {
		t.Errorf("down of an unknown id: exit status %d, stderr %q; want 0", code, stderr)
	}
	if files := stateFiles(t, d); len(files) != 0 {
		t.Errorf("down of an unknown id left files: %v", files)
	}
}
