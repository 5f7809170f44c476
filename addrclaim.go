package kvmnet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/kvmnet/kvmnet/internal/cniresult"
	"github.com/kvmnet/kvmnet/internal/state"
)

// Guest addresses in use are claimed in <state-dir>/addrs/<address>, a file
// holding the VM id and the network name, so that two VMs never get one address even when their
// IPAM plugins do not know of each other (static IPAM, overlapping
// host-local ranges of two networks). A claim whose VM has no record is
// stale and is taken over.

func (m *Manager) claimPath(addr netip.Addr) string {
	return filepath.Join(m.opts.StateDir, "addrs", addr.String())
}

// claimAddresses claims the guest addresses of res for network net of vm,
// or names the VM and network that hold one of them. The caller holds the
// shared lock.
func (m *Manager) claimAddresses(vm, net string, res cniresult.Result) error {
	if err := os.MkdirAll(filepath.Join(m.opts.StateDir, "addrs"), 0o700); err != nil {
		return fmt.Errorf("claim guest addresses: %w", err)
	}
	for _, a := range res.Addresses {
		path := m.claimPath(a.Prefix.Addr())
		if owner, ownerNet, ok := readClaim(path); ok {
			switch {
			case owner == vm && ownerNet != net:
				return fmt.Errorf("guest address %s is given to both network %q and network %q; fix the IPAM configuration", a.Prefix.Addr(), ownerNet, net)
			case owner != vm:
				if _, err := m.store.Load(owner); err == nil || !errors.Is(err, state.ErrNotFound) {
					return fmt.Errorf("guest address %s is already used by vm %s on network %q; fix the IPAM configuration (overlapping ranges or static addresses)", a.Prefix.Addr(), owner, ownerNet)
				}
			}
		}
		// Written to a temporary file first: a process killed meanwhile must
		// not leave an empty claim.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(vm+" "+net+"\n"), 0o600); err != nil {
			return fmt.Errorf("claim guest address %s: %w", a.Prefix.Addr(), err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("claim guest address %s: %w", a.Prefix.Addr(), err)
		}
	}
	return nil
}

// releaseAddresses removes the claims of vm on the addresses of its IPAM
// results. Claims now held by another VM stay. The caller holds the shared lock.
func (m *Manager) releaseAddresses(rec *state.Record) error {
	var errs []error
	for _, a := range rec.Attachments {
		if len(a.IPAMResult) == 0 {
			continue
		}
		res, err := cniresult.Parse("1.0.0", a.IPAMResult)
		if err != nil {
			continue // a result that never parsed was never claimed
		}
		for _, addr := range res.Addresses {
			path := m.claimPath(addr.Prefix.Addr())
			if owner, _, ok := readClaim(path); !ok || owner != rec.VM {
				continue
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("release claim on %s: %w", addr.Prefix.Addr(), err))
			}
		}
	}
	removeDirIfEmpty(filepath.Join(m.opts.StateDir, "addrs"))
	return errors.Join(errs...)
}

// readClaim returns the VM id and network of the claim file at path.
func readClaim(path string) (vm, net string, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", false
	}
	vm, net, _ = strings.Cut(strings.TrimSpace(string(data)), " ")
	return vm, net, vm != ""
}
