//go:build failpoints

package failpoint

import (
	"os"
	"syscall"
)

// Enabled reports whether this build contains failpoints.
const Enabled = true

// Inject runs the action armed for name in KVMNET_FAILPOINT, if any. index
// is the attachment index of a per-attachment point, or -1. The variable is
// read at every call, so the package keeps no state. An invalid value makes
// every call return an error, so a misspelled name cannot pass unnoticed.
func Inject(name string, index int) error {
	value := os.Getenv(EnvVar)
	if value == "" {
		return nil
	}
	spec, err := Parse(value)
	if err != nil {
		return err
	}
	if spec.Name != name || (spec.Index >= 0 && spec.Index != index) {
		return nil
	}
	if spec.Action == Kill {
		// SIGKILL cannot be caught, so nothing after this line runs.
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return &Error{Point: name}
}
