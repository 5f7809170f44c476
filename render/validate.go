package render

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/kvmnet/kvmnet"
)

const (
	// maxLinkName is IFNAMSIZ minus the terminating NUL.
	maxLinkName = 15
	// maxQueues is the largest number of queues a Linux tap or macvtap
	// accepts (MAX_TAP_QUEUES in drivers/net/tun.c and include/linux/if_tap.h).
	maxQueues = 256
	// minMTU is the smallest MTU an IPv4 link may have (RFC 791).
	minMTU = 68
	maxMTU = 65535
	// maxHostname is the kernel's limit for a host name (__NEW_UTS_LEN).
	maxHostname = 64
	// maxDomain is the longest DNS name in text form, without a final dot.
	maxDomain = 253
)

// isNameByte reports whether b may appear in a link name, a QEMU device
// model or a resolver option. The set is stricter than what the kernel
// accepts, so that every output syntax can carry the name without quoting:
// no separators (',', '=', ':'), no quotes, no whitespace.
func isNameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
		b == '-' || b == '_' || b == '.'
}

// checkLinkName returns an error unless name is a link name that every
// output format can carry: 1 to 15 bytes of letters, digits, '-', '_' and '.'.
func checkLinkName(field, name string) error {
	if name == "" {
		return fmt.Errorf("%s is empty", field)
	}
	if len(name) > maxLinkName {
		return fmt.Errorf("%s %q is longer than %d bytes", field, name, maxLinkName)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("invalid %s %q", field, name)
	}
	for i := range len(name) {
		if !isNameByte(name[i]) {
			return fmt.Errorf("invalid %s %q: only letters, digits, '-', '_' and '.' are allowed", field, name)
		}
	}
	return nil
}

// parseMAC parses a guest NIC address. It must be a 6-byte unicast address
// other than all zeros, because a NIC cannot own a group address.
func parseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("invalid MAC address %q: want 6 hex bytes such as 02:00:00:00:00:01", s)
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("invalid MAC address %q: want 6 bytes, got %d", s, len(mac))
	}
	if mac[0]&1 != 0 {
		return nil, fmt.Errorf("invalid MAC address %q: multicast bit is set", s)
	}
	if string(mac) == "\x00\x00\x00\x00\x00\x00" {
		return nil, fmt.Errorf("invalid MAC address %q: all zeros", s)
	}
	return mac, nil
}

// queueCount returns the number of queues of a tap, reading 0 as 1.
func queueCount(queues int) (int, error) {
	if queues == 0 {
		return 1, nil
	}
	if queues < 0 || queues > maxQueues {
		return 0, fmt.Errorf("invalid queue count %d: want 1 to %d", queues, maxQueues)
	}
	return queues, nil
}

// checkMTU accepts 0, which means unknown and leaves the MTU out of every
// output, and any MTU from 68 to 65535 bytes.
func checkMTU(mtu int) error {
	if mtu == 0 || mtu >= minMTU && mtu <= maxMTU {
		return nil
	}
	return fmt.Errorf("invalid MTU %d: want %d to %d bytes", mtu, minMTU, maxMTU)
}

// checkDevicePath returns an error unless path is an absolute path that
// needs no quoting in any output: letters, digits, '/', '-', '_' and '.'.
func checkDevicePath(path string) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("invalid device path %q: not absolute", path)
	}
	if len(path) > 4096 {
		return fmt.Errorf("invalid device path %q: longer than 4096 bytes", path)
	}
	for i := range len(path) {
		if !isNameByte(path[i]) && path[i] != '/' {
			return fmt.Errorf("invalid device path %q: only letters, digits, '/', '-', '_' and '.' are allowed", path)
		}
	}
	return nil
}

// checkHostname returns an error unless name is empty or a host name of
// letters, digits, '-' and '.' of at most 64 bytes.
func checkHostname(name string) error {
	if len(name) > maxHostname {
		return fmt.Errorf("host name %q is longer than %d bytes", name, maxHostname)
	}
	for i := range len(name) {
		b := name[i]
		if !isNameByte(b) || b == '_' {
			return fmt.Errorf("invalid host name %q: only letters, digits, '-' and '.' are allowed", name)
		}
	}
	return nil
}

// checkDomain returns an error unless name is a DNS search domain that a
// resolv.conf, networkd or YAML line can carry verbatim.
func checkDomain(name string) error {
	trimmed := strings.TrimSuffix(name, ".")
	if trimmed == "" {
		return fmt.Errorf("invalid domain %q: empty", name)
	}
	if len(trimmed) > maxDomain {
		return fmt.Errorf("invalid domain %q: longer than %d bytes", name, maxDomain)
	}
	for label := range strings.SplitSeq(trimmed, ".") {
		if label == "" {
			return fmt.Errorf("invalid domain %q: empty label", name)
		}
		for i := range len(label) {
			if !isNameByte(label[i]) {
				return fmt.Errorf("invalid domain %q: only letters, digits, '-', '_' and '.' are allowed", name)
			}
		}
	}
	return nil
}

// checkResolverOption returns an error unless opt is a resolv.conf option
// word such as ndots:2 or edns0.
func checkResolverOption(opt string) error {
	if opt == "" {
		return errors.New("invalid resolver option: empty")
	}
	for i := range len(opt) {
		if !isNameByte(opt[i]) && opt[i] != ':' {
			return fmt.Errorf("invalid resolver option %q: only letters, digits, ':', '-', '_' and '.' are allowed", opt)
		}
	}
	return nil
}

