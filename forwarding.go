package kvmnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kvmnet/kvmnet/internal/link"
)

// IP forwarding is switched on by the first VM that needs it, as CNI's ptp
// and bridge plugins do. The value found before is kept in
// <state-dir>/.forwarding.json (a name no VM id can have) and written back
// when the last VM of the state dir goes down (or gc removes the last
// record), so the namespace returns to its baseline.

var forwardingSysctls = map[bool]string{
	false: "/proc/sys/net/ipv4/ip_forward",
	true:  "/proc/sys/net/ipv6/conf/all/forwarding",
}

func (m *Manager) forwardingFile() string { return filepath.Join(m.opts.StateDir, ".forwarding.json") }

func (m *Manager) readForwarding() (map[string]string, error) {
	saved := map[string]string{}
	data, err := os.ReadFile(m.forwardingFile())
	if errors.Is(err, os.ErrNotExist) {
		return saved, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read saved forwarding settings: %w", err)
	}
	if err := json.Unmarshal(data, &saved); err != nil {
		return nil, fmt.Errorf("saved forwarding settings %s are corrupt: %w", m.forwardingFile(), err)
	}
	return saved, nil
}

// enableForwarding turns on IPv4 or IPv6 forwarding, saving the previous
// value first when it was off.
func (m *Manager) enableForwarding(ipv6 bool) error {
	path := forwardingSysctls[ipv6]
	return m.withShared(func() error {
		current, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read sysctl %s: %w", path, err)
		}
		value := strings.TrimSpace(string(current))
		if value == "1" {
			return nil
		}
		saved, err := m.readForwarding()
		if err != nil {
			return err
		}
		if _, ok := saved[path]; !ok {
			saved[path] = value
			data, _ := json.Marshal(saved)
			if err := os.WriteFile(m.forwardingFile(), data, 0o600); err != nil {
				return fmt.Errorf("save forwarding setting: %w", err)
			}
		}
		return link.WriteSysctl(path, "1")
	})
}

// restoreForwarding writes back the saved forwarding settings once no VM of
// the state dir has a record. The caller holds the shared lock.
func (m *Manager) restoreForwarding() error {
	ids, err := m.store.List()
	if err != nil || len(ids) > 0 {
		return err
	}
	saved, err := m.readForwarding()
	if err != nil || len(saved) == 0 {
		return err
	}
	for path, value := range saved {
		if path != forwardingSysctls[false] && path != forwardingSysctls[true] {
			continue // written by another program; never write elsewhere
		}
		if err := link.WriteSysctl(path, value); err != nil {
			return err
		}
		m.log.Info("restored forwarding setting after the last vm", "sysctl", path, "value", value)
	}
	if err := os.Remove(m.forwardingFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove saved forwarding settings: %w", err)
	}
	return nil
}
