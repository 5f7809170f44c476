package flannel

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// readFiles returns a readFile function that serves files from a map and
// fs.ErrNotExist for any other path.
func readFiles(files map[string]string) func(string) ([]byte, error) {
	return func(path string) ([]byte, error) {
		data, ok := files[path]
		if !ok {
			return nil, fmt.Errorf("open %s: %w", path, fs.ErrNotExist)
		}
		return []byte(data), nil
	}
}

// readSubnetEnv returns a readFile function that serves data at DefaultSubnetFile.
func readSubnetEnv(data string) func(string) ([]byte, error) {
	return readFiles(map[string]string{DefaultSubnetFile: data})
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		conf   string
		env    string
	}{
		{
			name:   "ipv4",
			golden: "ipv4.json",
			conf:   `{"name":"fl","cniVersion":"1.0.0","type":"flannel"}`,
			env:    envIPv4,
		},
		{
			name:   "ipv6 only",
			golden: "ipv6.json",
			conf:   `{"name":"fl6","cniVersion":"1.1.0","type":"flannel"}`,
			env:    envIPv6,
		},
		{
			name:   "dual stack",
			golden: "dual-stack.json",
			conf:   `{"name":"fl","cniVersion":"1.0.0","type":"flannel"}`,
			env:    envDual,
		},
		{
			name:   "several networks",
			golden: "several-networks.json",
			conf:   `{"name":"fl","type":"flannel"}`,
			env:    "FLANNEL_NETWORK=10.1.0.0/16,10.2.0.0/16\nFLANNEL_SUBNET=10.2.3.1/24\nFLANNEL_MTU=8951\nFLANNEL_IPMASQ=false\n",
		},
		{
			name:   "delegate overrides",
			golden: "delegate-overrides.json",
			conf: `{"name":"fl","cniVersion":"1.0.0","type":"flannel",
				"delegate":{"bridge":"fl0","isGateway":false,"isDefaultGateway":true,"ipMasq":true,
				"hairpinMode":true,"mtu":1400,"vlan":12,
				"extra":{"big":12345678901234567890,"list":[1.50,"x",null]}}}`,
			env: envIPv4,
		},
		{
			name:   "kube-flannel plugin entry",
			golden: "kube-flannel.json",
			conf:   `{"name":"cbr0","cniVersion":"0.3.1","type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}}`,
			env:    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
		},
		{
			name:   "ptp delegate",
			golden: "ptp-delegate.json",
			conf:   `{"name":"fl","cniVersion":"1.0.0","type":"flannel","delegate":{"type":"ptp"}}`,
			env:    envIPv4,
		},
		{
			name:   "escaped bridge type",
			golden: "ipv4.json",
			conf:   `{"name":"fl","cniVersion":"1.0.0","type":"flannel","delegate":{"type":"bridg\u0065"}}`,
			env:    envIPv4,
		},
		{
			name:   "ipam routes and data dir",
			golden: "ipam-routes.json",
			conf: `{"name":"fl","cniVersion":"1.0.0","type":"flannel","dataDir":"/var/lib/kvmnet/flannel",
				"ipam":{"routes":[{"dst":"192.0.2.0/24","gw":"10.1.17.254"}],"resolvConf":"/etc/resolv.conf"},
				"runtimeConfig":{"ips":["10.1.17.9/24"]}}`,
			env: envIPv4,
		},
		{
			name:   "custom subnet file",
			golden: "ipv4.json",
			conf:   `{"name":"fl","cniVersion":"1.0.0","type":"flannel","subnetFile":"/run/flannel/other.env"}`,
			env:    "",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{DefaultSubnetFile: tt.env, "/run/flannel/other.env": envIPv4}
			got, err := Render([]byte(tt.conf), readFiles(files))
			if err != nil {
				t.Fatalf("Render() error = %v", err)
			}
			compareGolden(t, tt.golden, got)
		})
	}
}

