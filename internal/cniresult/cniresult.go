// Package cniresult turns a CNI result of any spec version (0.1.0 to 1.1.0)
// into the addresses, gateways, routes and DNS settings of one guest NIC.
package cniresult

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
)

// Address is one guest address and its gateway.
type Address struct {
	// Prefix is the guest address with the subnet's prefix length.
	Prefix netip.Prefix `json:"prefix"`
	// Gateway is the gateway from the result, or the subnet's first host
	// address when the result names none.
	Gateway netip.Addr `json:"gateway"`
}

// Route is a route from the result.
type Route struct {
	Dst netip.Prefix `json:"dst"`
	GW  netip.Addr   `json:"gw,omitzero"`
}

// DNS is the DNS section of a result.
type DNS struct {
	Nameservers []netip.Addr `json:"nameservers,omitempty"`
	Domain      string       `json:"domain,omitempty"`
	Search      []string     `json:"search,omitempty"`
	Options     []string     `json:"options,omitempty"`
}

// Empty reports whether d carries no setting.
func (d DNS) Empty() bool {
	return len(d.Nameservers) == 0 && d.Domain == "" && len(d.Search) == 0 && len(d.Options) == 0
}

// Result is a normalized IPAM result.
type Result struct {
	Addresses []Address `json:"addresses"`
	Routes    []Route   `json:"routes,omitempty"`
	DNS       DNS       `json:"dns,omitzero"`
}

// Parse decodes raw plugin output that claims spec version version (the
// result's own cniVersion wins when present).
func Parse(version string, raw []byte) (Result, error) {
	var probe struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return Result{}, fmt.Errorf("parse CNI result: %w", err)
	}
	if probe.CNIVersion != "" {
		version = probe.CNIVersion
	} else {
		// Older plugins omit cniVersion; the result then has the config's version.
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
			return Result{}, fmt.Errorf("parse CNI result: not a JSON object")
		}
		fields["cniVersion"], _ = json.Marshal(version)
		raw, _ = json.Marshal(fields)
	}
	res, err := create.Create(version, raw)
	if err != nil {
		return Result{}, fmt.Errorf("parse CNI result of version %q: %w", version, err)
	}
	return FromTypes(res)
}

// FromTypes normalizes a result decoded by the CNI library.
func FromTypes(res types.Result) (Result, error) {
	if res == nil {
		return Result{}, fmt.Errorf("empty CNI result")
	}
	current, err := types100.NewResultFromResult(res)
	if err != nil {
		return Result{}, fmt.Errorf("convert CNI result of version %s: %w", res.Version(), err)
	}
	var out Result
	for i, ip := range current.IPs {
		if ip == nil {
			return Result{}, fmt.Errorf("CNI result: ips[%d] is null", i)
		}
		prefix, ok := ipNetToPrefix(&ip.Address)
		if !ok {
			return Result{}, fmt.Errorf("CNI result: ips[%d] has invalid address %q", i, ip.Address.String())
		}
		addr := Address{Prefix: prefix}
		if gw, ok := netip.AddrFromSlice(ip.Gateway); ok && ip.Gateway != nil {
			gw = gw.Unmap()
			if gw.Is4() != prefix.Addr().Is4() {
				return Result{}, fmt.Errorf("CNI result: gateway %s of %s is of another address family", gw, prefix)
			}
			addr.Gateway = gw
		} else {
			addr.Gateway = FirstHost(prefix)
		}
		out.Addresses = append(out.Addresses, addr)
	}
	for i, r := range current.Routes {
		if r == nil {
			return Result{}, fmt.Errorf("CNI result: routes[%d] is null", i)
		}
		dst, ok := ipNetToPrefix(&r.Dst)
		if !ok {
			return Result{}, fmt.Errorf("CNI result: routes[%d] has invalid dst %q", i, r.Dst.String())
		}
		route := Route{Dst: dst.Masked()}
		if gw, ok := netip.AddrFromSlice(r.GW); ok && r.GW != nil {
			route.GW = gw.Unmap()
		}
		out.Routes = append(out.Routes, route)
	}
	for _, ns := range current.DNS.Nameservers {
		addr, err := netip.ParseAddr(ns)
		if err != nil {
			return Result{}, fmt.Errorf("CNI result: invalid DNS nameserver %q", ns)
		}
		out.DNS.Nameservers = append(out.DNS.Nameservers, addr)
	}
	out.DNS.Domain = current.DNS.Domain
	out.DNS.Search = current.DNS.Search
	out.DNS.Options = current.DNS.Options
	return out, nil
}

func ipNetToPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	ones, bits := n.Mask.Size()
	if bits == 0 || (addr.Is4() && bits != 32 && bits != 128) {
		return netip.Prefix{}, false
	}
	if addr.Is4() && bits == 128 {
		ones -= 96
	}
	p := netip.PrefixFrom(addr, ones)
	return p, p.IsValid()
}

// FirstHost returns the first address after the network address of p, the
// gateway that CNI's bridge plugin and host-local choose by default.
func FirstHost(p netip.Prefix) netip.Addr {
	return p.Masked().Addr().Next()
}

// Validate checks that r can be used for a guest: unicast addresses with a
// subnet around them, gateways and route gateways of the right family. An
// IPAM result that fails it must be released, never applied.
func (r Result) Validate() error {
	if len(r.Addresses) == 0 {
		return fmt.Errorf("result has no addresses")
	}
	for _, a := range r.Addresses {
		addr := a.Prefix.Addr()
		switch {
		case !addr.IsValid() || addr.IsUnspecified():
			return fmt.Errorf("guest address %s is unspecified", a.Prefix)
		case addr.IsLoopback(), addr.IsMulticast(), addr.IsLinkLocalUnicast(), addr.IsLinkLocalMulticast():
			return fmt.Errorf("guest address %s is not a global or private unicast address", a.Prefix)
		case a.Prefix.Bits() < 1 || a.Prefix.Bits() >= addr.BitLen():
			return fmt.Errorf("guest address %s: the prefix length must leave room for a subnet and a gateway", a.Prefix)
		}
		if addr.Is4() && a.Prefix.Bits() <= 30 {
			if addr == a.Prefix.Masked().Addr() {
				return fmt.Errorf("guest address %s is the network address of its subnet", a.Prefix)
			}
			if addr == lastAddr(a.Prefix) {
				return fmt.Errorf("guest address %s is the broadcast address of its subnet", a.Prefix)
			}
		}
		if a.Gateway == addr {
			return fmt.Errorf("guest address %s is also its gateway", a.Prefix)
		}
		if !a.Prefix.Contains(a.Gateway) {
			return fmt.Errorf("gateway %s is outside the guest subnet %s", a.Gateway, a.Prefix.Masked())
		}
	}
	for _, rt := range r.Routes {
		if rt.GW.IsValid() && rt.GW.Is4() != rt.Dst.Addr().Is4() {
			return fmt.Errorf("route %s has gateway %s of the other address family", rt.Dst, rt.GW)
		}
	}
	return nil
}

// lastAddr returns the last address of p, the IPv4 broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
