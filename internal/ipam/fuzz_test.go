package ipam

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/internal/cniresult"
)

// fakePlugin writes an IPAM plugin script into dir that prints the file
// output on ADD and appends each DEL to the file dels. It needs /bin/sh.
func fakePlugin(t testing.TB, dir string) (output, dels string) {
	t.Helper()
	output = filepath.Join(dir, "output")
	dels = filepath.Join(dir, "dels")
	script := "#!/bin/sh\n" +
		"if [ \"$CNI_COMMAND\" = DEL ]; then echo DEL >> " + dels + "; exit 0; fi\n" +
		"cat " + output + "\n"
	if err := os.WriteFile(filepath.Join(dir, "fuzz-ipam"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return output, dels
}

// FuzzAddPluginOutput runs Add against a plugin that prints arbitrary
// output for a config of arbitrary cniVersion. Add must never panic, must
// return a usable result or an error, and must release (DEL) a result it
// parsed but cannot use.
func FuzzAddPluginOutput(f *testing.F) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		f.Skip("needs /bin/sh for the fake plugin")
	}
	f.Add("1.0.0", `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}]}`)
	f.Add("0.3.1", `{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.1.0.5/24"}]}`)
	f.Add("0.2.0", `{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/24"}}`)
	f.Add("1.0.0", `{"cniVersion":"1.0.0","ips":[]}`)
	f.Add("1.0.0", `not json`)
	dir := f.TempDir()
	output, dels := fakePlugin(f, dir)
	f.Fuzz(func(t *testing.T, version, out string) {
		if err := os.WriteFile(output, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(dels)
		config, err := json.Marshal(map[string]any{"cniVersion": version, "name": "fuzz", "type": "ptp", "ipam": map[string]string{"type": "fuzz-ipam"}})
		if err != nil {
			t.Fatal(err)
		}
		req := Request{Config: config, PluginType: "fuzz-ipam", ContainerID: "vm-1", IfName: "eth0", NetNS: "/proc/self/ns/net", Path: []string{dir}}
		raw, res, err := Add(context.Background(), req)
		_, delErr := os.Stat(dels)
		released := delErr == nil
		if err != nil {
			if strings.Contains(err.Error(), "unusable result") && !released {
				t.Errorf("Add rejected a result without releasing it: %v", err)
			}
			return
		}
		if released {
			t.Errorf("Add released a result it returned")
		}
		if len(res.Addresses) == 0 {
			t.Fatalf("Add returned a result without addresses")
		}
		for _, a := range res.Addresses {
			if !a.Prefix.IsValid() || !a.Gateway.IsValid() {
				t.Errorf("Add returned an invalid address %+v", a)
			}
		}
		again, err := cniresult.Parse(version, raw)
		if err != nil {
			t.Fatalf("raw result returned by Add does not parse again: %v\n%s", err, raw)
		}
		if len(again.Addresses) != len(res.Addresses) {
			t.Errorf("raw result has %d addresses, the parsed one %d", len(again.Addresses), len(res.Addresses))
		}
	})
}

func TestAddRejectsHugeOutput(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh for the fake plugin")
	}
	dir := t.TempDir()
	output, _ := fakePlugin(t, dir)
	huge := strings.Repeat(" ", 2*MaxPluginOutput) + `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"}]}`
	if err := os.WriteFile(output, []byte(huge), 0o600); err != nil {
		t.Fatal(err)
	}
	req := Request{Config: []byte(`{"cniVersion":"1.0.0","name":"n","type":"ptp","ipam":{"type":"fuzz-ipam"}}`), PluginType: "fuzz-ipam", ContainerID: "vm-1", IfName: "eth0", NetNS: "/proc/self/ns/net", Path: []string{dir}}
	_, _, err := Add(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("Add with 2 MiB of plugin output = %v, want an error about the size", err)
	}
}

func TestPluginErrorKeepsCNIError(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh for the fake plugin")
	}
	dir := t.TempDir()
	script := "#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"no IP addresses available\"}'\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "full-ipam"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	req := Request{Config: []byte(`{"cniVersion":"1.0.0","name":"n","type":"ptp","ipam":{"type":"full-ipam"}}`), PluginType: "full-ipam", ContainerID: "vm-1", IfName: "eth0", NetNS: "/proc/self/ns/net", Path: []string{dir}}
	_, _, err := Add(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "no IP addresses available") {
		t.Fatalf("Add = %v, want the plugin's CNI error message", err)
	}
}