// TestRenderMTUNumberForms checks that every JSON form of an integer is
// accepted as the delegate MTU and rendered as a plain integer.
func TestRenderMTUNumberForms(t *testing.T) {
	for _, mtu := range []string{"1400", "1400.0", "1400.000", "1.4e3", "14E2", "140000e-2"} {
		t.Run(mtu, func(t *testing.T) {
			conf := `{"name":"fl","cniVersion":"1.0.0","type":"flannel","delegate":{"mtu":` + mtu + `}}`
			got, err := Render([]byte(conf), readSubnetEnv(envIPv4))
			if err != nil {
				t.Fatalf("Render() error = %v", err)
			}
			compareGolden(t, "mtu-number.json", got)
		})
	}
}

// TestRenderFlannelMTU checks that FLANNEL_MTU reaches the bridge config,
// which sets the MTU of the bridge, the tap and the guest.
func TestRenderFlannelMTU(t *testing.T) {
	got, err := Render([]byte(`{"name":"fl","type":"flannel"}`), readSubnetEnv(envIPv4))
	if err != nil {
		t.Fatalf("Render() error = %v", err)
	}
	bridge := decodeBridge(t, got)
	if bridge.MTU != 1450 {
		t.Errorf("rendered mtu = %d, want 1450 from FLANNEL_MTU", bridge.MTU)
	}
}

// bridgeConf has the keys of the bridge plugin's config with the Go types
// that the plugin decodes them into.
type bridgeConf struct {
	types.NetConf
	BridgeName       string `json:"bridge"`
	IsGateway        bool   `json:"isGateway"`
	IsDefaultGateway bool   `json:"isDefaultGateway"`
	IPMasq           bool   `json:"ipMasq"`
	HairpinMode      bool   `json:"hairpinMode"`
	MTU              int    `json:"mtu"`
	Vlan             int    `json:"vlan"`
	IPAMConf         struct {
		Type    string `json:"type"`
		DataDir string `json:"dataDir"`
		Ranges  [][]struct {
			Subnet string `json:"subnet"`
		} `json:"ranges"`
		Routes []types.Route `json:"routes"`
	} `json:"ipam"`
}

// decodeBridge decodes a rendered config the way the bridge plugin and
// host-local do, with unknown keys allowed.
func decodeBridge(t *testing.T, rendered []byte) bridgeConf {
	t.Helper()
	var conf bridgeConf
	if err := json.Unmarshal(rendered, &conf); err != nil {
		t.Fatalf("decode rendered config as a bridge config: %v\n%s", err, rendered)
	}
	return conf
}

// TestRenderTypedDecode checks that the rendered configs decode into the
// typed structs of the bridge plugin and host-local, so that, for example,
// a delegate mtu of 1400.0 does not break the plugin.
func TestRenderTypedDecode(t *testing.T) {
	conf := `{"name":"fl","cniVersion":"1.0.0","type":"flannel","delegate":{"mtu":1400.0,"vlan":7.0}}`
	got, err := Render([]byte(conf), readSubnetEnv(envDual))
	if err != nil {
		t.Fatalf("Render() error = %v", err)
	}
	bridge := decodeBridge(t, got)

	if bridge.Type != "bridge" || bridge.Name != "fl" || bridge.CNIVersion != "1.0.0" {
		t.Errorf("type, name, cniVersion = %q, %q, %q, want bridge, fl, 1.0.0", bridge.Type, bridge.Name, bridge.CNIVersion)
	}
	if bridge.MTU != 1400 {
		t.Errorf("mtu = %d, want 1400", bridge.MTU)
	}
	if bridge.Vlan != 7 {
		t.Errorf("vlan = %d, want 7", bridge.Vlan)
	}
	if !bridge.IsGateway || bridge.IsDefaultGateway || bridge.IPMasq {
		t.Errorf("isGateway, isDefaultGateway, ipMasq = %t, %t, %t, want true, false, false",
			bridge.IsGateway, bridge.IsDefaultGateway, bridge.IPMasq)
	}
	if bridge.IPAMConf.Type != "host-local" {
		t.Errorf("ipam type = %q, want host-local", bridge.IPAMConf.Type)
	}

	var subnets []string
	for _, set := range bridge.IPAMConf.Ranges {
		for _, r := range set {
			subnets = append(subnets, r.Subnet)
		}
	}
	if diff := cmp.Diff([]string{"10.1.17.0/24", "fd00:10:0:11::/64"}, subnets); diff != "" {
		t.Errorf("ipam range subnets mismatch (-want +got):\n%s", diff)
	}
	var dsts []string
	for _, route := range bridge.IPAMConf.Routes {
		dsts = append(dsts, route.Dst.String())
	}
	if diff := cmp.Diff([]string{"10.1.0.0/16", "fd00:10::/56"}, dsts); diff != "" {
		t.Errorf("ipam route destinations mismatch (-want +got):\n%s", diff)
	}
}

