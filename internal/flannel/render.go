package flannel

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
)

// Render renders the CNI network config of type flannel in conf as the
// network config of its delegate, which is a bridge network by default.
//
// It parses conf with ParseConfig, reads the subnet file the config names
// (DefaultSubnetFile unless "subnetFile" is set) through readFile, parses it
// with ParseSubnetEnv and returns the result of RenderDelegate. readFile is
// usually os.ReadFile; tests pass a fake. The error of a failed read names the
// path and wraps readFile's error, so errors.Is(err, fs.ErrNotExist) works.
func Render(conf []byte, readFile func(path string) ([]byte, error)) ([]byte, error) {
	cfg, err := ParseConfig(conf)
	if err != nil {
		return nil, fmt.Errorf("render flannel network: %w", err)
	}
	if readFile == nil {
		return nil, fmt.Errorf("render flannel network %q: no function to read %s", cfg.Name, cfg.SubnetFile)
	}

	data, err := readFile(cfg.SubnetFile)
	if err != nil {
		return nil, fmt.Errorf("read flannel subnet file %s for network %q: %w", cfg.SubnetFile, cfg.Name, err)
	}
	env, err := ParseSubnetEnv(data)
	if err != nil {
		return nil, fmt.Errorf("parse flannel subnet file %s for network %q: %w", cfg.SubnetFile, cfg.Name, err)
	}

	rendered, err := RenderDelegate(cfg, env)
	if err != nil {
		return nil, fmt.Errorf("render flannel network %q: %w", cfg.Name, err)
	}
	return rendered, nil
}

// RenderDelegate returns the delegate's network config as indented JSON with
// sorted keys, so the same input always gives the same bytes. cfg is expected
// to come from ParseConfig, which checks the delegate's values.
//
// It starts from the delegate keys that cfg sets, passed through untouched
// except for the integer forms of "mtu" and "vlan", and adds the keys the
// delegate does not set:
//   - "type": "bridge";
//   - "ipMasq": the opposite of env.IPMasq, because the delegate must
//     masquerade only when flanneld does not;
//   - "mtu": env.MTU;
//   - for a bridge delegate, "isGateway": true and "isDefaultGateway": false;
//   - "runtimeConfig" from cfg.RuntimeConfig, when set.
//
// "name" always comes from cfg, and so does "cniVersion" when cfg sets one.
// "ipam" starts from the keys of cfg.IPAM and gets:
//   - "type": "host-local" unless cfg.IPAM sets a type;
//   - "ranges": one range set per address family with the masked subnet,
//     IPv4 first;
//   - "routes": the routes of cfg.IPAM, then one route per flannel network;
//   - "dataDir": cfg.DataDir, unless it is empty or cfg.IPAM sets one.
func RenderDelegate(cfg Config, env SubnetEnv) ([]byte, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("%w: network name is empty", ErrInvalidConfig)
	}
	if err := checkEnv(env); err != nil {
		return nil, err
	}

	delegate := maps.Clone(cfg.Delegate)
	if delegate == nil {
		delegate = make(map[string]json.RawMessage)
	}

	// The name and cniVersion come from the flannel network itself.
	delegate["name"] = jsonString(cfg.Name)
	if cfg.CNIVersion != "" {
		delegate["cniVersion"] = jsonString(cfg.CNIVersion)
	}

	// Defaults for the keys that the delegate does not set.
	setDefault(delegate, "type", jsonString("bridge"))
	setDefault(delegate, "ipMasq", jsonBool(!env.IPMasq))
	setDefault(delegate, "mtu", json.RawMessage(strconv.Itoa(env.MTU)))

	// The type is written back in plain form, so a reader that compares the
	// JSON text sees "bridge" even when the config wrote "bridg\u0065".
	var delegateType string
	if err := json.Unmarshal(delegate["type"], &delegateType); err != nil {
		return nil, fmt.Errorf(`%w: field "delegate.type": %w`, ErrInvalidConfig, err)
	}
	delegate["type"] = jsonString(delegateType)
	if delegateType == "bridge" {
		setDefault(delegate, "isGateway", jsonBool(true))
		setDefault(delegate, "isDefaultGateway", jsonBool(false))
	}
	if cfg.RuntimeConfig != nil {
		setDefault(delegate, "runtimeConfig", cfg.RuntimeConfig)
	}

	ipam, err := renderIPAM(cfg, env)
	if err != nil {
		return nil, err
	}
	delegate["ipam"] = ipam

	rendered, err := json.MarshalIndent(delegate, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode delegate config: %w", err)
	}
	return rendered, nil
}

