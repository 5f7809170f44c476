package kvmnet

// Files that gc reads and removes: state records, VM lock files and
// host-local's reservation files.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kvmnet/kvmnet/internal/netconf"
	"github.com/kvmnet/kvmnet/internal/state"
	"github.com/kvmnet/kvmnet/internal/vmid"
)

func (m *Manager) recordPath(id string) string { return filepath.Join(m.opts.StateDir, id+".json") }

func (m *Manager) lockPath(id string) string { return filepath.Join(m.opts.StateDir, id+".lock") }

// recordIsNewer reports whether the record of id carries a format version
// newer than this build reads. Such a record is never touched.
func (m *Manager) recordIsNewer(id string) bool {
	data, err := os.ReadFile(m.recordPath(id))
	if err != nil {
		return false
	}
	var probe struct {
		Version int `json:"version"`
	}
	return json.Unmarshal(data, &probe) == nil && probe.Version > state.Version
}

// reservationNetwork returns the config that owns reservations of network
// in the built-in data dir: a config from the net dirs whose ipam dataDir is
// that dir, else the built-in of that name, else nil.
func (g *gcRun) reservationNetwork(network string) *netconf.Network {
	dataDir := g.m.ipamDataDir()
	if !g.filesLoaded {
		files, _, err := netconf.Load(g.m.opts.NetDirs, dataDir)
		if err != nil {
			g.m.log.Warn("gc: net dirs unreadable, using the built-in configs only", "err", err)
		}
		g.files, g.filesLoaded = files, true
	}
	for _, n := range g.files {
		var conf struct {
			IPAM struct {
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
		}
		if n.Name == network && json.Unmarshal(n.Bytes, &conf) == nil && filepath.Clean(conf.IPAM.DataDir) == dataDir {
			return n
		}
	}
	for _, n := range netconf.Builtins(dataDir) {
		if n.Name == network {
			return n
		}
	}
	return nil
}

// maxReservationSize bounds the read of a reservation file; host-local
// writes a container id and an interface name.
const maxReservationSize = 4 << 10

// scanReservations lists the reservations under dataDir by VM id. A
// reservation is a file named by its IP in dataDir/NETWORK whose first line
// is the container id. host-local's lock and last_reserved_ip files are
// skipped, and so are files of container ids that are not VM ids.
func scanReservations(dataDir string) (map[string][]reservation, error) {
	out := map[string][]reservation{}
	networks, err := os.ReadDir(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gc: list IPAM data dir %s: %w", dataDir, err)
	}
	for _, network := range networks {
		if !network.IsDir() {
			continue
		}
		dir := filepath.Join(dataDir, network.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("gc: list IPAM data dir %s: %w", dir, err)
		}
		for _, f := range files {
			ip, err := netip.ParseAddr(f.Name())
			if err != nil || !f.Type().IsRegular() {
				continue
			}
			path := filepath.Join(dir, f.Name())
			data, err := readHead(path, maxReservationSize)
			if err != nil {
				continue // released since the listing
			}
			id, ifName, err := parseReservation(data)
			if err != nil {
				continue
			}
			out[id] = append(out[id], reservation{network: network.Name(), ip: ip, path: path, ifName: ifName})
		}
	}
	return out, nil
}

// parseReservation parses a host-local reservation file: the container id,
// then "\r\n" and the interface name (host-local before v0.8 wrote the id
// alone). It fails unless the id is a valid VM id. An interface name that
// is not a valid link name is returned as "".
func parseReservation(data []byte) (id, ifName string, err error) {
	first, rest, _ := bytes.Cut(data, []byte("\n"))
	id = strings.TrimSpace(string(first))
	if err := vmid.Validate(id); err != nil {
		return "", "", fmt.Errorf("reservation of a container that is not a kvmnet vm: %w", err)
	}
	second, _, _ := bytes.Cut(rest, []byte("\n"))
	ifName = strings.TrimSpace(string(second))
	if !validIfName(ifName) {
		ifName = ""
	}
	return id, ifName, nil
}

// validIfName checks a link name as the kernel does: 1 to 15 bytes, no
// '/', ':' or whitespace, and not "." or "..".
func validIfName(name string) bool {
	if name == "" || len(name) > vmid.MaxLinkName || name == "." || name == ".." {
		return false
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' {
			return false
		}
	}
	return true
}

func readHead(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// removeReservationFile removes a reservation file under host-local's lock
// of its network dir, so that it never disappears during a host-local run.
// host-local creates the lock file before its first reservation, so a dir
// without one has no host-local user to exclude.
func removeReservationFile(path string) error {
	lockPath := filepath.Join(filepath.Dir(path), "lock")
	f, err := os.OpenFile(lockPath, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return removeIfExists(path)
	}
	if err != nil {
		return fmt.Errorf("open host-local lock %s: %w", lockPath, err)
	}
	defer f.Close()
	if err := flockRetry(f, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lockPath, err)
	}
	return removeIfExists(path)
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

func flockRetry(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// vmLock is a VM lock taken without waiting. It uses the lock file of
// state.Store.LockVM, so it excludes up and down of the same VM id.
type vmLock struct {
	f    *os.File
	path string
	// existed reports whether the lock file was there before tryLockVM.
	existed bool
}

// tryLockVM takes the lock of VM id if it is free. It returns ok false
// when another process holds it.
func (m *Manager) tryLockVM(id string) (lock *vmLock, ok bool, err error) {
	path := m.lockPath(id)
	// A holder may remove the file while releasing; then the lock on the
	// old file protects nothing and the loop opens the new one.
	for range 100 {
		_, statErr := os.Stat(path)
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("gc: open lock %s: %w", path, err)
		}
		err = flockRetry(f, syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, false, nil
		}
		if err != nil {
			f.Close()
			return nil, false, fmt.Errorf("gc: lock %s: %w", path, err)
		}
		var held, current syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &current) == nil && held.Ino == current.Ino {
			return &vmLock{f: f, path: path, existed: statErr == nil}, true, nil
		}
		f.Close()
	}
	return nil, false, fmt.Errorf("gc: lock %s: the lock file keeps being replaced", path)
}

// release releases the lock, removing the lock file first when remove is
// set, as state.Lock.Remove does.
func (l *vmLock) release(remove bool) error {
	var err error
	if remove {
		err = removeIfExists(l.path)
	}
	return errors.Join(err, l.f.Close())
}

// tempRecordOwner returns the VM id of a temporary record file name, or "".
// state.Store.Save writes ".ID.RANDOM.tmp", where RANDOM is the digits of
// os.CreateTemp, and renames it; a process killed meanwhile leaves it. The
// digits keep ".vm.x.1.tmp" of VM "vm.x" apart from the files of VM "vm".
func tempRecordOwner(name string) string {
	rest, ok := strings.CutPrefix(name, ".")
	if !ok {
		return ""
	}
	rest, ok = strings.CutSuffix(rest, ".tmp")
	if !ok {
		return ""
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 || i == len(rest)-1 || strings.Trim(rest[i+1:], "0123456789") != "" {
		return ""
	}
	if vmid.Validate(rest[:i]) != nil {
		return ""
	}
	return rest[:i]
}
