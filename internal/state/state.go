// Package state keeps one record per VM under a state directory. A record is
// written before kvmnet touches the kernel and updated after each step, so
// that down and gc can finish what a crashed up started. Records are written
// atomically (temp file, fsync, rename) and only under the VM's lock.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kvmnet/kvmnet/internal/vmid"
)

// Version is the record format version this build writes. Records with a
// higher version are rejected, so an old build never half-understands them.
const Version = 1

// MaxRecordSize is the largest record kvmnet reads, in bytes.
const MaxRecordSize = 4 << 20

// Phases of a record.
const (
	// PhaseCreating: up is running or was killed; the record lists what may exist.
	PhaseCreating = "creating"
	// PhaseUp: up finished and the VM's networks are in place.
	PhaseUp = "up"
	// PhaseRemoving: down started; what is left is removed by the next down or gc.
	PhaseRemoving = "removing"
)

// ErrNotFound is returned for a VM without a record.
var ErrNotFound = errors.New("no state record")

// Record is everything down needs about one VM.
type Record struct {
	Version int       `json:"version"`
	VM      string    `json:"vm"`
	Phase   string    `json:"phase"`
	Created time.Time `json:"created"`
	// Attachments are the planned and created attachments, in order.
	Attachments []Attachment `json:"attachments"`
	// CNIPath is the plugin search path of the up that wrote the record;
	// down searches it after its own.
	CNIPath []string `json:"cniPath,omitempty"`
	// Firewall is the firewall receipt of the VM, opaque to this package.
	Firewall json.RawMessage `json:"firewall,omitempty"`
	// FirewallPlanned is set before the firewall batch is sent.
	FirewallPlanned bool `json:"firewallPlanned,omitempty"`
	// Result is the rendered result, set when Phase is PhaseUp.
	Result json.RawMessage `json:"result,omitempty"`
}

// Attachment is one attachment of a VM.
type Attachment struct {
	Index   int    `json:"index"`
	Network string `json:"network"`
	Type    string `json:"type"`
	// Config is the network config exactly as used, also for IPAM DEL.
	Config json.RawMessage `json:"config"`
	// IPAMType is the IPAM plugin that holds the reservation.
	IPAMType string      `json:"ipamType"`
	IfName   string      `json:"ifName"`
	Args     [][2]string `json:"args,omitempty"`
	// HostDevice is the planned tap or macvtap name, owned by this VM.
	HostDevice string `json:"hostDevice"`
	MAC        string `json:"mac"`
	// DevicePath is the macvtap device node kvmnet created, set before mknod.
	DevicePath string `json:"devicePath,omitempty"`
	// DeviceNumber is the macvtap's character device number (major:minor
	// in the kernel's encoding); only a node with it is removed.
	DeviceNumber uint64 `json:"deviceNumber,omitempty"`
	// Bridge is the bridge of a bridge network.
	Bridge string `json:"bridge,omitempty"`
	// IPAMStarted is set before IPAM ADD runs, so that DEL is owed from then on.
	IPAMStarted bool `json:"ipamStarted,omitempty"`
	// IPAMResult is the raw result of IPAM ADD.
	IPAMResult json.RawMessage `json:"ipamResult,omitempty"`
}

// Store is a state directory.
type Store struct {
	Dir string
}

// Open returns the Store of dir, creating it with mode 0700 if needed. An
// existing dir keeps its mode, but one that other users can write to is
// rejected: they could plant records and lock files.
func Open(dir string) (*Store, error) {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create state dir %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("set mode of state dir %s: %w", dir, err)
		}
	case err != nil:
		return nil, fmt.Errorf("open state dir %s: %w", dir, err)
	case !info.IsDir():
		return nil, fmt.Errorf("state dir %s is not a directory", dir)
	case info.Mode().Perm()&0o022 != 0:
		return nil, fmt.Errorf("state dir %s is writable by other users (mode %s); use a private directory such as /var/lib/kvmnet", dir, info.Mode())
	}
	return &Store{Dir: dir}, nil
}