// ipamRange is one host-local range.
type ipamRange struct {
	Subnet netip.Prefix `json:"subnet"`
}

// ipamRoute is one route that flannel adds to the IPAM config.
type ipamRoute struct {
	Dst netip.Prefix `json:"dst"`
}

// renderIPAM returns the delegate's "ipam" object.
func renderIPAM(cfg Config, env SubnetEnv) (json.RawMessage, error) {
	ipam := maps.Clone(cfg.IPAM)
	if ipam == nil {
		ipam = make(map[string]json.RawMessage)
	}
	setDefault(ipam, "type", jsonString("host-local"))
	if cfg.DataDir != "" {
		setDefault(ipam, "dataDir", jsonString(cfg.DataDir))
	}

	// One range set per address family, so the guest gets one address of each.
	var ranges [][]ipamRange
	if env.HasIPv4() {
		ranges = append(ranges, []ipamRange{{Subnet: env.Subnet.Masked()}})
	}
	if env.HasIPv6() {
		ranges = append(ranges, []ipamRange{{Subnet: env.IPv6Subnet.Masked()}})
	}
	encoded, err := json.Marshal(ranges)
	if err != nil {
		return nil, fmt.Errorf("encode ipam ranges: %w", err)
	}
	ipam["ranges"] = encoded

	// The routes of the config come first, then the flannel networks.
	var routes []json.RawMessage
	if raw, ok := ipam["routes"]; ok {
		if err := json.Unmarshal(raw, &routes); err != nil {
			return nil, fmt.Errorf(`decode field "ipam.routes": %w`, err)
		}
	}
	for _, network := range slices.Concat(env.Networks, env.IPv6Networks) {
		route, err := json.Marshal(ipamRoute{Dst: network.Masked()})
		if err != nil {
			return nil, fmt.Errorf("encode route to %s: %w", network, err)
		}
		routes = append(routes, route)
	}
	if encoded, err = json.Marshal(routes); err != nil {
		return nil, fmt.Errorf("encode ipam routes: %w", err)
	}
	ipam["routes"] = encoded

	rendered, err := json.Marshal(ipam)
	if err != nil {
		return nil, fmt.Errorf("encode ipam config: %w", err)
	}
	return rendered, nil
}

// checkEnv checks the parts of env that rendering relies on, for a SubnetEnv
// that was built by hand rather than by ParseSubnetEnv.
func checkEnv(env SubnetEnv) error {
	if !env.HasIPv4() && !env.HasIPv6() {
		return fmt.Errorf("%w: neither an IPv4 nor an IPv6 subnet is set", ErrInvalidSubnetEnv)
	}
	if env.HasIPv4() && len(env.Networks) == 0 {
		return fmt.Errorf("%w: IPv4 subnet %s has no network", ErrInvalidSubnetEnv, env.Subnet)
	}
	if env.HasIPv6() && len(env.IPv6Networks) == 0 {
		return fmt.Errorf("%w: IPv6 subnet %s has no network", ErrInvalidSubnetEnv, env.IPv6Subnet)
	}
	if env.MTU < MinMTU || env.MTU > MaxMTU {
		return fmt.Errorf("%w: MTU %d is out of range: expected %d to %d", ErrInvalidSubnetEnv, env.MTU, MinMTU, MaxMTU)
	}
	for _, network := range slices.Concat(env.Networks, env.IPv6Networks) {
		if !network.IsValid() {
			return fmt.Errorf("%w: a flannel network is the zero prefix", ErrInvalidSubnetEnv)
		}
	}
	return nil
}

// setDefault sets key to value unless object already has key.
func setDefault(object map[string]json.RawMessage, key string, value json.RawMessage) {
	if _, ok := object[key]; !ok {
		object[key] = value
	}
}

func jsonString(s string) json.RawMessage {
	// json.Marshal returns no error for a string: it replaces invalid UTF-8.
	encoded, _ := json.Marshal(s)
	return encoded
}

func jsonBool(b bool) json.RawMessage {
	if b {
		return json.RawMessage("true")
	}
	return json.RawMessage("false")
}
