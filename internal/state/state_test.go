package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &Record{VM: "vm-1", Phase: PhaseCreating, Attachments: []Attachment{{Index: 0, Network: "default", HostDevice: "kvmabcdefghijkl"}}}
	if err := s.Save(rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("vm-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Phase != PhaseCreating || got.Attachments[0].HostDevice != "kvmabcdefghijkl" || got.Version != Version {
		t.Errorf("loaded %+v", got)
	}
	ids, err := s.List()
	if err != nil || len(ids) != 1 || ids[0] != "vm-1" {
		t.Errorf("List = %v, %v", ids, err)
	}
	info, err := os.Stat(s.Dir)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode = %v, want 0700", info.Mode().Perm())
	}
	info, err = os.Stat(filepath.Join(s.Dir, "vm-1.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("record mode = %v, want 0600", info.Mode().Perm())
	}
	if err := s.Delete("vm-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("vm-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete("vm-1"); err != nil {
		t.Errorf("second Delete = %v", err)
	}
}

func TestDecodeRejectsBadRecords(t *testing.T) {
	cases := map[string]struct{ data, fragment string }{
		"truncated":      {`{"version":1,"vm":"vm-1","pha`, "corrupt"},
		"future version": {`{"version":99,"vm":"vm-1"}`, "format version 99"},
		"zero version":   {`{"vm":"vm-1"}`, "invalid format version 0"},
		"other vm":       {`{"version":1,"vm":"vm-2"}`, `belongs to vm "vm-2"`},
		"bad vm id":      {`{"version":1,"vm":"../x"}`, "invalid VM id"},
		"foreign device": {`{"version":1,"vm":"vm-1","attachments":[{"hostDevice":"eth0"}]}`, `foreign device name "eth0"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Decode([]byte(c.data), "x.json", "vm-1")
			if err == nil {
				t.Fatal("Decode = nil error")
			}
			if !strings.Contains(err.Error(), c.fragment) {
				t.Errorf("error %q does not contain %q", err, c.fragment)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"vm":"vm-1","phase":"up","attachments":[{"index":0,"hostDevice":"kvmabcdefghijkl"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := Decode(data, "fuzz.json", "")
		if err == nil && rec.VM == "" {
			t.Fatal("accepted a record without a VM id")
		}
	})
}

func TestOpenKeepsModeOfExistingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatalf("Open = %v", err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o750 {
		t.Errorf("mode of an existing state dir changed to %04o, want 0750", info.Mode().Perm())
	}
}

func TestOpenRejectsSharedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "writable by other users") {
		t.Fatalf("Open of a 1777 dir = %v, want it rejected", err)
	}
	info, _ := os.Stat(dir)
	if info.Mode().Perm() != 0o777 {
		t.Errorf("mode changed to %04o", info.Mode().Perm())
	}
}