func TestRenderIPMasqFollowsFlannel(t *testing.T) {
	tests := []struct {
		flannelIPMasq string
		want          bool
	}{
		{"true", false},
		{"false", true},
	}
	for _, tt := range tests {
		t.Run("FLANNEL_IPMASQ="+tt.flannelIPMasq, func(t *testing.T) {
			env := strings.Replace(envIPv4, "FLANNEL_IPMASQ=true", "FLANNEL_IPMASQ="+tt.flannelIPMasq, 1)
			got, err := Render([]byte(`{"name":"fl","type":"flannel"}`), readSubnetEnv(env))
			if err != nil {
				t.Fatalf("Render() error = %v", err)
			}
			if bridge := decodeBridge(t, got); bridge.IPMasq != tt.want {
				t.Errorf("rendered ipMasq = %t, want %t", bridge.IPMasq, tt.want)
			}
		})
	}
}

func TestRenderInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		conf string
		// want are fragments that the error message must contain.
		want []string
	}{
		{"not json", `{"name":`, []string{"config is not a JSON object"}},
		{"json null", `null`, []string{"config is not a JSON object: got null"}},
		{"json array", `[]`, []string{"config is not a JSON object"}},
		{"trailing data", `{"name":"fl","type":"flannel"} {}`, []string{"config is not a JSON object"}},
		{"missing name", `{"type":"flannel"}`, []string{`field "name": missing or empty`}},
		{"empty name", `{"name":"","type":"flannel"}`, []string{`field "name": missing or empty`}},
		{"name number", `{"name":5,"type":"flannel"}`, []string{`field "name": must be a string, got a number 5`}},
		{"missing type", `{"name":"fl"}`, []string{`field "type": expected "flannel", got ""`}},
		{"type bridge", `{"name":"fl","type":"bridge"}`, []string{`field "type": expected "flannel", got "bridge"`}},
		{"cniVersion number", `{"name":"fl","type":"flannel","cniVersion":1}`, []string{`field "cniVersion": must be a string, got a number 1`}},
		{"subnetFile relative", `{"name":"fl","type":"flannel","subnetFile":"subnet.env"}`, []string{`field "subnetFile": "subnet.env" is not an absolute path`}},
		{"subnetFile empty", `{"name":"fl","type":"flannel","subnetFile":""}`, []string{`field "subnetFile": "" is not an absolute path`}},
		{"subnetFile bool", `{"name":"fl","type":"flannel","subnetFile":true}`, []string{`field "subnetFile": must be a string, got a boolean true`}},
		{"dataDir relative", `{"name":"fl","type":"flannel","dataDir":"data"}`, []string{`field "dataDir": "data" is not an absolute path`}},
		{"runtimeConfig string", `{"name":"fl","type":"flannel","runtimeConfig":"x"}`, []string{`field "runtimeConfig": must be an object, got a string "x"`}},
		{"delegate null", `{"name":"fl","type":"flannel","delegate":null}`, []string{`field "delegate": must be an object, got null`}},
		{"delegate array", `{"name":"fl","type":"flannel","delegate":[]}`, []string{`field "delegate": must be an object, got an array []`}},
		{"delegate name", `{"name":"fl","type":"flannel","delegate":{"name":"other"}}`, []string{`field "delegate.name": must not be set`}},
		{"delegate ipam", `{"name":"fl","type":"flannel","delegate":{"ipam":{"type":"static"}}}`, []string{`field "delegate.ipam": must not be set`}},
		{"delegate type number", `{"name":"fl","type":"flannel","delegate":{"type":5}}`, []string{`field "delegate.type": must be a string, got a number 5`}},
		{"delegate type empty", `{"name":"fl","type":"flannel","delegate":{"type":""}}`, []string{`field "delegate.type": must not be empty`}},
		{"delegate ipMasq string", `{"name":"fl","type":"flannel","delegate":{"ipMasq":"true"}}`, []string{`field "delegate.ipMasq": must be a boolean, got a string "true"`}},
		{"delegate isDefaultGateway number", `{"name":"fl","type":"flannel","delegate":{"isDefaultGateway":1}}`, []string{`field "delegate.isDefaultGateway": must be a boolean, got a number 1`}},
		{"delegate isGateway null", `{"name":"fl","type":"flannel","delegate":{"isGateway":null}}`, []string{`field "delegate.isGateway": must be a boolean, got null`}},
		{"delegate hairpinMode string", `{"name":"fl","type":"flannel","delegate":{"hairpinMode":"on"}}`, []string{`field "delegate.hairpinMode": must be a boolean`}},
		{"delegate bridge number", `{"name":"fl","type":"flannel","delegate":{"bridge":0}}`, []string{`field "delegate.bridge": must be a string, got a number 0`}},
		{"delegate mtu string", `{"name":"fl","type":"flannel","delegate":{"mtu":"x"}}`, []string{`field "delegate.mtu": must be a number, got a string "x"`}},
		{"delegate mtu numeric string", `{"name":"fl","type":"flannel","delegate":{"mtu":"1400"}}`, []string{`field "delegate.mtu": must be a number, got a string "1400"`}},
		{"delegate mtu fraction", `{"name":"fl","type":"flannel","delegate":{"mtu":1400.5}}`, []string{`field "delegate.mtu": 1400.5 is not an integer`}},
		{"delegate mtu tiny fraction", `{"name":"fl","type":"flannel","delegate":{"mtu":1400.0000000000000001}}`, []string{`field "delegate.mtu": 1400.0000000000000001 is not an integer`}},
		{"delegate mtu zero", `{"name":"fl","type":"flannel","delegate":{"mtu":0}}`, []string{`field "delegate.mtu": 0 is out of range: expected 68 to 65535`}},
		{"delegate mtu negative", `{"name":"fl","type":"flannel","delegate":{"mtu":-1400}}`, []string{`field "delegate.mtu": -1400 is out of range`}},
		{"delegate mtu too large", `{"name":"fl","type":"flannel","delegate":{"mtu":65536}}`, []string{`field "delegate.mtu": 65536 is out of range`}},
		{"delegate mtu overflow", `{"name":"fl","type":"flannel","delegate":{"mtu":1e400}}`, []string{`field "delegate.mtu": invalid number 1e400`}},
		{"delegate mtu object", `{"name":"fl","type":"flannel","delegate":{"mtu":{}}}`, []string{`field "delegate.mtu": must be a number, got an object {}`}},
		{"delegate vlan too large", `{"name":"fl","type":"flannel","delegate":{"vlan":4095}}`, []string{`field "delegate.vlan": 4095 is out of range: expected 0 to 4094`}},
		{"delegate cniVersion differs", `{"name":"fl","type":"flannel","cniVersion":"1.0.0","delegate":{"cniVersion":"0.4.0"}}`, []string{`field "delegate.cniVersion": "0.4.0" differs from the network's cniVersion "1.0.0"`}},
		{"delegate runtimeConfig array", `{"name":"fl","type":"flannel","delegate":{"runtimeConfig":[]}}`, []string{`field "delegate.runtimeConfig": must be an object`}},
		{"ipam string", `{"name":"fl","type":"flannel","ipam":"host-local"}`, []string{`field "ipam": must be an object, got a string "host-local"`}},
		{"ipam ranges", `{"name":"fl","type":"flannel","ipam":{"ranges":[]}}`, []string{`field "ipam.ranges": must not be set`}},
		{"ipam subnet", `{"name":"fl","type":"flannel","ipam":{"subnet":"10.0.0.0/24"}}`, []string{`field "ipam.subnet": must not be set`}},
		{"ipam type number", `{"name":"fl","type":"flannel","ipam":{"type":1}}`, []string{`field "ipam.type": must be a string`}},
		{"ipam type empty", `{"name":"fl","type":"flannel","ipam":{"type":""}}`, []string{`field "ipam.type": must not be empty`}},
		{"ipam dataDir number", `{"name":"fl","type":"flannel","ipam":{"dataDir":1}}`, []string{`field "ipam.dataDir": must be a string`}},
		{"ipam routes object", `{"name":"fl","type":"flannel","ipam":{"routes":{}}}`, []string{`field "ipam.routes": must be an array, got an object {}`}},
		{"ipam route not object", `{"name":"fl","type":"flannel","ipam":{"routes":["10.0.0.0/8"]}}`, []string{`field "ipam.routes[0]": must be an object`}},
		{"ipam route without dst", `{"name":"fl","type":"flannel","ipam":{"routes":[{"gw":"10.0.0.1"}]}}`, []string{`field "ipam.routes[0].dst": missing`}},
		{"ipam route bad dst", `{"name":"fl","type":"flannel","ipam":{"routes":[{"dst":"0.0.0.0/0"},{"dst":"10.0.0.0"}]}}`, []string{`field "ipam.routes[1].dst": invalid CIDR "10.0.0.0"`}},
		{"ipam route bad gw", `{"name":"fl","type":"flannel","ipam":{"routes":[{"dst":"0.0.0.0/0","gw":"x"}]}}`, []string{`field "ipam.routes[0].gw": invalid IP address "x"`}},
		{"ipam route gw family", `{"name":"fl","type":"flannel","ipam":{"routes":[{"dst":"::/0","gw":"10.0.0.1"}]}}`, []string{`field "ipam.routes[0].gw": gateway 10.0.0.1 and destination ::/0 are of different address families`}},
		{"top-level key case", `{"Name":"fl","name":"fl","type":"flannel"}`, []string{`field "Name": invalid key, spell it "name"`}},
		{"delegate mtu key case", `{"name":"fl","type":"flannel","delegate":{"MTU":"x"}}`, []string{`field "delegate.MTU": invalid key, spell it "mtu"`}},
		{"delegate name key case", `{"name":"fl","type":"flannel","delegate":{"NAME":"other"}}`, []string{`field "delegate.NAME": invalid key, spell it "name"`}},
		{"delegate ipam key case", `{"name":"fl","type":"flannel","delegate":{"Ipam":{}}}`, []string{`field "delegate.Ipam": invalid key, spell it "ipam"`}},
		{"delegate ipMasq key case", `{"name":"fl","type":"flannel","delegate":{"IPMasq":true}}`, []string{`field "delegate.IPMasq": invalid key, spell it "ipMasq"`}},
		{"ipam ranges key case", `{"name":"fl","type":"flannel","ipam":{"Ranges":[]}}`, []string{`field "ipam.Ranges": invalid key, spell it "ranges"`}},
		{"ipam route key case", `{"name":"fl","type":"flannel","ipam":{"routes":[{"Dst":"0.0.0.0/0"}]}}`, []string{`field "ipam.routes[0].Dst": invalid key, spell it "dst"`}},
		{"long value is cut", `{"name":"fl","type":"flannel","delegate":{"ipMasq":"` + strings.Repeat("x", 500) + `"}}`, []string{`xxx...`}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render([]byte(tt.conf), readSubnetEnv(envIPv4))
			if err == nil {
				t.Fatalf("Render() = %s, want an error", got)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Render() error %q does not wrap ErrInvalidConfig", err)
			}
			for _, fragment := range tt.want {
				if !strings.Contains(err.Error(), fragment) {
					t.Errorf("Render() error %q does not contain %q", err, fragment)
				}
			}
			if len(err.Error()) > 400 {
				t.Errorf("Render() error is %d bytes long, want at most 400", len(err.Error()))
			}
		})
	}
}

