// Package netconf loads CNI network configurations for kvmnet: .conf and
// .conflist files from the net dirs, in file-name order, plus the built-in
// networks "default" and "default-restricted". It also parses the --net list.
package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
)

// MaxConfigSize is the largest network config file kvmnet reads, in bytes.
const MaxConfigSize = 1 << 20

// Built-in network names.
const (
	DefaultNetwork           = "default"
	DefaultRestrictedNetwork = "default-restricted"
)

// Network is one loaded network: the config of the plugin that gives the VM
// its device, with name and cniVersion filled in.
type Network struct {
	// Name is the CNI network name.
	Name string
	// Source is the file the network came from, or "built-in".
	Source string
	// Bytes is the plugin config as passed to IPAM, with name and cniVersion set.
	Bytes []byte
	// Conf holds the fields kvmnet reads from Bytes.
	Conf Conf
	// Err is the error that made the network's file unusable. When it is
	// set, the fields other than Name and Source are empty.
	Err error
	// Portmap reports that the conflist chains the portmap plugin.
	Portmap bool
	// chainedMappings are the portMappings of a chained portmap plugin.
	chainedMappings []PortMapping
}

// Conf is the part of a CNI plugin config that kvmnet understands.
type Conf struct {
	CNIVersion       string          `json:"cniVersion"`
	Name             string          `json:"name"`
	Type             string          `json:"type"`
	IPMasq           bool            `json:"ipMasq"`
	MTU              int             `json:"mtu"`
	Bridge           string          `json:"bridge"`
	IsGateway        bool            `json:"isGateway"`
	IsDefaultGateway bool            `json:"isDefaultGateway"`
	Master           string          `json:"master"`
	Mode             string          `json:"mode"`
	IPAM             IPAM            `json:"ipam"`
	DNS              json.RawMessage `json:"dns,omitempty"`
	// RuntimeConfig carries portMappings, here or in a chained portmap plugin.
	RuntimeConfig RuntimeConfig `json:"runtimeConfig"`
	// Kvmnet holds kvmnet's own options for the network.
	Kvmnet Options `json:"kvmnet"`
}

// Options are kvmnet's settings in the "kvmnet" object of a network config.
type Options struct {
	// AntiSpoof drops frames from the guest whose source MAC or IP is not
	// its own. Default true.
	AntiSpoof *bool `json:"antiSpoof,omitempty"`
	// MasqueradeIPv6 extends ipMasq to the guest's IPv6 addresses. Default false.
	MasqueradeIPv6 bool `json:"masqueradeIPv6,omitempty"`
	// TapOwner and TapGroup are the uid and gid that may open the network's
	// taps; they replace those of the request. Unset by default.
	TapOwner *int `json:"tapOwner,omitempty"`
	TapGroup *int `json:"tapGroup,omitempty"`
	// Queues is the number of tap queues (1 to 256) for the network's taps;
	// 0 keeps the request's.
	Queues int `json:"queues,omitempty"`
	// VnetHdr turns IFF_VNET_HDR on or off for the network's taps. Default on.
	VnetHdr *bool `json:"vnetHdr,omitempty"`
}

// RuntimeConfig is the CNI runtimeConfig of a network config.
type RuntimeConfig struct {
	PortMappings []PortMapping `json:"portMappings,omitempty"`
}

// PortMapping is one entry of the CNI portMappings capability.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// IPAM is the part of a CNI ipam section that kvmnet checks before calling
// the plugin.
type IPAM struct {
	Type   string  `json:"type"`
	Routes []Route `json:"routes"`
}

// Route is a route in an ipam section.
type Route struct {
	Dst string `json:"dst"`
	GW  string `json:"gw,omitempty"`
}

// SupportedTypes are the plugin types kvmnet can attach a VM to.
var SupportedTypes = []string{"ptp", "bridge", "macvlan", "flannel"}

// MaxMTU is the largest MTU kvmnet accepts; 68 is the smallest IPv4 allows.
const (
	MinMTU = 68
	MaxMTU = 65535
)

// Builtins returns the two built-in networks. Their host-local reservations
// live under ipamDataDir, a directory kvmnet owns, because no other CNI user
// allocates from them.
func Builtins(ipamDataDir string) []*Network {
	def := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ptp","ipMasq":true,`+
		`"ipam":{"type":"host-local","dataDir":%q,"subnet":"172.16.28.0/24","routes":[{"dst":"0.0.0.0/0"}]}}`,
		DefaultNetwork, ipamDataDir)
	restricted := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ptp","ipMasq":false,`+
		`"ipam":{"type":"host-local","dataDir":%q,"subnet":"172.31.0.0/16"}}`,
		DefaultRestrictedNetwork, ipamDataDir)
	var out []*Network
	for _, raw := range []string{def, restricted} {
		n, err := parsePlugin([]byte(raw), "built-in", "", "")
		if err != nil {
			panic("built-in network is invalid: " + err.Error()) // a bug in this file
		}
		out = append(out, n)
	}
	return out
}

