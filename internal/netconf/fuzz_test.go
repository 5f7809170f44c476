package netconf

import (
	"strings"
	"testing"
)

// FuzzParseNetList checks that ParseNetList never panics and that what it
// accepts is consistent. Values are separated by newlines in the input, as
// if --net were given once per line. Seeds are in testdata/fuzz.
func FuzzParseNetList(f *testing.F) {
	f.Fuzz(func(t *testing.T, text string) {
		values := strings.Split(text, "\n")
		list, err := ParseNetList(values)
		if err != nil {
			return
		}
		if list.None && (list.All || len(list.Attachments) > 0) {
			t.Fatalf("ParseNetList(%q) = %+v: none together with other networks", values, list)
		}
		if !list.None && !list.All && len(list.Attachments) == 0 {
			t.Fatalf("ParseNetList(%q) = %+v: no network", values, list)
		}
		seen := map[string]bool{}
		for _, a := range list.Attachments {
			if err := ValidateName(a.Network); err != nil {
				t.Fatalf("ParseNetList(%q) accepted network %q: %v", values, a.Network, err)
			}
			if seen[a.Network] {
				t.Fatalf("ParseNetList(%q) returned network %q twice", values, a.Network)
			}
			seen[a.Network] = true
			for _, kv := range a.Args {
				if strings.ContainsAny(kv[0]+kv[1], ";=, \t\n") || kv[1] == "" {
					t.Fatalf("ParseNetList(%q) returned argument %q", values, kv)
				}
			}
		}
	})
}

// FuzzParseConfig checks that Parse never panics, that what it accepts
// passes validation, and that its normalized bytes parse to the same
// network. Seeds are in testdata/fuzz.
func FuzzParseConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		if err := ValidateName(n.Name); err != nil {
			t.Fatalf("Parse accepted name %q: %v", n.Name, err)
		}
		if n.Conf.MTU != 0 && (n.Conf.MTU < MinMTU || n.Conf.MTU > MaxMTU) {
			t.Fatalf("Parse accepted mtu %d", n.Conf.MTU)
		}
		again, err := Parse(n.Bytes, "fuzz again")
		if err != nil {
			t.Fatalf("normalized config %s does not parse: %v", n.Bytes, err)
		}
		if again.Name != n.Name || again.Conf.Type != n.Conf.Type || again.Conf.CNIVersion != n.Conf.CNIVersion || again.Conf.IPAM.Type != n.Conf.IPAM.Type {
			t.Fatalf("normalized config parses to %+v, want %+v", again.Conf, n.Conf)
		}
	})
}