func TestRenderMissingSubnetFile(t *testing.T) {
	conf := `{"name":"fl","type":"flannel","subnetFile":"/run/flannel/gone.env"}`
	_, err := Render([]byte(conf), os.ReadFile)
	if err == nil {
		t.Fatal("Render() with a missing subnet file succeeded, want an error")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Render() error %q does not wrap fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "/run/flannel/gone.env") {
		t.Errorf("Render() error %q does not name the path /run/flannel/gone.env", err)
	}

	_, err = Render([]byte(`{"name":"fl","type":"flannel"}`), readFiles(nil))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), DefaultSubnetFile) {
		t.Errorf("Render() error %q, want one that wraps fs.ErrNotExist and names %s", err, DefaultSubnetFile)
	}
}

func TestRenderNilReadFile(t *testing.T) {
	_, err := Render([]byte(`{"name":"fl","type":"flannel"}`), nil)
	if err == nil || !strings.Contains(err.Error(), DefaultSubnetFile) {
		t.Errorf("Render() with a nil readFile error = %v, want one that names %s", err, DefaultSubnetFile)
	}
}

func TestRenderInvalidSubnetFile(t *testing.T) {
	env := "FLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
	_, err := Render([]byte(`{"name":"fl","type":"flannel"}`), readSubnetEnv(env))
	if !errors.Is(err, ErrInvalidSubnetEnv) {
		t.Fatalf("Render() error = %v, want one that wraps ErrInvalidSubnetEnv", err)
	}
	for _, fragment := range []string{DefaultSubnetFile, `network "fl"`, "missing FLANNEL_NETWORK"} {
		if !strings.Contains(err.Error(), fragment) {
			t.Errorf("Render() error %q does not contain %q", err, fragment)
		}
	}
}