// checkZone returns an error unless the IPv6 zone of addr, if any, is an
// interface name or index that needs no quoting.
func checkZone(addr netip.Addr) error {
	zone := addr.Zone()
	for i := range len(zone) {
		if !isNameByte(zone[i]) {
			return fmt.Errorf("invalid zone in %q: only letters, digits, '-', '_' and '.' are allowed", addr.String())
		}
	}
	return nil
}

// checkDNS returns the first field of dns that a resolver configuration
// could not carry safely.
func checkDNS(dns kvmnet.DNS) error {
	for _, ns := range dns.Nameservers {
		if !ns.IsValid() {
			return errors.New("invalid DNS nameserver: zero address")
		}
		if err := checkZone(ns); err != nil {
			return fmt.Errorf("DNS nameserver: %w", err)
		}
	}
	if dns.Domain != "" {
		if err := checkDomain(dns.Domain); err != nil {
			return fmt.Errorf("DNS domain: %w", err)
		}
	}
	for _, d := range dns.Search {
		if err := checkDomain(d); err != nil {
			return fmt.Errorf("DNS search: %w", err)
		}
	}
	for _, o := range dns.Options {
		if err := checkResolverOption(o); err != nil {
			return fmt.Errorf("DNS options: %w", err)
		}
	}
	return nil
}

// checkGuestInterface returns an error unless ifc carries what the guest
// formats need: a guest device name, a MAC address, an MTU in range, valid
// addresses and routes.
func checkGuestInterface(ifc *kvmnet.Interface) error {
	if err := checkLinkName("guest device name", ifc.GuestDevice); err != nil {
		return err
	}
	if _, err := parseMAC(ifc.MAC); err != nil {
		return err
	}
	if err := checkMTU(ifc.MTU); err != nil {
		return err
	}
	for _, p := range ifc.Addresses {
		if !p.IsValid() {
			return errors.New("invalid address: zero prefix")
		}
	}
	for _, gw := range ifc.Gateways {
		if !gw.IsValid() {
			return errors.New("invalid gateway: zero address")
		}
		if gw.Zone() != "" {
			return fmt.Errorf("invalid gateway %q: IPv6 zones are not supported", gw.String())
		}
	}
	for _, rt := range ifc.Routes {
		if !rt.Dst.IsValid() {
			return errors.New("invalid route: zero destination")
		}
		if rt.GW.Zone() != "" {
			return fmt.Errorf("invalid route gateway %q: IPv6 zones are not supported", rt.GW.String())
		}
		if rt.GW.IsValid() && rt.GW.Is4() != rt.Dst.Addr().Is4() {
			return fmt.Errorf("route to %s via %s: gateway and destination differ in address family", rt.Dst, rt.GW)
		}
	}
	return nil
}

// checkGuest validates everything the guest formats (kernel-args,
// networkd, cloud-init) read from r: each interface, unique guest device
// names and MACs, the DNS settings and the host name.
func checkGuest(r *kvmnet.Result, opts Options) error {
	devices := make(map[string]int)
	macs := make(map[string]int)
	for i := range r.Interfaces {
		ifc := &r.Interfaces[i]
		if err := checkGuestInterface(ifc); err != nil {
			return fmt.Errorf("interface %d: %w", i, err)
		}
		if j, ok := devices[ifc.GuestDevice]; ok {
			return fmt.Errorf("interfaces %d and %d have the same guest device name %q", j, i, ifc.GuestDevice)
		}
		devices[ifc.GuestDevice] = i

		mac, _ := parseMAC(ifc.MAC)
		if j, ok := macs[mac.String()]; ok {
			return fmt.Errorf("interfaces %d and %d have the same MAC address %s", j, i, mac)
		}
		macs[mac.String()] = i
	}
	if err := checkDNS(r.DNS); err != nil {
		return err
	}
	return checkHostname(opts.Hostname)
}

// dnsInterface returns the index of the interface that carries the DNS
// settings in per-link formats (networkd, cloud-init): the one with the
// IPv4 default route, else the one with the IPv6 default route, else the
// first interface. It returns -1 when r has no interface.
func dnsInterface(r *kvmnet.Result) int {
	for _, family := range []int{4, 6} {
		if ifc := r.DefaultRoute(family); ifc != nil {
			for i := range r.Interfaces {
				if &r.Interfaces[i] == ifc {
					return i
				}
			}
		}
	}
	if len(r.Interfaces) == 0 {
		return -1
	}
	return 0
}

// searchDomains returns the DNS search list: Domain first, then Search,
// without repeats.
func searchDomains(dns kvmnet.DNS) []string {
	var list []string
	seen := make(map[string]bool)
	for _, d := range append([]string{dns.Domain}, dns.Search...) {
		if d == "" || seen[d] {
			continue
		}
		seen[d] = true
		list = append(list, d)
	}
	return list
}

// defaultGateway returns the gateway of the default route of the given
// family (4 or 6) on ifc, or the zero Addr when there is none or the
// route is on-link.
func defaultGateway(ifc *kvmnet.Interface, family int) netip.Addr {
	for _, rt := range ifc.Routes {
		if rt.Dst.Bits() == 0 && rt.Dst.Addr().Is4() == (family == 4) && rt.GW.IsValid() {
			return rt.GW
		}
	}
	return netip.Addr{}
}
