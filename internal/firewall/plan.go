package firewall

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// Names of the tables, sets and chains. The package doc describes each.
const (
	tableName = "kvmnet"

	setGuest4          = "guest4"
	setGuest6          = "guest6"
	setSubnet4         = "subnet4"
	setSubnet6         = "subnet6"
	setMasquerade4     = "masquerade4"
	setMasquerade6     = "masquerade6"
	setIsolated4       = "isolated4"
	setIsolated6       = "isolated6"
	mapDNAT4Any        = "dnat4_any"
	mapDNAT4Addr       = "dnat4_addr"
	mapDNAT6Any        = "dnat6_any"
	mapDNAT6Addr       = "dnat6_addr"
	mapDNATAddrCount   = "dnat_addr_count"
	setLocalnet4Users  = "localnet4_users"
	setLocalnet4Change = "localnet4_changed"
	setLocalnet6Users  = "localnet6_users"
	setLocalnet6Change = "localnet6_changed"
	// setLayout is an empty set that marks the table's layout. Change its
	// name with every change of the sets, chains or rules.
	setLayout = "layout_1"

	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPostrouting = "postrouting"
	chainForward     = "forward"

	// guardTablePrefix starts the name of each per-device netdev table,
	// whose one chain is guardChainName.
	guardTablePrefix = "kvmnet-guard-"
	guardChainName   = "ingress"
)

// ownedSets are the sets and maps whose elements belong to one VM each and
// carry its id as comment, in the order Owners and RemoveOwner read them.
var ownedSets = []string{
	setGuest4, setGuest6,
	setMasquerade4, setMasquerade6, setIsolated4, setIsolated6,
	mapDNAT4Any, mapDNAT4Addr, mapDNAT6Any, mapDNAT6Addr,
	setLocalnet4Users, setLocalnet6Users,
}

// elementKind says what an existing element with the same key but another
// owner means.
type elementKind int

const (
	// kindAddress elements are keyed by a guest address. Addresses come from
	// IPAM and are never given to two live VMs, so another owner's element is
	// stale and Add replaces it.
	kindAddress elementKind = iota
	// kindClaim elements are keyed by a host port. Another owner's element
	// is a conflict.
	kindClaim
)

// element is one set or map element that a VM owns.
type element struct {
	set    string
	key    []byte
	keyEnd []byte // last key of an interval, for interval sets
	value  []byte // map data
	kind   elementKind
	// claim is set for kindClaim elements.
	claim *portClaim
}

// portClaim is one host port of one forward.
type portClaim struct {
	ipv6     bool
	proto    string
	hostIP   netip.Addr // invalid when the forward listens on every host address
	hostPort uint16
}

// countKey returns the key of dnat_addr_count, which counts the forwards on
// specific host addresses per family, protocol and port.
func (c *portClaim) countKey() []byte {
	family := byte(nfprotoIPv4)
	if c.ipv6 {
		family = nfprotoIPv6
	}
	return concat(pad4([]byte{family}), pad4([]byte{protoNumber(c.proto)}), portBytes(c.hostPort))
}

// guard is the anti-spoofing chain of one host device.
type guard struct {
	device string
	mac    net.HardwareAddr
	ipv4   []netip.Addr
	ipv6   []netip.Addr
}

// localnetUse is a guest address whose forwards must be reachable from the
// host's loopback address. The device toward the guest then needs
// route_localnet (IPv4) or a local route for ::1 (IPv6); see the package doc.
type localnetUse struct {
	device string
	guest  netip.Addr
}

// plan is every entry Add creates for one VM, computed without the kernel.
type plan struct {
	vm       string
	elements []element
	guards   []guard
	localnet []localnetUse
}

// Values of nfproto and IP protocol numbers, as the kernel uses them.
const (
	nfprotoIPv4 = 2
	nfprotoIPv6 = 10
	protoTCP    = 6
	protoUDP    = 17
)

func protoNumber(proto string) byte {
	if proto == "udp" {
		return protoUDP
	}
	return protoTCP
}

// newPlan validates vm and computes its entries.
func newPlan(vm *VM) (*plan, error) {
	if err := validateVM(vm); err != nil {
		return nil, err
	}
	p := &plan{vm: vm.ID}
	seen := map[string]bool{}
	for i := range vm.Attachments {
		if err := p.addAttachment(&vm.Attachments[i], seen); err != nil {
			return nil, fmt.Errorf("attachment %d (network %s): %w", i, vm.Attachments[i].Network, err)
		}
	}
	return p, nil
}

