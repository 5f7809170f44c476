package kvmnet

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kvmnet/kvmnet/internal/vmid"
)

func TestParseReservation(t *testing.T) {
	cases := []struct {
		name, data, id, ifName string
		ok                     bool
	}{
		{"host-local v1", "vm-1\r\neth0", "vm-1", "eth0", true},
		{"unix line end", "vm-1\neth1\n", "vm-1", "eth1", true},
		{"id only, before host-local v0.8", "vm-1", "vm-1", "", true},
		{"bad interface name", "vm-1\r\neth/0", "vm-1", "", true},
		{"interface name too long", "vm-1\r\neth0123456789abcdef", "vm-1", "", true},
		{"container id of another runtime", "0123abcd/../x\r\neth0", "", "", false},
		{"empty", "", "", "", false},
		{"blank first line", "\r\neth0", "", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, ifName, err := parseReservation([]byte(c.data))
			if (err == nil) != c.ok {
				t.Fatalf("parseReservation(%q) error = %v, want ok %v", c.data, err, c.ok)
			}
			if id != c.id || ifName != c.ifName {
				t.Errorf("parseReservation(%q) = %q, %q, want %q, %q", c.data, id, ifName, c.id, c.ifName)
			}
		})
	}
}

func TestScanReservations(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"default/172.16.28.2":         "vm-1\r\neth0",
		"default/fd00::2":             "vm-1\r\neth0",
		"default/172.16.28.3":         "vm-2\r\neth0",
		"default/lock":                "",
		"default/last_reserved_ip.0":  "172.16.28.3",
		"default/172.16.28.9":         "not a vm id!\r\neth0",
		"other/10.0.0.2":              "vm-2\r\neth1",
		"stray-file-in-data-dir":      "x",
		"default/172.16.28.300":       "vm-3\r\neth0",
		"default/not-an-ip":           "vm-3\r\neth0",
		"default/subdir/172.16.28.77": "vm-3\r\neth0",
	}
	for rel, text := range files {
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := scanReservations(dir)
	if err != nil {
		t.Fatal(err)
	}
	summary := map[string][]string{}
	for id, list := range got {
		for _, r := range list {
			summary[id] = append(summary[id], r.network+"/"+r.ip.String()+"/"+r.ifName)
		}
		slices.Sort(summary[id])
	}
	want := map[string][]string{
		"vm-1": {"default/172.16.28.2/eth0", "default/fd00::2/eth0"},
		"vm-2": {"default/172.16.28.3/eth0", "other/10.0.0.2/eth1"},
	}
	if len(summary) != len(want) {
		t.Errorf("scanReservations = %v, want %v", summary, want)
	}
	for id, w := range want {
		if !slices.Equal(summary[id], w) {
			t.Errorf("reservations of %s = %v, want %v", id, summary[id], w)
		}
	}

	if got, err := scanReservations(filepath.Join(dir, "missing")); err != nil || len(got) != 0 {
		t.Errorf("scanReservations of a missing dir = %v, %v; want none", got, err)
	}
}

func TestGCItemString(t *testing.T) {
	cases := map[string]GCItem{
		"vm vm-1: delete link kvmabcdefghijkl: done":              {Kind: GCLink, VM: "vm-1", Object: "kvmabcdefghijkl", Action: "delete", Done: true},
		"vm vm-1: would delete link kvmabcdefghijkl":              {Kind: GCLink, VM: "vm-1", Object: "kvmabcdefghijkl", Action: "delete"},
		"-: delete bridge cni0 failed: device busy":               {Kind: GCBridge, Object: "cni0", Action: "delete", Error: "device busy"},
		"vm vm-2: remove file of reservation lost/10.0.0.2: done": {Kind: GCReservation, VM: "vm-2", Object: "lost/10.0.0.2", Action: "remove file of", Done: true},
	}
	for want, item := range cases {
		if got := item.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

// FuzzParseReservation feeds arbitrary reservation file contents to the
// parser that gc runs on host-local's data dir. The parser must never
// panic. It must accept only a valid VM id and a valid or empty interface
// name, because both reach an IPAM plugin's environment.
func FuzzParseReservation(f *testing.F) {
	f.Add([]byte("vm-1\r\neth0"))
	f.Add([]byte("vm-1"))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte("vm-1\r\neth0\r\nextra"))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, ifName, err := parseReservation(data)
		if err != nil {
			return
		}
		if err := vmid.Validate(id); err != nil {
			t.Errorf("accepted invalid vm id %q: %v", id, err)
		}
		if ifName != "" && !validIfName(ifName) {
			t.Errorf("accepted invalid interface name %q", ifName)
		}
	})
}

func TestTempRecordOwner(t *testing.T) {
	cases := map[string]string{
		".vm-1.123456.tmp": "vm-1",
		".vm.x.42.tmp":     "vm.x",
		".vm-1.tmp":        "",
		".vm-1.12a.tmp":    "",
		".vm-1..tmp":       "",
		"vm-1.123.tmp":     "",
		".shared.lock":     "",
		"..123.tmp":        "",
		"._bad.1.tmp":      "",
	}
	for name, want := range cases {
		if got := tempRecordOwner(name); got != want {
			t.Errorf("tempRecordOwner(%q) = %q, want %q", name, got, want)
		}
	}
}
