package kvmnet

import "net/netip"

// Result is the network set-up of one VM: what `up` created and what the
// hypervisor and the guest need to use it.
type Result struct {
	// VM is the VM id that owns every object listed here.
	VM string `json:"vm"`
	// Interfaces lists one entry per attachment, in the order of the net list.
	Interfaces []Interface `json:"interfaces"`
	// DNS is the guest's resolver configuration, possibly empty.
	DNS DNS `json:"dns"`
}

// Interface is one guest NIC and the host device behind it.
type Interface struct {
	// Network is the name of the CNI network the interface is attached to.
	Network string `json:"network"`
	// Type is the network's CNI plugin type: ptp, bridge, macvlan or flannel.
	Type string `json:"type"`
	// HostDevice is the name of the tap or macvtap link on the host.
	HostDevice string `json:"hostDevice"`
	// DevicePath is the character device a hypervisor opens for a macvtap
	// (for example /dev/tap12). Empty for a tap, which is opened by name.
	DevicePath string `json:"devicePath,omitempty"`
	// Bridge is the bridge the tap is enslaved to, for bridge networks.
	Bridge string `json:"bridge,omitempty"`
	// GuestDevice is the interface name inside the guest: eth0, eth1, ...
	GuestDevice string `json:"guestDevice"`
	// MAC is the guest NIC's hardware address.
	MAC string `json:"mac"`
	// MTU is the link MTU in bytes, the same on the host device and in the guest.
	MTU int `json:"mtu"`
	// Queues is the number of tap queues: 1 unless multiqueue was requested.
	Queues int `json:"queues"`
	// VnetHdr reports whether the tap was created with IFF_VNET_HDR.
	VnetHdr bool `json:"vnetHdr"`
	// Addresses are the guest's addresses with the subnet's prefix length.
	Addresses []netip.Prefix `json:"addresses"`
	// Gateways are the gateway addresses of Addresses, one per address family at most.
	Gateways []netip.Addr `json:"gateways"`
	// Routes are the routes the guest installs on this interface.
	Routes []Route `json:"routes"`
	// Ports are the host ports forwarded to the guest on this interface.
	Ports []Port `json:"ports,omitempty"`
}

// Port is a forwarded range of host ports. One port has HostPortEnd equal
// to HostPort.
type Port struct {
	// Proto is "tcp" or "udp".
	Proto string `json:"proto"`
	// HostIP is the host address the forward listens on; zero for every
	// host address of GuestIP's family.
	HostIP      netip.Addr `json:"hostIP,omitzero"`
	HostPort    uint16     `json:"hostPort"`
	HostPortEnd uint16     `json:"hostPortEnd"`
	GuestIP     netip.Addr `json:"guestIP"`
	// GuestPort is the guest port that HostPort maps to; the rest of the
	// range maps to the ports that follow it.
	GuestPort uint16 `json:"guestPort"`
}

// Route is one guest route. A zero GW means the destination is on-link.
type Route struct {
	Dst netip.Prefix `json:"dst"`
	GW  netip.Addr   `json:"gw,omitzero"`
}

// DNS is the guest's resolver configuration.
type DNS struct {
	Nameservers []netip.Addr `json:"nameservers,omitempty"`
	Domain      string       `json:"domain,omitempty"`
	Search      []string     `json:"search,omitempty"`
	Options     []string     `json:"options,omitempty"`
	// Source names where the configuration came from: a network name, or
	// "--dns" when given on the command line.
	Source string `json:"source,omitempty"`
	// Ignored lists later networks whose IPAM result also carried DNS
	// settings that were not used.
	Ignored []string `json:"ignored,omitempty"`
	// ResolvConf is the resolv.conf content for the guest.
	ResolvConf string `json:"resolvConf"`
}

// DefaultRoute returns the interface that carries the guest's default route
// for the given address family (4 or 6), or nil when there is none.
func (r *Result) DefaultRoute(family int) *Interface {
	for i := range r.Interfaces {
		for _, rt := range r.Interfaces[i].Routes {
			if rt.Dst.Bits() == 0 && ((family == 4) == rt.Dst.Addr().Is4()) {
				return &r.Interfaces[i]
			}
		}
	}
	return nil
}