// Load reads every .conf, .conflist and .json file of dirs (missing dirs are
// fine), in file-name order per directory, and returns them followed by the
// built-ins that no file overrides. A file that cannot be read or parsed,
// or that repeats the name of an earlier file, becomes a Network with Err
// set, so that it fails only the VMs that use it. Such a network is named
// after its "name" field, else its file name. Only an unreadable directory
// is an error.
func Load(dirs []string, ipamDataDir string) (files, all []*Network, err error) {
	seen := map[string]string{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read net dir %s: %w", dir, err)
		}
		var names []string
		for _, e := range entries {
			ext := filepath.Ext(e.Name())
			if !e.IsDir() && (ext == ".conf" || ext == ".conflist" || ext == ".json") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, name := range names {
			path := filepath.Join(dir, name)
			data, err := ReadFile(path)
			var n *Network
			if err == nil {
				n, err = Parse(data, path)
			}
			if err != nil {
				n = &Network{Name: guessName(data, name), Source: path, Err: err}
			}
			if prev, ok := seen[n.Name]; ok {
				n = &Network{Name: n.Name, Source: path, Err: fmt.Errorf("network %q is defined twice: in %s and in %s; rename or remove one", n.Name, prev, path)}
				for _, earlier := range files {
					if earlier.Name == n.Name && earlier.Err == nil {
						earlier.Err = n.Err
					}
				}
			}
			seen[n.Name] = path
			files = append(files, n)
		}
	}
	all = slices.Clone(files)
	for _, b := range Builtins(ipamDataDir) {
		if _, ok := seen[b.Name]; !ok {
			all = append(all, b)
		}
	}
	return files, all, nil
}

// guessName returns the "name" field of a config that failed to load, or
// its file name without the extension.
func guessName(data []byte, file string) string {
	var probe struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(data, &probe) == nil && ValidateName(probe.Name) == nil {
		return probe.Name
	}
	return strings.TrimSuffix(file, filepath.Ext(file))
}

// ReadFile reads a network config or flannel subnet file of at most
// MaxConfigSize bytes. Anything but
// a regular file (a FIFO would block forever) is rejected.
func ReadFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, info.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%s is larger than %d bytes; kvmnet reads at most that much", path, MaxConfigSize)
	}
	return data, nil
}