func TestRenderDelegateInvalidEnv(t *testing.T) {
	valid := SubnetEnv{
		Networks: prefixes("10.1.0.0/16"),
		Subnet:   netip.MustParsePrefix("10.1.17.1/24"),
		MTU:      1450,
	}
	tests := []struct {
		name string
		edit func(*SubnetEnv)
		want string
	}{
		{"zero", func(e *SubnetEnv) { *e = SubnetEnv{} }, "neither an IPv4 nor an IPv6 subnet"},
		{"no network", func(e *SubnetEnv) { e.Networks = nil }, "IPv4 subnet 10.1.17.1/24 has no network"},
		{"no ipv6 network", func(e *SubnetEnv) { e.IPv6Subnet = netip.MustParsePrefix("fd00::/64") }, "IPv6 subnet fd00::/64 has no network"},
		{"zero network", func(e *SubnetEnv) { e.Networks = []netip.Prefix{{}} }, "zero prefix"},
		{"mtu zero", func(e *SubnetEnv) { e.MTU = 0 }, "MTU 0 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := valid
			tt.edit(&env)
			_, err := RenderDelegate(Config{Name: "fl"}, env)
			if !errors.Is(err, ErrInvalidSubnetEnv) {
				t.Fatalf("RenderDelegate() error = %v, want one that wraps ErrInvalidSubnetEnv", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("RenderDelegate() error %q does not contain %q", err, tt.want)
			}
		})
	}

	if _, err := RenderDelegate(Config{}, valid); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("RenderDelegate() with an empty name error = %v, want one that wraps ErrInvalidConfig", err)
	}
}