func (p *plan) addAttachment(a *Attachment, seen map[string]bool) error {
	add := func(e element) error {
		id := e.set + "\x00" + string(e.key)
		if seen[id] {
			if e.claim != nil {
				return invalidf("host port %d/%s is forwarded twice", e.claim.hostPort, e.claim.proto)
			}
			return invalidf("guest address is used twice in set %s", e.set)
		}
		seen[id] = true
		p.elements = append(p.elements, e)
		return nil
	}

	g := guard{device: a.HostDevice, mac: a.MAC}
	for _, prefix := range a.Addrs {
		addr := prefix.Addr()
		is4 := addr.Is4()
		if is4 {
			g.ipv4 = append(g.ipv4, addr)
		} else {
			g.ipv6 = append(g.ipv6, addr)
		}
		first, last := prefixRange(prefix.Masked())
		entries := []element{
			{set: pick(is4, setGuest4, setGuest6), key: addr.AsSlice(), value: concat(first.AsSlice(), last.AsSlice())},
		}
		switch {
		case a.Isolated:
			entries = append(entries, element{set: pick(is4, setIsolated4, setIsolated6), key: addr.AsSlice()})
		case a.Masquerade && (is4 || a.MasqueradeIPv6):
			entries = append(entries, element{set: pick(is4, setMasquerade4, setMasquerade6), key: addr.AsSlice()})
		}
		for _, e := range entries {
			if err := add(e); err != nil {
				return fmt.Errorf("guest address %s: %w", prefix, err)
			}
		}
	}
	if a.AntiSpoof {
		p.guards = append(p.guards, g)
	}

	needsLocalnet := map[netip.Addr]bool{}
	for _, pf := range a.Ports {
		for _, e := range forwardElements(&pf) {
			if err := add(e); err != nil {
				return fmt.Errorf("port forward %s: %w", pf, err)
			}
		}
		if pf.anyHost() || pf.HostIP.IsLoopback() {
			needsLocalnet[pf.GuestIP] = true
		}
	}
	device := a.HostDevice
	if a.Bridge != "" {
		device = a.Bridge
	}
	for _, prefix := range a.Addrs {
		if !needsLocalnet[prefix.Addr()] {
			continue
		}
		use := localnetUse{device: device, guest: prefix.Addr()}
		users := pick(use.guest.Is4(), setLocalnet4Users, setLocalnet6Users)
		if err := add(element{set: users, key: concat(ifname(device), use.guest.AsSlice())}); err != nil {
			return err
		}
		p.localnet = append(p.localnet, use)
	}
	return nil
}

// forwardElements returns one DNAT map element per host port of pf.
func forwardElements(pf *PortForward) []element {
	is4 := pf.GuestIP.Is4()
	var out []element
	last := pf.lastHostPort()
	for i := 0; i <= int(last-pf.HostPort); i++ {
		hostPort := pf.HostPort + uint16(i)
		claim := &portClaim{ipv6: !is4, proto: pf.Proto, hostPort: hostPort}
		proto := pad4([]byte{protoNumber(pf.Proto)})
		e := element{
			kind:  kindClaim,
			claim: claim,
			value: concat(pf.GuestIP.AsSlice(), portBytes(pf.GuestPort+uint16(i))),
		}
		if pf.anyHost() {
			e.set = pick(is4, mapDNAT4Any, mapDNAT6Any)
			e.key = concat(proto, portBytes(hostPort))
		} else {
			claim.hostIP = pf.HostIP
			e.set = pick(is4, mapDNAT4Addr, mapDNAT6Addr)
			e.key = concat(pf.HostIP.AsSlice(), proto, portBytes(hostPort))
		}
		out = append(out, e)
	}
	return out
}

// subnetOf returns the subnet4 or subnet6 element of a guest4 or guest6
// element's value (first . last address of the subnet): the interval from
// first . first to last . last.
func subnetOf(guestSet string, value []byte) (set string, key, keyEnd []byte, ok bool) {
	size := 4
	set = setSubnet4
	if guestSet == setGuest6 {
		size, set = 16, setSubnet6
	}
	if len(value) != 2*size {
		return "", nil, nil, false
	}
	first, last := value[:size], value[size:]
	return set, concat(first, first), concat(last, last), true
}

// claimFromKey decodes the port claim of a DNAT map element key, for
// messages about elements read back from the kernel.
func claimFromKey(set string, key []byte) (portClaim, bool) {
	var c portClaim
	switch set {
	case mapDNAT4Any, mapDNAT6Any:
		if len(key) != 8 {
			return c, false
		}
	case mapDNAT4Addr:
		if len(key) != 12 {
			return c, false
		}
		c.hostIP = netip.AddrFrom4([4]byte(key[:4]))
		key = key[4:]
	case mapDNAT6Addr:
		if len(key) != 24 {
			return c, false
		}
		c.hostIP = netip.AddrFrom16([16]byte(key[:16]))
		key = key[16:]
	default:
		return c, false
	}
	c.ipv6 = set == mapDNAT6Any || set == mapDNAT6Addr
	c.proto = "tcp"
	if key[0] == protoUDP {
		c.proto = "udp"
	}
	c.hostPort = binary.BigEndian.Uint16(key[4:6])
	return c, true
}

func pick(is4 bool, v4, v6 string) string {
	if is4 {
		return v4
	}
	return v6
}

// prefixRange returns the first and last address of a masked prefix.
func prefixRange(p netip.Prefix) (first, last netip.Addr) {
	first = p.Addr()
	b := first.AsSlice()
	for bit := p.Bits(); bit < len(b)*8; bit++ {
		b[bit/8] |= 0x80 >> (bit % 8)
	}
	last, _ = netip.AddrFromSlice(b)
	return first, last
}

// Key encodings. Fields of a concatenation are padded to 4 bytes, as the
// kernel's registers are.

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// portBytes encodes an inet_service field: big endian, padded.
func portBytes(port uint16) []byte {
	return []byte{byte(port >> 8), byte(port), 0, 0}
}

// ifname encodes an ifname field: the name padded with NULs to IFNAMSIZ.
func ifname(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}
