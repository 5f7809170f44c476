package firewall

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PortSpec is a parsed port forward request: the forward itself, without
// GuestIP, and the network it applies to.
type PortSpec struct {
	// Network is the CNI network whose guest address receives the traffic,
	// or "" when the spec names none and the caller picks the network.
	Network string
	PortForward
}

// ParsePortSpec parses a port forward in the form
//
//	[NET:][HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp]
//
// HOSTPORT and GUESTPORT are single ports or ranges of equal length
// ("8000-8009:80-89"). HOSTIP is an IPv4 address or an IPv6 address in
// brackets ("[::1]:8080:80"); without it the forward listens on every host
// address. The protocol defaults to tcp.
//
// The network selector NET is a CNI network name. With three fields, the
// first is a host address when it is an IPv4 address or bracketed, and a
// network name otherwise. A network whose name reads as an IPv4 address is
// selected with an empty host address: "10.0.0.1::8080:80".
//
// The result has no GuestIP; the caller fills it from the attachment. Errors
// wrap ErrInvalid and quote the spec.
func ParsePortSpec(s string) (PortSpec, error) {
	spec, err := parsePortSpec(s)
	if err != nil {
		return PortSpec{}, fmt.Errorf("%w: port spec %q: %s", ErrInvalid, s, err.Error())
	}
	return spec, nil
}

func parsePortSpec(s string) (PortSpec, error) {
	var spec PortSpec
	if s == "" {
		return spec, fmt.Errorf("empty")
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c > 0x7e {
			return spec, fmt.Errorf("character %q is not allowed", c)
		}
	}

	rest, proto, hasProto := strings.Cut(s, "/")
	spec.Proto = "tcp"
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return spec, fmt.Errorf("protocol %q is not tcp or udp", proto)
		}
		spec.Proto = proto
	}

	fields, err := splitPortFields(rest)
	if err != nil {
		return spec, err
	}
	var hostIP string
	switch len(fields) {
	case 2:
	case 3:
		if looksLikeHostIP(fields[0]) {
			hostIP = fields[0]
		} else {
			spec.Network = fields[0]
		}
	case 4:
		spec.Network = fields[0]
		hostIP = fields[1]
	default:
		return spec, fmt.Errorf("want [NET:][HOSTIP:]HOSTPORT:GUESTPORT, got %d colon-separated fields", len(fields))
	}
	if len(fields) >= 3 && spec.Network == "" && hostIP == "" {
		return spec, fmt.Errorf("empty network name")
	}
	if len(fields) == 4 && spec.Network == "" {
		return spec, fmt.Errorf("empty network name")
	}
	if spec.Network != "" {
		if err := validateNetworkName(spec.Network); err != nil {
			return spec, err
		}
	}
	if hostIP != "" {
		addr, err := parseHostIP(hostIP)
		if err != nil {
			return spec, err
		}
		spec.HostIP = addr
	}

	hostFirst, hostLast, err := parsePortRange("host", fields[len(fields)-2])
	if err != nil {
		return spec, err
	}
	guestFirst, guestLast, err := parsePortRange("guest", fields[len(fields)-1])
	if err != nil {
		return spec, err
	}
	if hostLast-hostFirst != guestLast-guestFirst {
		return spec, fmt.Errorf("host range %d-%d and guest range %d-%d differ in length", hostFirst, hostLast, guestFirst, guestLast)
	}
	if int(hostLast-hostFirst)+1 > MaxPortsPerForward {
		return spec, fmt.Errorf("range of %d ports is larger than %d", int(hostLast-hostFirst)+1, MaxPortsPerForward)
	}
	spec.HostPort, spec.HostPortEnd, spec.GuestPort = hostFirst, hostLast, guestFirst
	return spec, nil
}

// splitPortFields splits s at colons outside brackets. A bracketed field
// keeps its brackets.
func splitPortFields(s string) ([]string, error) {
	var fields []string
	for {
		if strings.HasPrefix(s, "[") {
			end := strings.Index(s, "]")
			if end < 0 {
				return nil, fmt.Errorf("missing ] after IPv6 address")
			}
			fields = append(fields, s[:end+1])
			s = s[end+1:]
			if s == "" {
				return fields, nil
			}
			if s[0] != ':' {
				return nil, fmt.Errorf("want : after ], got %q", s[0])
			}
			s = s[1:]
			continue
		}
		field, rest, more := strings.Cut(s, ":")
		if strings.ContainsAny(field, "[]") {
			return nil, fmt.Errorf("brackets are allowed only around an IPv6 host address, got %q", field)
		}
		fields = append(fields, field)
		if !more {
			return fields, nil
		}
		s = rest
	}
}

func looksLikeHostIP(field string) bool {
	if strings.HasPrefix(field, "[") {
		return true
	}
	addr, err := netip.ParseAddr(field)
	return err == nil && addr.Is4()
}

func parseHostIP(field string) (netip.Addr, error) {
	if inner, ok := strings.CutPrefix(field, "["); ok {
		inner = strings.TrimSuffix(inner, "]")
		addr, err := netip.ParseAddr(inner)
		if err != nil || !addr.Is6() {
			return netip.Addr{}, fmt.Errorf("host address [%s] is not an IPv6 address", inner)
		}
		if addr.Zone() != "" || addr.Is4In6() {
			return netip.Addr{}, fmt.Errorf("host address [%s]: zones and IPv4-mapped addresses are not supported", inner)
		}
		if addr.IsMulticast() {
			return netip.Addr{}, fmt.Errorf("host address [%s] is a multicast address", inner)
		}
		return addr, nil
	}
	addr, err := netip.ParseAddr(field)
	if err != nil || !addr.Is4() {
		return netip.Addr{}, fmt.Errorf("host address %q is not an IPv4 address (write IPv6 addresses in brackets)", field)
	}
	if addr.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("host address %s is a multicast address", addr)
	}
	return addr, nil
}

func parsePortRange(what, field string) (first, last uint16, err error) {
	lo, hi, isRange := strings.Cut(field, "-")
	first, err = parsePort(what, lo)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return first, first, nil
	}
	last, err = parsePort(what, hi)
	if err != nil {
		return 0, 0, err
	}
	if last < first {
		return 0, 0, fmt.Errorf("%s port range %s ends before it starts", what, field)
	}
	return first, last, nil
}

func parsePort(what, field string) (uint16, error) {
	if field == "" {
		return 0, fmt.Errorf("missing %s port", what)
	}
	for _, c := range field {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%s port %q is not a number", what, field)
		}
	}
	n, err := strconv.ParseUint(field, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%s port %q is not in 1-65535", what, field)
	}
	return uint16(n), nil
}

// validateNetworkName applies the CNI rule for network names:
// ^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$.
func validateNetworkName(name string) error {
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || i > 0 && (c == '_' || c == '.' || c == '-') {
			continue
		}
		return fmt.Errorf("network name %q: character %q is not allowed", name, c)
	}
	return nil
}