// TestRenderDoesNotChangeConfig checks that RenderDelegate leaves the
// caller's Config as it was, so one Config can be rendered twice.
func TestRenderDoesNotChangeConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"name":"fl","type":"flannel","delegate":{"bridge":"fl0"},"ipam":{"routes":[]}}`))
	if err != nil {
		t.Fatalf("ParseConfig() error = %v", err)
	}
	env, err := ParseSubnetEnv([]byte(envIPv4))
	if err != nil {
		t.Fatalf("ParseSubnetEnv() error = %v", err)
	}

	first, err := RenderDelegate(cfg, env)
	if err != nil {
		t.Fatalf("RenderDelegate() error = %v", err)
	}
	if len(cfg.Delegate) != 1 || len(cfg.IPAM) != 1 {
		t.Errorf("RenderDelegate() changed the config: delegate %v, ipam %v", cfg.Delegate, cfg.IPAM)
	}
	second, err := RenderDelegate(cfg, env)
	if err != nil {
		t.Fatalf("second RenderDelegate() error = %v", err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("RenderDelegate() output differs between two calls:\n%s\n%s", first, second)
	}
}

// compareGolden compares got with testdata/golden/name, or rewrites the file
// when the test runs with -update.
func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatalf("write golden file: %v", err)
		}
		return
	}

	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file: %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)+"\n"); diff != "" {
		t.Errorf("rendered config differs from %s (-want +got):\n%s", path, diff)
	}
}
