//go:build linux

package firewall

import "fmt"

// PruneIfUnused deletes kvmnet's tables when no VM owns an entry in them
// any more, so the ruleset returns to what it was before the first VM. It
// reports whether it deleted them. Callers serialize it with Add, because an
// Add between the check and the deletion would lose its entries.
func (f *Firewall) PruneIfUnused() (bool, error) {
	owners, err := f.Owners()
	if err != nil {
		return false, err
	}
	if len(owners) > 0 {
		return false, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	inet, err := f.inetPresent()
	if err != nil {
		return false, err
	}
	guards, err := f.guardTables()
	if err != nil {
		return false, err
	}
	if !inet && len(guards) == 0 {
		return false, nil
	}
	if inet {
		f.conn.DelTable(f.layout.inet)
	}
	for _, table := range guards {
		f.conn.DelTable(table)
	}
	if err := f.conn.Flush(); err != nil {
		return false, fmt.Errorf("delete unused kvmnet tables: %w", err)
	}
	return true, nil
}
