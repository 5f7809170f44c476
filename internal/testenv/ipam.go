package testenv

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Reservations returns the host-local reservations in dir, a host-local
// data dir, as "<network>/<IP>" mapped to the container id (the VM id for
// kvmnet). host-local keeps one file per reserved IP under
// <dataDir>/<network>/, whose first line is the container id. A missing
// dir has no reservations.
func Reservations(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	networks, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out
	}
	if err != nil {
		t.Fatalf("read host-local data dir: %v", err)
	}
	for _, network := range networks {
		if !network.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, network.Name()))
		if err != nil {
			t.Fatalf("read host-local data dir: %v", err)
		}
		for _, f := range files {
			// Other files are the lock and last_reserved_ip.<range index>.
			if _, err := netip.ParseAddr(f.Name()); err != nil {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, network.Name(), f.Name()))
			if err != nil {
				t.Fatalf("read reservation: %v", err)
			}
			id, _, _ := strings.Cut(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
			out[network.Name()+"/"+f.Name()] = id
		}
	}
	return out
}
