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

func TestValidateRejectsUnusable(t *testing.T) {
	gw := netip.MustParseAddr("10.9.0.1")
	cases := map[string]struct {
		result   Result
		fragment string
	}{
		"no addresses": {Result{}, "no addresses"},
		"loopback":     {Result{Addresses: []Address{{netip.MustParsePrefix("127.0.0.5/8"), netip.MustParseAddr("127.0.0.1")}}}, "not a global"},
		"multicast":    {Result{Addresses: []Address{{netip.MustParsePrefix("224.0.0.5/24"), netip.MustParseAddr("224.0.0.1")}}}, "not a global"},
		"link-local":   {Result{Addresses: []Address{{netip.MustParsePrefix("fe80::5/64"), netip.MustParseAddr("fe80::1")}}}, "not a global"},
		"slash zero":   {Result{Addresses: []Address{{netip.MustParsePrefix("10.9.0.5/0"), netip.MustParseAddr("0.0.0.1")}}}, "prefix length"},
		"slash 32":     {Result{Addresses: []Address{{netip.MustParsePrefix("10.9.0.5/32"), netip.MustParseAddr("10.9.0.5")}}}, "prefix length"},
		"network":      {Result{Addresses: []Address{{netip.MustParsePrefix("10.9.0.0/24"), gw}}}, "network address"},
		"broadcast":    {Result{Addresses: []Address{{netip.MustParsePrefix("10.9.0.255/24"), gw}}}, "broadcast address"},
		"is gateway":   {Result{Addresses: []Address{{netip.MustParsePrefix("10.9.0.1/24"), gw}}}, "also its gateway"},
		"gw outside":   {Result{Addresses: []Address{{netip.MustParsePrefix("10.9.0.5/24"), netip.MustParseAddr("10.8.0.1")}}}, "outside"},
		"route family": {Result{Addresses: []Address{{netip.MustParsePrefix("10.9.0.5/24"), gw}}, Routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), GW: netip.MustParseAddr("fd00::1")}}}, "other address family"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := c.result.Validate()
			if err == nil {
				t.Fatal("Validate = nil")
			}
			if !strings.Contains(err.Error(), c.fragment) {
				t.Errorf("error %q does not contain %q", err, c.fragment)
			}
		})
	}
	ok := Result{Addresses: []Address{{netip.MustParsePrefix("10.9.0.5/24"), gw}, {netip.MustParsePrefix("fd00:9::5/64"), netip.MustParseAddr("fd00:9::1")}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate of a usable result = %v", err)
	}
}
