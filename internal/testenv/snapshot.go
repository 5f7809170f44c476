package testenv

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/internal/netns"
)

// Link is one link of a Snapshot.
type Link struct {
	Name string
	// Type is the link kind ("bridge", "veth", ...), or "tap" and "tun"
	// for the two modes of a tun device, or the link type for links
	// without a kind, such as "loopback".
	Type   string
	Master string
	MTU    int
	Alias  string
}

// Snapshot is the network state of a namespace that kvmnet may change.
type Snapshot struct {
	// Links are sorted by name.
	Links []Link
	// Addrs are "<link> <address>/<prefix length>", sorted.
	Addrs []string
	// Routes are the lines of `ip -4 route show table all` and
	// `ip -6 route show table all`, sorted, without the "linkdown" flag.
	// That flag shows the carrier of the link, which the kernel changes by
	// itself, for example on a bridge whose last port left.
	Routes []string
	// Ruleset is the output of `nft list ruleset`.
	Ruleset string
	// Sysctls maps the names in Sysctls to their values.
	Sysctls map[string]string
}

// Sysctls are the sysctls a Snapshot records, as paths under /proc/sys.
var Sysctls = []string{
	"net/ipv4/ip_forward",
	"net/ipv6/conf/all/forwarding",
	"net/ipv4/conf/all/proxy_arp",
	"net/ipv4/conf/all/route_localnet",
	"net/ipv4/conf/all/rp_filter",
}

// ForwardingSysctls are the global sysctls that kvmnet turns on and leaves
// on, as the CNI ptp and bridge plugins do, because other users of the
// namespace may rely on them.
var ForwardingSysctls = []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"}

// ipLink is the part of `ip -json -details link show` that Snapshot reads.
type ipLink struct {
	Name     string `json:"ifname"`
	MTU      int    `json:"mtu"`
	Master   string `json:"master"`
	Alias    string `json:"ifalias"`
	LinkType string `json:"link_type"`
	Info     struct {
		Kind string `json:"info_kind"`
		Data struct {
			Type string `json:"type"`
		} `json:"info_data"`
	} `json:"linkinfo"`
	AddrInfo []struct {
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
	} `json:"addr_info"`
}

// Snapshot records the links, addresses, routes, nftables ruleset and
// Sysctls of the namespace.
func (ns *NS) Snapshot(t testing.TB) Snapshot {
	t.Helper()
	var s Snapshot
	var links []ipLink
	if err := json.Unmarshal([]byte(ns.Run(t, "ip", "-json", "-details", "link", "show")), &links); err != nil {
		t.Fatalf("parse ip link output: %v", err)
	}
	for _, l := range links {
		s.Links = append(s.Links, Link{Name: l.Name, Type: linkType(l), Master: l.Master, MTU: l.MTU, Alias: l.Alias})
	}
	slices.SortFunc(s.Links, func(a, b Link) int { return strings.Compare(a.Name, b.Name) })

	var addrs []ipLink
	if err := json.Unmarshal([]byte(ns.Run(t, "ip", "-json", "address", "show")), &addrs); err != nil {
		t.Fatalf("parse ip address output: %v", err)
	}
	for _, l := range addrs {
		for _, a := range l.AddrInfo {
			s.Addrs = append(s.Addrs, fmt.Sprintf("%s %s/%d", l.Name, a.Local, a.PrefixLen))
		}
	}
	slices.Sort(s.Addrs)

	for _, family := range []string{"-4", "-6"} {
		for _, line := range nonEmptyLines(ns.Run(t, "ip", family, "route", "show", "table", "all")) {
			s.Routes = append(s.Routes, strings.Replace(line, " linkdown", "", 1))
		}
	}
	slices.Sort(s.Routes)

	s.Ruleset = ns.Run(t, "nft", "list", "ruleset")
	s.Sysctls = ns.readSysctls(t)
	return s
}

func linkType(l ipLink) string {
	switch {
	case l.Info.Kind == "tun" && l.Info.Data.Type != "":
		return l.Info.Data.Type
	case l.Info.Kind != "":
		return l.Info.Kind
	}
	return l.LinkType
}

// readSysctls reads Sysctls on a thread inside the namespace, because
// /proc/sys/net shows the values of the reading thread's namespace.
func (ns *NS) readSysctls(t testing.TB) map[string]string {
	t.Helper()
	values := map[string]string{}
	err := netns.Do(ns.Path, func() error {
		for _, name := range Sysctls {
			data, err := os.ReadFile(filepath.Join("/proc/sys", name))
			if err != nil {
				return fmt.Errorf("read sysctl %s: %w", name, err)
			}
			values[name] = strings.TrimSpace(string(data))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return values
}

// Without returns a copy of s without the named sysctls, for comparisons
// that allow those to differ.
func (s Snapshot) Without(sysctls ...string) Snapshot {
	out := s
	out.Sysctls = maps.Clone(s.Sysctls)
	for _, name := range sysctls {
		delete(out.Sysctls, name)
	}
	return out
}

// Lines returns s as sorted text lines, each starting with its section.
func (s Snapshot) Lines() []string {
	var lines []string
	for _, l := range s.Links {
		lines = append(lines, fmt.Sprintf("link %s type=%s master=%s mtu=%d alias=%q", l.Name, l.Type, l.Master, l.MTU, l.Alias))
	}
	for _, a := range s.Addrs {
		lines = append(lines, "addr "+a)
	}
	for _, r := range s.Routes {
		lines = append(lines, "route "+r)
	}
	for _, r := range nonEmptyLines(s.Ruleset) {
		lines = append(lines, "nft "+r)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Sysctls)) {
		lines = append(lines, "sysctl "+name+"="+s.Sysctls[name])
	}
	return lines
}

// Diff returns the lines of a missing from b, prefixed with "-", and the
// lines of b missing from a, prefixed with "+", or "" when a and b are equal.
// Ruleset lines are compared as a multiset, so the diff names changed rules
// but not their position.
func Diff(a, b Snapshot) string {
	count := map[string]int{}
	for _, l := range a.Lines() {
		count[l]++
	}
	for _, l := range b.Lines() {
		count[l]--
	}
	var out []string
	for _, l := range a.Lines() {
		if count[l] > 0 {
			out = append(out, "-"+l)
			count[l]--
		}
	}
	for _, l := range b.Lines() {
		if count[l] < 0 {
			out = append(out, "+"+l)
			count[l]++
		}
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}

// LinksOfType returns the links of s whose Type is typ.
func (s Snapshot) LinksOfType(typ string) []Link {
	var out []Link
	for _, l := range s.Links {
		if l.Type == typ {
			out = append(out, l)
		}
	}
	return out
}

// Link returns the link called name, or false.
func (s Snapshot) Link(name string) (Link, bool) {
	for _, l := range s.Links {
		if l.Name == name {
			return l, true
		}
	}
	return Link{}, false
}

// AddrsOf returns the addresses on link name, as "<address>/<prefix length>".
func (s Snapshot) AddrsOf(name string) []string {
	var out []string
	for _, a := range s.Addrs {
		if addr, ok := strings.CutPrefix(a, name+" "); ok {
			out = append(out, addr)
		}
	}
	return out
}

func nonEmptyLines(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimRight(l, " \t"); strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}