func (s *Store) path(id string) string { return filepath.Join(s.Dir, id+".json") }

// Lock is a held flock on a lock file.
type Lock struct {
	f    *os.File
	path string
}

// Remove deletes the lock file while the lock is held, then releases it.
// Waiting lockers notice and lock a new file.
func (l *Lock) Remove() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return errors.Join(err, l.Unlock())
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func (s *Store) lock(name string) (*Lock, error) {
	path := filepath.Join(s.Dir, name)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open lock %s: %w", path, err)
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
			if !errors.Is(err, syscall.EINTR) {
				break
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The previous holder may have removed the file after we opened it;
		// a lock on a removed file protects nothing, so start again.
		var held, current syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &current) == nil && held.Ino == current.Ino {
			return &Lock{f: f, path: path}, nil
		}
		f.Close()
	}
}

// LockVM takes the lock that serializes up and down of one VM id.
func (s *Store) LockVM(id string) (*Lock, error) {
	if err := vmid.Validate(id); err != nil {
		return nil, err
	}
	return s.lock(id + ".lock")
}

// LockShared takes the lock that serializes changes to objects shared
// between VMs, such as bridges.
func (s *Store) LockShared() (*Lock, error) {
	return s.lock(".shared.lock")
}

// Load reads the record of id, or returns ErrNotFound.
func (s *Store) Load(id string) (*Record, error) {
	if err := vmid.Validate(id); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("vm %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read state record of vm %s: %w", id, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("read state record of vm %s: %w", id, err)
	}
	return Decode(data, s.path(id), id)
}

// Decode parses a record. path and id name it in errors; id may be empty.
func Decode(data []byte, path, id string) (*Record, error) {
	if len(data) > MaxRecordSize {
		return nil, fmt.Errorf("state record %s is larger than %d bytes", path, MaxRecordSize)
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("state record %s is corrupt (%v); remove the VM's devices by hand or run kvmnet gc", path, err)
	}
	if rec.Version > Version {
		return nil, fmt.Errorf("state record %s has format version %d, this kvmnet reads up to %d; use a newer kvmnet", path, rec.Version, Version)
	}
	if rec.Version < 1 {
		return nil, fmt.Errorf("state record %s has invalid format version %d", path, rec.Version)
	}
	if err := vmid.Validate(rec.VM); err != nil {
		return nil, fmt.Errorf("state record %s: %w", path, err)
	}
	if id != "" && rec.VM != id {
		return nil, fmt.Errorf("state record %s belongs to vm %q, not %q", path, rec.VM, id)
	}
	for i, a := range rec.Attachments {
		if a.HostDevice != "" && !vmid.IsLinkName(a.HostDevice) {
			return nil, fmt.Errorf("state record %s: attachment %d has foreign device name %q", path, i, a.HostDevice)
		}
	}
	return &rec, nil
}

// Save writes rec atomically: temp file, fsync, rename, fsync of the dir.
func (s *Store) Save(rec *Record) error {
	rec.Version = Version
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state record of vm %s: %w", rec.VM, err)
	}
	tmp, err := os.CreateTemp(s.Dir, "."+rec.VM+".*.tmp")
	if err != nil {
		return fmt.Errorf("write state record of vm %s: %w", rec.VM, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write state record of vm %s: %w", rec.VM, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync state record of vm %s: %w", rec.VM, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state record of vm %s: %w", rec.VM, err)
	}
	if err := os.Rename(tmp.Name(), s.path(rec.VM)); err != nil {
		return fmt.Errorf("write state record of vm %s: %w", rec.VM, err)
	}
	return syncDir(s.Dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync state dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state dir %s: %w", dir, err)
	}
	return nil
}

// Delete removes the record of id and its lock file. A missing record is fine.
func (s *Store) Delete(id string) error {
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state record of vm %s: %w", id, err)
	}
	return syncDir(s.Dir)
}

// List returns the VM ids that have a record, sorted.
func (s *Store) List() ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list state dir %s: %w", s.Dir, err)
	}
	var ids []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || vmid.Validate(id) != nil {
			continue
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}
