package cniresult

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseVersions(t *testing.T) {
	want := Result{
		Addresses: []Address{{Prefix: netip.MustParsePrefix("10.1.0.5/24"), Gateway: netip.MustParseAddr("10.1.0.1")}},
		Routes:    []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0")}},
		DNS:       DNS{Nameservers: []netip.Addr{netip.MustParseAddr("10.1.0.53")}, Search: []string{"example.test"}},
	}
	cases := map[string]string{
		"0.1.0 ip4":              `{"cniVersion":"0.1.0","ip4":{"ip":"10.1.0.5/24","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0"}]},"dns":{"nameservers":["10.1.0.53"],"search":["example.test"]}}`,
		"0.2.0 ip4":              `{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/24","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0"}]},"dns":{"nameservers":["10.1.0.53"],"search":["example.test"]}}`,
		"0.3.1":                  `{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.53"],"search":["example.test"]}}`,
		"0.4.0":                  `{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.53"],"search":["example.test"]}}`,
		"1.0.0":                  `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.53"],"search":["example.test"]}}`,
		"1.1.0":                  `{"cniVersion":"1.1.0","ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.53"],"search":["example.test"]}}`,
		"no gateway":             `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.53"],"search":["example.test"]}}`,
		"interface index absent": `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.53"],"search":["example.test"]}}`,
		"version from config":    `{"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.53"],"search":["example.test"]}}`,
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Parse("1.0.0", []byte(raw))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("result mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDualStack(t *testing.T) {
	raw := `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"},{"address":"fd00:1::5/64","gateway":"fd00:1::1"}]}`
	got, err := Parse("1.0.0", []byte(raw))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(got.Addresses) != 2 {
		t.Fatalf("got %d addresses, want 2", len(got.Addresses))
	}
	if got.Addresses[1].Prefix != netip.MustParsePrefix("fd00:1::5/64") {
		t.Errorf("IPv6 address = %s", got.Addresses[1].Prefix)
	}
	if got.Addresses[0].Gateway != netip.MustParseAddr("10.1.0.1") {
		t.Errorf("derived IPv4 gateway = %s, want 10.1.0.1", got.Addresses[0].Gateway)
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	cases := map[string]string{
		"not json":      `hello`,
		"bad version":   `{"cniVersion":"9.9.9","ips":[]}`,
		"bad address":   `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.500/24"}]}`,
		"bad dns":       `{"cniVersion":"1.0.0","ips":[],"dns":{"nameservers":["not-an-ip"]}}`,
		"mixed gateway": `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24","gateway":"fd00::1"}]}`,
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse("1.0.0", []byte(raw)); err == nil {
				t.Errorf("Parse(%s) = nil error", raw)
			} else if !strings.Contains(err.Error(), "CNI result") {
				t.Errorf("error %q does not say it is about the CNI result", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("1.0.0", `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0"}]}`)
	f.Add("0.2.0", `{"ip4":{"ip":"10.1.0.5/24"}}`)
	f.Add("0.3.1", `{"ips":[{"version":"6","address":"fd00::2/64"}],"dns":{"nameservers":["fd00::53"]}}`)
	f.Fuzz(func(t *testing.T, version, raw string) {
		res, err := Parse(version, []byte(raw))
		if err != nil {
			return
		}
		for _, a := range res.Addresses {
			if !a.Prefix.IsValid() {
				t.Fatalf("invalid prefix accepted from %q", raw)
			}
		}
	})
}
