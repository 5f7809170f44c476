package netconf

import (
	"fmt"
	"net/netip"
	"strings"
)

// Attachment is one entry of a parsed --net list.
type Attachment struct {
	// Network is the network name.
	Network string
	// Args are CNI args (K=V pairs) passed to the IPAM plugin, in order.
	Args [][2]string
}

// NetList is a parsed --net list.
type NetList struct {
	// None is set for "none": the VM gets no network.
	None bool
	// All is set for "all": every network from the net dirs, in file order.
	All bool
	// Attachments are the named entries, in order.
	Attachments []Attachment
}

// MaxNetListLen is the longest --net list kvmnet accepts, in bytes.
const MaxNetListLen = 64 << 10

// ParseNetList parses --net values with rkt's syntax: each value is a
// comma-separated list of "default", "none", "all", "NAME" or
// "NAME:K=V;K2=V2". No value means "default".
func ParseNetList(values []string) (NetList, error) {
	var list NetList
	total := 0
	seen := map[string]bool{}
	for _, value := range values {
		total += len(value)
		if total > MaxNetListLen {
			return NetList{}, fmt.Errorf("invalid --net list: longer than %d bytes", MaxNetListLen)
		}
		for _, item := range strings.Split(value, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				return NetList{}, fmt.Errorf("invalid --net value %q: empty entry; separate networks with single commas", value)
			}
			name, argText, hasArgs := strings.Cut(item, ":")
			switch name {
			case "none", "all":
				if hasArgs {
					return NetList{}, fmt.Errorf("invalid --net entry %q: %q takes no arguments", item, name)
				}
				if seen[name] {
					return NetList{}, fmt.Errorf("invalid --net list: %q given twice", name)
				}
				seen[name] = true
				list.None = list.None || name == "none"
				list.All = list.All || name == "all"
				continue
			}
			if err := ValidateName(name); err != nil {
				return NetList{}, fmt.Errorf("invalid --net entry %q: %w", item, err)
			}
			if seen[name] {
				return NetList{}, fmt.Errorf("invalid --net list: network %q given twice", name)
			}
			seen[name] = true
			att := Attachment{Network: name}
			if hasArgs {
				args, err := parseArgs(argText)
				if err != nil {
					return NetList{}, fmt.Errorf("invalid --net entry %q: %w", item, err)
				}
				att.Args = args
			}
			list.Attachments = append(list.Attachments, att)
		}
	}
	if list.None && (list.All || len(list.Attachments) > 0) {
		return NetList{}, fmt.Errorf("invalid --net list: \"none\" cannot be combined with other networks")
	}
	if !list.None && !list.All && len(list.Attachments) == 0 {
		list.Attachments = []Attachment{{Network: DefaultNetwork}}
	}
	return list, nil
}

func parseArgs(text string) ([][2]string, error) {
	var args [][2]string
	keys := map[string]bool{}
	for _, pair := range strings.Split(text, ";") {
		key, value, ok := strings.Cut(pair, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("argument %q is not K=V", pair)
		}
		if !isArgText(key) {
			return nil, fmt.Errorf("invalid argument name %q: use letters, digits and '_'", key)
		}
		if !isArgValue(value) {
			return nil, fmt.Errorf("invalid value %q of argument %s: use letters, digits and . : / _ -", value, key)
		}
		if keys[key] {
			return nil, fmt.Errorf("argument %s given twice", key)
		}
		if strings.EqualFold(key, "IP") {
			if key != "IP" {
				return nil, fmt.Errorf("argument %s: IPAM plugins read only the upper-case name IP", key)
			}
			if _, err := netip.ParseAddr(value); err != nil {
				return nil, fmt.Errorf("invalid value %q of argument IP: not an IP address", value)
			}
		}
		keys[key] = true
		args = append(args, [2]string{key, value})
	}
	return args, nil
}

func isArgText(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func isArgValue(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._:/-", c)) {
			return false
		}
	}
	return true
}

// Resolve turns a parsed net list into the networks to attach, in order.
// files are the networks from the net dirs and all includes the built-ins.
func Resolve(list NetList, files, all []*Network) ([]*Network, []Attachment, error) {
	byName := map[string]*Network{}
	for _, n := range all {
		byName[n.Name] = n
	}
	if list.None {
		return nil, nil, nil
	}
	var atts []Attachment
	if list.All {
		if len(files) == 0 {
			return nil, nil, fmt.Errorf("--net all selects the networks of the net dirs, and none is configured; add .conf files or name networks")
		}
		given := map[string]Attachment{}
		for _, a := range list.Attachments {
			given[a.Network] = a
		}
		for _, n := range files {
			a, ok := given[n.Name]
			if !ok {
				a = Attachment{Network: n.Name}
			}
			delete(given, n.Name)
			atts = append(atts, a)
		}
		for name := range given {
			return nil, nil, fmt.Errorf("--net all: network %q is not in the net dirs; built-ins and unknown names cannot take arguments with all", name)
		}
	} else {
		atts = list.Attachments
	}
	var nets []*Network
	for _, a := range atts {
		n, ok := byName[a.Network]
		if !ok {
			return nil, nil, fmt.Errorf("unknown network %q; known networks: %s", a.Network, knownNames(all))
		}
		if n.Err != nil {
			return nil, nil, n.Err
		}
		nets = append(nets, n)
	}
	return nets, atts, nil
}

func knownNames(all []*Network) string {
	var names []string
	for _, n := range all {
		names = append(names, n.Name)
	}
	return strings.Join(names, ", ")
}
