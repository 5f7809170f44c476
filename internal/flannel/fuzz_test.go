package flannel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// formatSubnetEnv writes env in the format flanneld uses.
func formatSubnetEnv(env SubnetEnv) string {
	var b strings.Builder
	join := func(networks []netip.Prefix) string {
		texts := make([]string, len(networks))
		for i, network := range networks {
			texts[i] = network.String()
		}
		return strings.Join(texts, ",")
	}
	if env.HasIPv4() {
		fmt.Fprintf(&b, "%s=%s\n%s=%s\n", KeyNetwork, join(env.Networks), KeySubnet, env.Subnet)
	}
	if env.HasIPv6() {
		fmt.Fprintf(&b, "%s=%s\n%s=%s\n", KeyIPv6Network, join(env.IPv6Networks), KeyIPv6Subnet, env.IPv6Subnet)
	}
	fmt.Fprintf(&b, "%s=%d\n%s=%t\n", KeyMTU, env.MTU, KeyIPMasq, env.IPMasq)
	return b.String()
}

// checkSubnetEnv reports every way env breaks the contract of ParseSubnetEnv.
func checkSubnetEnv(t *testing.T, env SubnetEnv) {
	t.Helper()
	if !env.HasIPv4() && !env.HasIPv6() {
		t.Errorf("parsed env has no address family: %+v", env)
	}
	if env.MTU < MinMTU || env.MTU > MaxMTU {
		t.Errorf("parsed MTU %d is out of range", env.MTU)
	}
	checkFamily := func(subnet netip.Prefix, networks []netip.Prefix, ipv6 bool) {
		if !subnet.IsValid() {
			if len(networks) != 0 {
				t.Errorf("networks %v without a subnet", networks)
			}
			return
		}
		inside := false
		for _, network := range networks {
			if network != network.Masked() || network.Addr().Is6() != ipv6 {
				t.Errorf("network %s is not a masked prefix of the right family", network)
			}
			if network.Bits() <= subnet.Bits() && network.Contains(subnet.Addr()) {
				inside = true
			}
		}
		if !inside {
			t.Errorf("subnet %s is not inside any of %v", subnet, networks)
		}
		if subnet.Addr().Is6() != ipv6 || subnet.Addr().Is4In6() {
			t.Errorf("subnet %s is of the wrong family", subnet)
		}
	}
	checkFamily(env.Subnet, env.Networks, false)
	checkFamily(env.IPv6Subnet, env.IPv6Networks, true)
}

func equalSubnetEnv(a, b SubnetEnv) bool {
	return slices.Equal(a.Networks, b.Networks) && a.Subnet == b.Subnet &&
		slices.Equal(a.IPv6Networks, b.IPv6Networks) && a.IPv6Subnet == b.IPv6Subnet &&
		a.MTU == b.MTU && a.IPMasq == b.IPMasq
}

func FuzzParseSubnetEnv(f *testing.F) {
	for _, seed := range []string{envIPv4, envIPv6, envDual, "", "FLANNEL_MTU=\"1450\"\n", "A=B\r\n", "#\n=\n"} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseSubnetEnv(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidSubnetEnv) {
				t.Fatalf("ParseSubnetEnv() error %q does not wrap ErrInvalidSubnetEnv", err)
			}
			return
		}
		checkSubnetEnv(t, env)

		// Writing the result out and parsing it again gives the same result.
		again, err := ParseSubnetEnv([]byte(formatSubnetEnv(env)))
		if err != nil {
			t.Fatalf("ParseSubnetEnv() of the formatted result %q: %v", formatSubnetEnv(env), err)
		}
		// A plain comparison first, because cmp.Diff is slow for the fuzzer.
		if !equalSubnetEnv(env, again) {
			diff := cmp.Diff(env, again, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }))
			t.Errorf("reparsed env mismatch (-first +second):\n%s", diff)
		}
	})
}

func FuzzRender(f *testing.F) {
	f.Add([]byte(`{"name":"fl","cniVersion":"1.0.0","type":"flannel"}`), []byte(envIPv4))
	f.Add([]byte(`{"name":"fl","type":"flannel","delegate":{"mtu":1400.0,"ipMasq":true,"x":[1,{}]}}`), []byte(envDual))
	f.Add([]byte(`{"name":"fl","type":"flannel","delegate":{"ipMasq":"true","isDefaultGateway":1}}`), []byte(envIPv6))
	f.Add([]byte(`{"name":"fl","type":"flannel","ipam":{"routes":[{"dst":"0.0.0.0/0","gw":"10.1.17.1"}]},"dataDir":"/d"}`), []byte(envIPv4))
	f.Add([]byte(`{"name":"fl","type":"flannel","delegate":{"type":"ptp","mtu":1e400}}`), []byte("FLANNEL_MTU=0\n"))

	f.Fuzz(func(t *testing.T, conf, env []byte) {
		readFile := func(string) ([]byte, error) { return env, nil }
		rendered, err := Render(conf, readFile)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) && !errors.Is(err, ErrInvalidSubnetEnv) {
				t.Fatalf("Render() error %q wraps neither ErrInvalidConfig nor ErrInvalidSubnetEnv", err)
			}
			return
		}

		// The same input renders to the same bytes.
		again, err := Render(conf, readFile)
		if err != nil || !bytes.Equal(rendered, again) {
			t.Fatalf("second Render() = %s, %v, want the first output", again, err)
		}

		cfg, err := ParseConfig(conf)
		if err != nil {
			t.Fatalf("ParseConfig() failed after Render() succeeded: %v", err)
		}
		checkRendered(t, cfg, rendered)
	})
}

// checkRendered checks the keys that every rendered config has.
func checkRendered(t *testing.T, cfg Config, rendered []byte) {
	t.Helper()
	var out struct {
		Name string `json:"name"`
		Type string `json:"type"`
		MTU  int    `json:"mtu"`
		IPAM struct {
			Type   string              `json:"type"`
			Ranges [][]json.RawMessage `json:"ranges"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal(rendered, &out); err != nil {
		t.Fatalf("decode rendered config: %v\n%s", err, rendered)
	}
	if out.Name != cfg.Name {
		t.Errorf("rendered name = %q, want %q", out.Name, cfg.Name)
	}
	if out.Type == "" || out.IPAM.Type == "" {
		t.Errorf("rendered type %q or ipam type %q is empty", out.Type, out.IPAM.Type)
	}
	if out.MTU < MinMTU || out.MTU > MaxMTU {
		t.Errorf("rendered mtu %d is out of range", out.MTU)
	}
	if len(out.IPAM.Ranges) == 0 || len(out.IPAM.Ranges) > 2 {
		t.Errorf("rendered %d range sets, want 1 or 2", len(out.IPAM.Ranges))
	}
}
