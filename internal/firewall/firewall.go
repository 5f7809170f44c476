package firewall

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// VM is everything the firewall needs about one VM's attachments.
type VM struct {
	// ID is the VM id: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 128 bytes. Every
	// entry of the VM carries it as its comment.
	ID          string
	Attachments []Attachment
}

// Attachment is one network attachment of a VM.
type Attachment struct {
	// Network is the CNI network name, used in messages only.
	Network string
	// HostDevice is the tap or macvtap link on the host, at most 15 bytes.
	HostDevice string
	// Bridge is the bridge the tap is enslaved to, or "" for ptp and macvtap.
	Bridge string
	// MAC is the guest's hardware address. It is required when AntiSpoof is set.
	MAC net.HardwareAddr
	// Addrs are the guest's addresses with the subnet's prefix length,
	// IPv4 and/or IPv6.
	Addrs []netip.Prefix
	// Gateways are the host-side gateway addresses of the network. They are
	// informational: masquerade picks the address of the outgoing device,
	// which is the gateway.
	Gateways []netip.Addr
	// Masquerade masquerades IPv4 traffic from Addrs to destinations outside
	// the subnet (CNI ipMasq).
	Masquerade bool
	// MasqueradeIPv6 also masquerades IPv6 traffic. It has no effect
	// without Masquerade.
	MasqueradeIPv6 bool
	// AntiSpoof drops frames from HostDevice whose source MAC is not MAC or
	// whose source address (ARP and NDP included) is not one of Addrs.
	AntiSpoof bool
	// Isolated lets the guest reach the host and its own subnet only: no
	// forwarding beyond, and no masquerade.
	Isolated bool
	// Ports are the ports forwarded to this attachment's guest.
	Ports []PortForward
}

// PortForward forwards a range of host ports to a guest.
type PortForward struct {
	// HostIP is the host address the forward listens on. The zero Addr means
	// every host address of GuestIP's family; so does 0.0.0.0 or ::.
	HostIP netip.Addr
	// HostPort is the first host port of the range.
	HostPort uint16
	// HostPortEnd is the last host port of the range: HostPort for one port.
	// Zero also means one port.
	HostPortEnd uint16
	// GuestPort is the guest port that HostPort maps to. The rest of the
	// range maps to the ports that follow it.
	GuestPort uint16
	// Proto is "tcp" or "udp".
	Proto string
	// GuestIP is the guest address to forward to, one of the attachment's
	// Addrs. The core fills it from the address of the right family.
	GuestIP netip.Addr
}

// MaxPortsPerForward is the largest host port range one PortForward may
// cover. Each port becomes one element of a map, so the limit bounds the
// size of one netlink batch.
const MaxPortsPerForward = 1024

// Receipt records what Add changed beyond nftables elements and rules, so that
// Remove can undo it without reading anything else. It is JSON-serializable.
type Receipt struct {
	// Sysctls are the sysctls that the VM's forwards rely on, with the value
	// each had before Add.
	Sysctls []SysctlChange `json:"sysctls,omitempty"`
	// Routes are the routes that the VM's IPv6 forwards rely on.
	Routes []RouteChange `json:"routes,omitempty"`
}

// RouteChange is a route `local ::1 dev <device> table local`, which lets
// replies of forwards reached from ::1 back in through the device.
type RouteChange struct {
	// Device is the link the route points to.
	Device string `json:"device"`
	// Route is the route in ip-route syntax.
	Route string `json:"route"`
	// Existed is set when the route was there before Add: another VM's Add
	// or someone else made it.
	Existed bool `json:"existed,omitempty"`
}

// SysctlChange is one per-device sysctl that a VM relies on.
type SysctlChange struct {
	// Name is the sysctl key, for example net.ipv4.conf.kvbr0.route_localnet.
	Name string `json:"name"`
	// Device is the link the sysctl belongs to.
	Device string `json:"device"`
	// Previous is the value before Add. It is "1" when another VM's Add
	// or someone else had already set it.
	Previous string `json:"previous"`
	// Value is the value the VM needs.
	Value string `json:"value"`
}

var (
	// ErrConflict is matched by a ConflictError with errors.Is.
	ErrConflict = errors.New("port forward conflict")
	// ErrInvalid is matched by every error about an invalid VM or port spec.
	ErrInvalid = errors.New("invalid firewall input")
	// ErrUnsupported is returned on platforms without nftables.
	ErrUnsupported = errors.New("firewall is supported on linux only")
)

// ConflictError reports a host port that another VM already forwards.
type ConflictError struct {
	// Port and Proto are the first conflicting host port.
	Port  uint16
	Proto string
	// HostIP is the host address of the existing forward, or the zero Addr
	// when it covers every host address.
	HostIP netip.Addr
	// Owner is the id of the VM that holds the port.
	Owner string
}

