package kvmnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/kvmnet/kvmnet/internal/link"
)

// Gateway addresses that kvmnet puts on a bridge it did not create are
// listed in <state-dir>/bridges/<bridge>.json, written before the address is
// added, so that the down that leaves the bridge without ports (or gc later)
// removes them again. Addresses that were there before are never listed.

func (m *Manager) bridgeFile(bridge string) string {
	return filepath.Join(m.opts.StateDir, "bridges", bridge+".json")
}

func (m *Manager) readBridgeAddrs(bridge string) ([]netip.Prefix, error) {
	data, err := os.ReadFile(m.bridgeFile(bridge))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read bridge address list: %w", err)
	}
	var addrs []netip.Prefix
	if err := json.Unmarshal(data, &addrs); err != nil {
		return nil, fmt.Errorf("bridge address list %s is corrupt: %w", m.bridgeFile(bridge), err)
	}
	return addrs, nil
}

func (m *Manager) writeBridgeAddrs(bridge string, addrs []netip.Prefix) error {
	path := m.bridgeFile(bridge)
	if len(addrs) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove bridge address list: %w", err)
		}
		removeDirIfEmpty(filepath.Dir(path))
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write bridge address list: %w", err)
	}
	data, err := json.Marshal(addrs)
	if err != nil {
		return fmt.Errorf("encode bridge address list: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write bridge address list: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write bridge address list: %w", err)
	}
	return nil
}

// addBridgeGateway puts the gateway address gw on bridge, listing it first
// when it is new. The caller holds the shared lock.
func (m *Manager) addBridgeGateway(h *link.Handle, bridge string, gw netip.Prefix) error {
	present, err := h.HasAddr(bridge, gw)
	if err != nil {
		return err
	}
	if !present {
		addrs, err := m.readBridgeAddrs(bridge)
		if err != nil {
			return err
		}
		if !slices.Contains(addrs, gw) {
			if err := m.writeBridgeAddrs(bridge, append(addrs, gw)); err != nil {
				return err
			}
		}
	}
	return h.AddAddr(bridge, link.Addr{Prefix: gw}, true)
}

// releaseBridge removes a bridge kvmnet created once no link is enslaved to
// it, or else the gateway addresses kvmnet added once no link at all uses
// it. The caller holds the shared lock.
func (m *Manager) releaseBridge(h *link.Handle, vm, bridge string) error {
	if err := m.adoptBridge(h, bridge); err != nil {
		return err
	}
	removed, err := h.DeleteBridgeIfUnused(bridge)
	if err != nil {
		return err
	}
	if removed {
		m.log.Info("removed bridge kvmnet created, now unused", "vm", vm, "dev", bridge)
		return m.writeBridgeAddrs(bridge, nil)
	}
	// Links of other CNI users on the bridge still need the gateway.
	used, err := h.HasSlaves(bridge)
	if err != nil || used {
		return err
	}
	addrs, err := m.readBridgeAddrs(bridge)
	if err != nil {
		return err
	}
	for _, p := range addrs {
		if err := h.DelAddr(bridge, p); err != nil {
			return err
		}
		m.log.Info("removed gateway address kvmnet added to a bridge", "vm", vm, "dev", bridge, "addr", p)
	}
	return m.writeBridgeAddrs(bridge, nil)
}

// bridgeMarker returns the path of the file written before kvmnet creates a
// bridge and removed once the bridge carries its alias. The kernel takes the
// alias only after the bridge exists, so a process killed in between would
// otherwise leave a bridge that looks pre-existing and is never removed.
func (m *Manager) bridgeMarker(bridge string) string {
	return filepath.Join(m.opts.StateDir, "bridges", bridge+".creating")
}

// ensureBridge creates the bridge unless it exists, with the marker around
// the creation. The caller holds the shared lock.
func (m *Manager) ensureBridge(h *link.Handle, bridge string, mtu int) error {
	if err := m.adoptBridge(h, bridge); err != nil {
		return err
	}
	existing, err := h.Get(bridge)
	if err != nil {
		return err
	}
	marker := m.bridgeMarker(bridge)
	if existing == nil {
		if err := os.MkdirAll(filepath.Dir(marker), 0o700); err != nil {
			return fmt.Errorf("mark creation of bridge %s: %w", bridge, err)
		}
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			return fmt.Errorf("mark creation of bridge %s: %w", bridge, err)
		}
	}
	if _, err := h.EnsureBridge(bridge, mtu); err != nil {
		return err
	}
	if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove creation mark of bridge %s: %w", bridge, err)
	}
	removeDirIfEmpty(filepath.Dir(marker))
	return nil
}

// adoptBridge finishes the creation of a bridge whose creator was killed
// before the alias was set: it sets the alias, so that the bridge is
// removed with its last port like any bridge kvmnet created. The caller
// holds the shared lock.
func (m *Manager) adoptBridge(h *link.Handle, bridge string) error {
	marker := m.bridgeMarker(bridge)
	if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	br, err := h.Get(bridge)
	if err != nil {
		return err
	}
	if br != nil && br.Type() == "bridge" && br.Attrs().Alias == "" {
		if err := h.SetAlias(bridge, link.BridgeAlias); err != nil {
			return err
		}
		m.log.Info("adopted a bridge whose creation was interrupted", "dev", bridge)
	}
	if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove creation mark of bridge %s: %w", bridge, err)
	}
	removeDirIfEmpty(filepath.Dir(marker))
	return nil
}

// removeDirIfEmpty removes dir when nothing is left in it, so the state dir
// returns to what it held before. A dir that is not empty stays.
func removeDirIfEmpty(dir string) {
	_ = os.Remove(dir)
}
