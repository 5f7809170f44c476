//go:build !failpoints

package failpoint

// Enabled reports whether this build contains failpoints.
const Enabled = false

// Inject does nothing: this build has no failpoints.
func Inject(name string, index int) error { return nil }
