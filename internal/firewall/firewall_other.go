//go:build !linux

package firewall

// Firewall is unavailable outside Linux. Every method returns
// ErrUnsupported.
type Firewall struct{}

// New returns ErrUnsupported.
func New() (*Firewall, error) { return nil, ErrUnsupported }

// Close does nothing.
func (f *Firewall) Close() error { return nil }

// Add returns ErrUnsupported.
func (f *Firewall) Add(VM) (Receipt, error) { return Receipt{}, ErrUnsupported }

// Remove returns ErrUnsupported.
func (f *Firewall) Remove(VM, Receipt) error { return ErrUnsupported }

// Owners returns ErrUnsupported.
func (f *Firewall) Owners() ([]string, error) { return nil, ErrUnsupported }

// RemoveOwner returns ErrUnsupported.
func (f *Firewall) RemoveOwner(string) error { return ErrUnsupported }

// PruneIfUnused returns ErrUnsupported.
func (f *Firewall) PruneIfUnused() (bool, error) { return false, ErrUnsupported }