func (e *ConflictError) Error() string {
	where := "every host address"
	if e.HostIP.IsValid() {
		where = e.HostIP.String()
	}
	return fmt.Sprintf("host port %d/%s on %s is already forwarded to vm %s", e.Port, e.Proto, where, e.Owner)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// maxVMIDLen is the longest VM id: it must fit an nftables comment (255
// bytes) with room to spare.
const maxVMIDLen = 128

func validateVMID(id string) error {
	if id == "" {
		return invalidf("empty vm id")
	}
	if len(id) > maxVMIDLen {
		return invalidf("vm id %.20q... is %d bytes, more than %d", id, len(id), maxVMIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		// '~' joins the hash of a long VM id in its owner tag (vmid.Tag).
		if alnum || i > 0 && (c == '_' || c == '.' || c == '-' || c == '~') {
			continue
		}
		return invalidf("vm id %q: character %q at %d is not allowed (want [A-Za-z0-9][A-Za-z0-9_.-~]*)", id, c, i)
	}
	return nil
}

// validateLinkName applies the kernel's rules for interface names
// (dev_valid_name in net/core/dev.c).
func validateLinkName(what, name string) error {
	if name == "" {
		return invalidf("empty %s name", what)
	}
	if len(name) > 15 {
		return invalidf("%s name %q is %d bytes, more than 15", what, name, len(name))
	}
	if name == "." || name == ".." {
		return invalidf("%s name %q is not allowed", what, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return invalidf("%s name %q: character %q is not allowed", what, name, c)
		}
	}
	return nil
}

func validateAttachment(a *Attachment) error {
	if err := validateLinkName("host device", a.HostDevice); err != nil {
		return err
	}
	if a.Bridge != "" {
		if err := validateLinkName("bridge", a.Bridge); err != nil {
			return err
		}
	}
	if a.AntiSpoof {
		if len(a.MAC) != 6 {
			return invalidf("device %s: anti-spoofing needs a 6-byte guest MAC, got %q", a.HostDevice, a.MAC.String())
		}
		if a.MAC[0]&1 != 0 {
			return invalidf("device %s: guest MAC %s is a multicast address", a.HostDevice, a.MAC)
		}
	}
	for _, p := range a.Addrs {
		if !p.IsValid() {
			return invalidf("device %s: invalid guest address prefix", a.HostDevice)
		}
		addr := p.Addr()
		if addr.Zone() != "" || addr.Is4In6() {
			return invalidf("device %s: guest address %s: zones and IPv4-mapped IPv6 addresses are not supported", a.HostDevice, p)
		}
		if addr.IsUnspecified() || addr.IsMulticast() || addr.IsLoopback() {
			return invalidf("device %s: guest address %s is not a unicast address", a.HostDevice, p)
		}
	}
	for i := range a.Ports {
		if err := validatePortForward(a, &a.Ports[i]); err != nil {
			return err
		}
	}
	return nil
}

func validatePortForward(a *Attachment, pf *PortForward) error {
	name := pf.String()
	if pf.Proto != "tcp" && pf.Proto != "udp" {
		return invalidf("port forward %s: protocol %q is not tcp or udp", name, pf.Proto)
	}
	if pf.HostPort == 0 || pf.GuestPort == 0 {
		return invalidf("port forward %s: port 0 is not allowed", name)
	}
	end := pf.lastHostPort()
	if end < pf.HostPort {
		return invalidf("port forward %s: host port range ends before it starts", name)
	}
	span := int(end - pf.HostPort)
	if span+1 > MaxPortsPerForward {
		return invalidf("port forward %s: range of %d ports is larger than %d", name, span+1, MaxPortsPerForward)
	}
	if int(pf.GuestPort)+span > 65535 {
		return invalidf("port forward %s: guest port range ends after 65535", name)
	}
	if !pf.GuestIP.IsValid() {
		return invalidf("port forward %s: missing guest address", name)
	}
	found := false
	for _, p := range a.Addrs {
		if p.Addr() == pf.GuestIP {
			found = true
		}
	}
	if !found {
		return invalidf("port forward %s: guest address %s is not an address of device %s", name, pf.GuestIP, a.HostDevice)
	}
	if pf.HostIP.IsValid() {
		if pf.HostIP.Is4() != pf.GuestIP.Is4() {
			return invalidf("port forward %s: host address %s and guest address %s are of different families", name, pf.HostIP, pf.GuestIP)
		}
		if pf.HostIP.Zone() != "" || pf.HostIP.Is4In6() || pf.HostIP.IsMulticast() {
			return invalidf("port forward %s: host address %s is not a plain unicast address", name, pf.HostIP)
		}
	}
	return nil
}

func (pf *PortForward) lastHostPort() uint16 {
	if pf.HostPortEnd == 0 {
		return pf.HostPort
	}
	return pf.HostPortEnd
}

// anyHost reports whether the forward listens on every host address of its
// family.
func (pf *PortForward) anyHost() bool {
	return !pf.HostIP.IsValid() || pf.HostIP.IsUnspecified()
}

// String formats the forward in the syntax of ParsePortSpec, without the
// network, followed by the guest address.
func (pf PortForward) String() string {
	s := ""
	if pf.HostIP.IsValid() {
		if pf.HostIP.Is6() {
			s = "[" + pf.HostIP.String() + "]:"
		} else {
			s = pf.HostIP.String() + ":"
		}
	}
	end := pf.lastHostPort()
	if end != pf.HostPort {
		guestEnd := int(pf.GuestPort) + int(end) - int(pf.HostPort)
		s += fmt.Sprintf("%d-%d:%d-%d", pf.HostPort, end, pf.GuestPort, guestEnd)
	} else {
		s += fmt.Sprintf("%d:%d", pf.HostPort, pf.GuestPort)
	}
	if pf.Proto != "" {
		s += "/" + pf.Proto
	}
	if pf.GuestIP.IsValid() {
		s += " to " + pf.GuestIP.String()
	}
	return s
}

func validateVM(vm *VM) error {
	if err := validateVMID(vm.ID); err != nil {
		return err
	}
	for i := range vm.Attachments {
		if err := validateAttachment(&vm.Attachments[i]); err != nil {
			return fmt.Errorf("attachment %d (network %s): %w", i, vm.Attachments[i].Network, err)
		}
	}
	return nil
}
