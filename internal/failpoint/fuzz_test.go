package failpoint

import "testing"

// FuzzParse checks that Parse never panics on a KVMNET_FAILPOINT value and
// that every value it accepts formats back to a value that parses the same.
func FuzzParse(f *testing.F) {
	f.Add("up.record-saved:kill")
	f.Add("up.device-created@2:fail")
	f.Add("down.link-removed@:kill")
	f.Add("@@::")
	f.Fuzz(func(t *testing.T, value string) {
		spec, err := Parse(value)
		if err != nil {
			return
		}
		again, err := Parse(spec.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, whose String %q does not parse: %v", value, spec, spec.String(), err)
		}
		if again != spec {
			t.Errorf("round trip of %q: %+v, then %+v", value, spec, again)
		}
	})
}
