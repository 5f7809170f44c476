package kvmnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/kvmnet/kvmnet/internal/failpoint"
	"github.com/kvmnet/kvmnet/internal/ipam"
	"github.com/kvmnet/kvmnet/internal/link"
	"github.com/kvmnet/kvmnet/internal/state"
	"github.com/kvmnet/kvmnet/internal/vmid"
)

// Down removes every network object of VM id, working only from its state
// record. Objects already gone are fine, and so is an id without a record,
// so Down can run any number of times.
func (m *Manager) Down(ctx context.Context, id string) error {
	if err := vmid.Validate(id); err != nil {
		return err
	}
	lock, err := m.store.LockVM(id)
	if err != nil {
		return err
	}
	defer m.releaseVMLock(lock, id)
	rec, err := m.store.Load(id)
	if errors.Is(err, state.ErrNotFound) {
		// An up killed during its first save leaves only a temporary record.
		m.removeTempRecords(id)
		m.log.Info("no state record, nothing to remove", "vm", id)
		return nil
	}
	if err != nil {
		return err
	}
	if err := m.teardown(ctx, rec); err != nil {
		return fmt.Errorf("down vm %s: %w", id, err)
	}
	m.log.Info("vm down", "vm", id)
	return nil
}

// teardown removes what rec lists, in reverse order of creation, and
// deletes the record when everything is gone. On failure the record stays
// in the removing phase for the next down or gc.
func (m *Manager) teardown(ctx context.Context, rec *state.Record) error {
	rec.Phase = state.PhaseRemoving
	if err := m.store.Save(rec); err != nil {
		return err
	}
	if err := m.step(failpoint.DownRemovingSaved, -1, "vm", rec.VM); err != nil {
		return err
	}
	var errs []error

	// Firewall entries first, so no traffic is forwarded to a vanishing device.
	if rec.FirewallPlanned {
		if err := m.removeFirewall(rec); err != nil {
			errs = append(errs, fmt.Errorf("firewall: %w", err))
		}
	}
	if err := m.step(failpoint.DownFirewallRemoved, -1, "vm", rec.VM); err != nil {
		return err
	}

	h, err := link.New()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer h.Close()
	alias := link.VMAlias(rec.VM)
	for i := len(rec.Attachments) - 1; i >= 0; i-- {
		a := &rec.Attachments[i]
		err := h.DeleteOwned(a.HostDevice, alias)
		switch {
		case errors.Is(err, link.ErrForeign):
			// Up never creates a link over an existing one, so a link with
			// the planned name and another owner never belonged to this VM.
			// The undo of an up that met such a name collision ends here.
			m.log.Warn("link with the planned name is not owned by this vm, left in place", "vm", rec.VM, "dev", a.HostDevice, "err", err)
		case err != nil:
			errs = append(errs, err)
		}
		if a.Type == "macvlan" {
			if err := m.removeDevNode(rec.VM, a.DevicePath, a.DeviceNumber); err != nil {
				errs = append(errs, err)
			}
		}
		if err := m.step(failpoint.DownLinkRemoved, i, "vm", rec.VM); err != nil {
			return err
		}
		if a.IPAMStarted {
			// CNI args choose the address on ADD only; a DEL with them fails
			// for good when one is malformed, so DEL goes without.
			req := m.ipamRequest(rec, a)
			req.Args = nil
			if err := ipam.Del(ctx, req); err != nil && len(a.IPAMResult) == 0 && !errors.Is(err, ipam.ErrTimeout) {
				// ADD never returned a result, so by the CNI contract the
				// plugin holds nothing. A DEL that fails too, for example
				// because the plugin rejects the config's cniVersion, must
				// not keep the record forever.
				m.log.Warn("IPAM DEL after a failed ADD failed too; assuming nothing is reserved", "vm", rec.VM, "net", a.Network, "err", err)
				a.IPAMStarted = false
			} else if err != nil {
				errs = append(errs, fmt.Errorf("release addresses of network %q: %w", a.Network, err))
			} else {
				a.IPAMStarted = false
			}
			if err := m.step(failpoint.DownIPAMReleased, i, "vm", rec.VM); err != nil {
				return err
			}
		}
		if a.Bridge != "" {
			err := m.withShared(func() error { return m.releaseBridge(h, rec.VM, a.Bridge) })
			if err != nil {
				errs = append(errs, err)
			}
			if err := m.step(failpoint.DownBridgeRemoved, i, "vm", rec.VM); err != nil {
				return err
			}
		}
	}
	if len(errs) == 0 {
		if err := m.withShared(func() error { return m.releaseAddresses(rec) }); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		if err := m.store.Save(rec); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	if err := m.store.Delete(rec.VM); err != nil {
		return err
	}
	m.removeTempRecords(rec.VM)
	if err := m.withShared(m.restoreForwarding); err != nil {
		m.log.Warn("could not restore the forwarding settings", "vm", rec.VM, "err", err)
	}
	return m.step(failpoint.DownRecordDeleted, -1, "vm", rec.VM)
}

// removeTempRecords removes the temporary files that a process killed
// while saving the record of VM id left in the state dir. The caller holds
// the VM's lock, so no save of that VM is running. Failures are logged
// only, because gc removes such files too.
func (m *Manager) removeTempRecords(id string) {
	entries, err := os.ReadDir(m.opts.StateDir)
	if err != nil {
		m.log.Warn("could not list the state dir for temporary records", "vm", id, "err", err)
		return
	}
	for _, e := range entries {
		if tempRecordOwner(e.Name()) != id {
			continue
		}
		path := filepath.Join(m.opts.StateDir, e.Name())
		if err := removeIfExists(path); err != nil {
			m.log.Warn("could not remove a temporary record", "vm", id, "path", path, "err", err)
		}
	}
}

// releaseVMLock releases the lock of VM id, and removes its lock file when
// the VM has no usable record, so that the state dir holds nothing more
// for it than before. Removing a held lock file is safe: waiting lockers
// notice and lock a new file.
func (m *Manager) releaseVMLock(lock *state.Lock, id string) {
	if _, err := m.store.Load(id); err != nil {
		if err := lock.Remove(); err != nil {
			m.log.Warn("could not remove lock file", "vm", id, "err", err)
		}
		return
	}
	lock.Unlock()
}

func parseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("invalid MAC %q: %w", s, err)
	}
	return mac, nil
}