// Parse parses one .conf or .conflist document. source names it in errors.
func Parse(data []byte, source string) (*Network, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("parse network config %s: %w", source, err)
	}
	if _, ok := probe["plugins"]; !ok {
		return parsePlugin(data, source, "", "")
	}
	var list struct {
		CNIVersion string            `json:"cniVersion"`
		Name       string            `json:"name"`
		Plugins    []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("parse network config list %s: %w", source, err)
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("network config list %s has no plugins", source)
	}
	n, err := parsePlugin(list.Plugins[0], source, list.Name, list.CNIVersion)
	if err != nil {
		return nil, err
	}
	for i, raw := range list.Plugins[1:] {
		var p struct {
			Type          string        `json:"type"`
			RuntimeConfig RuntimeConfig `json:"runtimeConfig"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("parse plugin %d of %s: %w", i+2, source, err)
		}
		if p.Type != "portmap" {
			return nil, fmt.Errorf("network %q in %s chains plugin %q, which needs a container namespace; "+
				"kvmnet supports only portmap after the first plugin, remove %q from the list", n.Name, source, p.Type, p.Type)
		}
		n.Portmap = true
		n.chainedMappings = append(n.chainedMappings, p.RuntimeConfig.PortMappings...)
	}
	return n, nil
}

// parsePlugin parses a single plugin config. A conflist passes its own name
// and cniVersion, which replace the plugin's.
func parsePlugin(data []byte, source, listName, listVersion string) (*Network, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("parse network config %s: %w", source, err)
	}
	if fields == nil {
		return nil, fmt.Errorf("parse network config %s: null where a JSON object is required", source)
	}
	if listName != "" {
		fields["name"], _ = json.Marshal(listName)
	}
	if listVersion != "" {
		fields["cniVersion"], _ = json.Marshal(listVersion)
	}
	if _, ok := fields["cniVersion"]; !ok {
		fields["cniVersion"] = json.RawMessage(`"0.4.0"`)
	}
	normalized, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("parse network config %s: %w", source, err)
	}
	var conf Conf
	if err := json.Unmarshal(normalized, &conf); err != nil {
		return nil, fmt.Errorf("parse network config %s: %s", source, describeJSONError(err))
	}
	n := &Network{Name: conf.Name, Source: source, Bytes: normalized, Conf: conf}
	if err := n.validate(); err != nil {
		return nil, err
	}
	return n, nil
}

func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("field %q must be a JSON %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	}
	return err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "bool":
		return "boolean"
	case "int", "int64", "uint16", "float64":
		return "number"
	case "slice":
		return "array"
	case "struct", "map":
		return "object"
	}
	return goKind
}

// validate checks what can be checked before any kernel call.
func (n *Network) validate() error {
	c := n.Conf
	where := fmt.Sprintf("network %q (%s)", c.Name, n.Source)
	if c.Name == "" {
		return fmt.Errorf("network config %s has no name; add a \"name\" field", n.Source)
	}
	if err := ValidateName(c.Name); err != nil {
		return fmt.Errorf("%s: %w", n.Source, err)
	}
	if !slices.Contains(SupportedTypes, c.Type) {
		return fmt.Errorf("%s: unsupported type %q; use one of %s", where, c.Type, strings.Join(SupportedTypes, ", "))
	}
	if c.MTU != 0 && (c.MTU < MinMTU || c.MTU > MaxMTU) {
		return fmt.Errorf("%s: mtu %d is out of range %d..%d", where, c.MTU, MinMTU, MaxMTU)
	}
	for field, id := range map[string]*int{"kvmnet.tapOwner": c.Kvmnet.TapOwner, "kvmnet.tapGroup": c.Kvmnet.TapGroup} {
		if id != nil && (*id < 0 || *id > 4294967294) {
			return fmt.Errorf("%s: invalid %s %d: uids and gids are 0 to 4294967294", where, field, *id)
		}
	}
	if c.Kvmnet.Queues < 0 || c.Kvmnet.Queues > 256 {
		return fmt.Errorf("%s: invalid kvmnet.queues %d: use 1 to 256", where, c.Kvmnet.Queues)
	}
	if c.Type == "flannel" {
		return nil // rendered into a bridge network before use
	}
	if c.IPAM.Type == "" {
		return fmt.Errorf("%s: missing ipam type; kvmnet needs an IPAM plugin such as host-local", where)
	}
	if strings.ContainsAny(c.IPAM.Type, `/\`) || strings.HasPrefix(c.IPAM.Type, ".") {
		return fmt.Errorf("%s: invalid ipam type %q: must be a plugin name, not a path", where, c.IPAM.Type)
	}
	if c.Type == "bridge" && len(c.Bridge) > 15 {
		return fmt.Errorf("%s: bridge name %q is %d bytes, the kernel allows 15", where, c.Bridge, len(c.Bridge))
	}
	if c.Type == "macvlan" {
		if c.Master == "" {
			return fmt.Errorf("%s: macvlan needs a \"master\" link", where)
		}
		switch c.Mode {
		case "", "bridge", "private", "vepa", "passthru":
		default:
			return fmt.Errorf("%s: invalid macvlan mode %q; use bridge, private, vepa or passthru", where, c.Mode)
		}
	}
	if c.Type != "bridge" && c.IsDefaultGateway {
		return fmt.Errorf("%s: isDefaultGateway is supported for bridge networks only; add a 0.0.0.0/0 route to ipam.routes instead", where)
	}
	for _, r := range c.IPAM.Routes {
		if _, err := netip.ParsePrefix(r.Dst); err != nil {
			return fmt.Errorf("%s: invalid ipam route dst %q: %v", where, r.Dst, err)
		}
		if r.GW != "" {
			if _, err := netip.ParseAddr(r.GW); err != nil {
				return fmt.Errorf("%s: invalid ipam route gw %q: %v", where, r.GW, err)
			}
		}
	}
	if src := n.DefaultRouteSources(); len(src[4]) > 1 || len(src[6]) > 1 {
		both := append(src[4], src[6]...)
		return fmt.Errorf("%s: more than one default route: %s; keep one", where, strings.Join(both, " and "))
	}
	return nil
}

// PortMappings returns the CNI portMappings of the network's runtimeConfig
// and of a chained portmap plugin.
func (n *Network) PortMappings() []PortMapping {
	return append(append([]PortMapping(nil), n.Conf.RuntimeConfig.PortMappings...), n.chainedMappings...)
}

// AntiSpoof reports whether anti-spoofing is on for the network.
func (n *Network) AntiSpoof() bool {
	return n.Conf.Kvmnet.AntiSpoof == nil || *n.Conf.Kvmnet.AntiSpoof
}

// DefaultRouteSources lists, per address family (4 and 6), what in the config
// gives the guest a default route.
func (n *Network) DefaultRouteSources() map[int][]string {
	out := map[int][]string{}
	for _, r := range n.Conf.IPAM.Routes {
		p, err := netip.ParsePrefix(r.Dst)
		if err != nil || p.Bits() != 0 {
			continue
		}
		family := 6
		if p.Addr().Is4() {
			family = 4
		}
		desc := fmt.Sprintf("network %q ipam route %s", n.Name, r.Dst)
		if r.GW != "" {
			desc += " via " + r.GW
		}
		out[family] = append(out[family], desc)
	}
	if n.Conf.IsDefaultGateway {
		out[4] = append(out[4], fmt.Sprintf("network %q isDefaultGateway", n.Name))
	}
	return out
}

// ValidateName checks a network name as CNI does: letters, digits, '_', '.'
// and '-', starting with a letter or digit.
func ValidateName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("invalid network name %q: must be 1 to 128 bytes", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '.' || c == '-') {
			continue
		}
		return fmt.Errorf("invalid network name %q: character %q at byte %d; use [A-Za-z0-9][A-Za-z0-9_.-]*", name, c, i)
	}
	return nil
}
