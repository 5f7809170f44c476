package vmid

import (
	"strings"
	"testing"
)

// TestValidateLongID requires that a 200-byte id is accepted: every name
// derived from an id is a hash, so the id length limits nothing but the
// state file name (id + ".json", within the 255-byte file name limit).
func TestValidateLongID(t *testing.T) {
	id := strings.Repeat("v", 200)
	if err := Validate(id); err != nil {
		t.Errorf("Validate of a 200-byte id: %v", err)
	}
}

func TestSharedPrefixIDsDiffer(t *testing.T) {
	a, b := "webserver-a", "webserver-b"
	if LinkName(a, 0) == LinkName(b, 0) {
		t.Errorf("LinkName(%q) = LinkName(%q) = %q", a, b, LinkName(a, 0))
	}
	if MAC(a, 0).String() == MAC(b, 0).String() {
		t.Errorf("MAC(%q) = MAC(%q) = %s", a, b, MAC(a, 0))
	}
}

func TestIsLinkNameRejects(t *testing.T) {
	for _, name := range []string{"", "kvm", "kvmabcdefghijk", "kvmabcdefghijklm", "KVMabcdefghijkl", "tapabcdefghijkl", "kvmABCDEFGHIJKL", "kvmabcdefghijk1"} {
		if IsLinkName(name) {
			t.Errorf("IsLinkName(%q) = true, want false", name)
		}
	}
}
