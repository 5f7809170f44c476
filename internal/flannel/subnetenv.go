package flannel

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Keys of subnet.env that ParseSubnetEnv reads.
const (
	KeyNetwork     = "FLANNEL_NETWORK"
	KeySubnet      = "FLANNEL_SUBNET"
	KeyIPv6Network = "FLANNEL_IPV6_NETWORK"
	KeyIPv6Subnet  = "FLANNEL_IPV6_SUBNET"
	KeyMTU         = "FLANNEL_MTU"
	KeyIPMasq      = "FLANNEL_IPMASQ"
)

// MinMTU and MaxMTU bound every MTU this package accepts, in bytes. 68 is the
// minimum IPv4 link MTU (RFC 791), and 65535 is the largest MTU that a Linux
// bridge accepts.
//
// NOTE: a Linux tap accepts at most 65521 (seen on kernel 6.18), so the code
// that creates the devices must still check the MTU against their limits.
const (
	MinMTU = 68
	MaxMTU = 65535
)

// maxQuotedText is the number of bytes of a bad line that an error message quotes.
const maxQuotedText = 80

// ErrInvalidSubnetEnv is wrapped by every error that ParseSubnetEnv returns.
var ErrInvalidSubnetEnv = errors.New("invalid flannel subnet.env")

// SubnetEnv is the content of the subnet.env file that flanneld writes for
// this host. At least one address family is set: Subnet and Networks for
// IPv4, IPv6Subnet and IPv6Networks for IPv6, or both for dual-stack.
type SubnetEnv struct {
	// Networks are the cluster-wide IPv4 networks from FLANNEL_NETWORK, masked
	// to their network address, without duplicates. Empty on an IPv6-only
	// host. The file lists several networks separated by commas, the format
	// that the CNI flannel plugin reads.
	Networks []netip.Prefix
	// Subnet is this host's IPv4 subnet from FLANNEL_SUBNET, exactly as written.
	// flanneld writes the gateway address with the subnet's prefix length (for
	// example 10.1.17.1/24), so the address part may have host bits set. It is
	// inside one of Networks. The zero Prefix on an IPv6-only host.
	Subnet netip.Prefix
	// IPv6Networks are the cluster-wide IPv6 networks from
	// FLANNEL_IPV6_NETWORK, masked, without duplicates. Empty on an IPv4-only
	// host.
	IPv6Networks []netip.Prefix
	// IPv6Subnet is this host's IPv6 subnet from FLANNEL_IPV6_SUBNET, exactly
	// as written. The zero Prefix on an IPv4-only host.
	IPv6Subnet netip.Prefix
	// MTU is FLANNEL_MTU in bytes, from MinMTU to MaxMTU.
	MTU int
	// IPMasq is FLANNEL_IPMASQ: true when flanneld masquerades traffic that
	// leaves the flannel networks, so the delegate must not do it again.
	IPMasq bool
}

// HasIPv4 reports whether the file set the IPv4 network and subnet.
func (e SubnetEnv) HasIPv4() bool { return e.Subnet.IsValid() }

// HasIPv6 reports whether the file set the IPv6 network and subnet.
func (e SubnetEnv) HasIPv6() bool { return e.IPv6Subnet.IsValid() }

// envLine is one KEY=VALUE line of subnet.env with its 1-based line number.
type envLine struct {
	number int
	text   string
	value  string
}

// ParseSubnetEnv parses the subnet.env file that flanneld writes.
//
// The format is the one flanneld writes: one KEY=VALUE line per key, LF line
// ends, no whitespace and no quotes. The parser is strict so that a damaged or
// hand-edited file fails before anything is created:
//   - Empty lines and full-line comments (lines whose first byte is '#') are
//     skipped, although flanneld writes neither.
//   - Every other line must be KEY=VALUE, where KEY is a shell variable name
//     and VALUE is not empty. A CR byte (CRLF line ends), invalid UTF-8,
//     whitespace anywhere in the line and a quoted value are rejected. Quotes
//     are rejected rather than stripped because they imply shell quoting rules
//     that this parser does not apply.
//   - Keys that do not start with FLANNEL_ are ignored, and so are FLANNEL_
//     keys other than the six Key constants, which later flanneld versions
//     may add. A FLANNEL_ key given twice is rejected, even with the same value.
//   - FLANNEL_MTU and FLANNEL_IPMASQ are required. So is the IPv4 pair
//     (FLANNEL_NETWORK, FLANNEL_SUBNET), the IPv6 pair (FLANNEL_IPV6_NETWORK,
//     FLANNEL_IPV6_SUBNET) or both, and a pair must be complete.
//   - A network list with an empty entry is rejected, and a repeated network
//     is dropped.
//
// Every error wraps ErrInvalidSubnetEnv and names the key, or the line number
// and the line's text.
func ParseSubnetEnv(data []byte) (SubnetEnv, error) {
	lines, err := splitEnvLines(data)
	if err != nil {
		return SubnetEnv{}, fmt.Errorf("%w: %w", ErrInvalidSubnetEnv, err)
	}

	env, err := decodeEnvLines(lines)
	if err != nil {
		return SubnetEnv{}, fmt.Errorf("%w: %w", ErrInvalidSubnetEnv, err)
	}
	return env, nil
}

// splitEnvLines checks the syntax of every line and returns the values by key.
func splitEnvLines(data []byte) (map[string]envLine, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("file is empty")
	}

	lines := make(map[string]envLine)
	for i, text := range strings.Split(string(data), "\n") {
		number := i + 1
		if text == "" || text[0] == '#' {
			continue
		}

		key, value, err := splitEnvLine(text)
		if err != nil {
			return nil, fmt.Errorf("line %d %s: %w", number, quoteCut(text), err)
		}
		if !strings.HasPrefix(key, "FLANNEL_") {
			continue
		}
		if first, ok := lines[key]; ok {
			return nil, fmt.Errorf("line %d %s: duplicate key %s, first set on line %d",
				number, quoteCut(text), key, first.number)
		}
		lines[key] = envLine{number: number, text: text, value: value}
	}
	return lines, nil
}

// splitEnvLine splits one non-empty, non-comment line into key and value.
func splitEnvLine(text string) (key, value string, err error) {
	switch {
	case !utf8.ValidString(text):
		return "", "", errors.New("line is not valid UTF-8")
	case strings.Contains(text, "\r"):
		return "", "", errors.New("line contains a carriage return, which CRLF line ends leave: rewrite the file with LF line ends")
	case strings.TrimSpace(text) == "":
		return "", "", errors.New("line contains only whitespace")
	case strings.TrimSpace(text) != text:
		return "", "", errors.New("line has leading or trailing whitespace")
	}

	key, value, found := strings.Cut(text, "=")
	switch {
	case !found:
		return "", "", errors.New("missing '=': expected KEY=VALUE")
	case !isEnvKey(key):
		return "", "", fmt.Errorf("invalid key %s: expected letters, digits and '_', not starting with a digit", quoteCut(key))
	case value == "":
		return "", "", fmt.Errorf("empty value for %s", key)
	case isQuoted(value):
		return "", "", fmt.Errorf("quoted value for %s: write it without quotes, as flanneld does", key)
	case strings.ContainsFunc(value, unicode.IsSpace):
		return "", "", fmt.Errorf("value of %s contains whitespace", key)
	}
	return key, value, nil
}

// decodeEnvLines converts the values of the known keys and checks that they
// fit together.
func decodeEnvLines(lines map[string]envLine) (SubnetEnv, error) {
	if err := checkRequiredKeys(lines); err != nil {
		return SubnetEnv{}, err
	}

	var env SubnetEnv
	var err error

	if line, ok := lines[KeyNetwork]; ok {
		if env.Networks, err = parseNetworks(line, KeyNetwork, false); err != nil {
			return SubnetEnv{}, err
		}
		if env.Subnet, err = parseSubnet(line, lines[KeySubnet], KeySubnet, env.Networks, false); err != nil {
			return SubnetEnv{}, err
		}
	}
	if line, ok := lines[KeyIPv6Network]; ok {
		if env.IPv6Networks, err = parseNetworks(line, KeyIPv6Network, true); err != nil {
			return SubnetEnv{}, err
		}
		if env.IPv6Subnet, err = parseSubnet(line, lines[KeyIPv6Subnet], KeyIPv6Subnet, env.IPv6Networks, true); err != nil {
			return SubnetEnv{}, err
		}
	}

	if env.MTU, err = parseMTUValue(lines[KeyMTU]); err != nil {
		return SubnetEnv{}, err
	}
	if env.IPMasq, err = parseIPMasq(lines[KeyIPMasq]); err != nil {
		return SubnetEnv{}, err
	}
	return env, nil
}

// checkRequiredKeys returns an error that names every missing key.
func checkRequiredKeys(lines map[string]envLine) error {
	has := func(key string) bool { _, ok := lines[key]; return ok }
	var missing []string

	// A half pair names the absent key, and no pair at all names both pairs.
	if !has(KeyNetwork) && !has(KeySubnet) && !has(KeyIPv6Network) && !has(KeyIPv6Subnet) {
		missing = append(missing, fmt.Sprintf("%s and %s (or %s and %s)",
			KeyNetwork, KeySubnet, KeyIPv6Network, KeyIPv6Subnet))
	}
	if has(KeyNetwork) != has(KeySubnet) {
		missing = append(missing, missingOf(has, KeyNetwork, KeySubnet))
	}
	if has(KeyIPv6Network) != has(KeyIPv6Subnet) {
		missing = append(missing, missingOf(has, KeyIPv6Network, KeyIPv6Subnet))
	}
	for _, key := range []string{KeyMTU, KeyIPMasq} {
		if !has(key) {
			missing = append(missing, key)
		}
	}

	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// missingOf returns the key of the pair a, b that is absent, with the one
// that is present as a reason.
func missingOf(has func(string) bool, a, b string) string {
	if has(a) {
		a, b = b, a
	}
	return fmt.Sprintf("%s (%s is set)", a, b)
}

// parseNetworks parses a comma-separated list of network prefixes.
func parseNetworks(line envLine, key string, ipv6 bool) ([]netip.Prefix, error) {
	var networks []netip.Prefix
	seen := make(map[netip.Prefix]bool)
	for field := range strings.SplitSeq(line.value, ",") {
		prefix, err := parsePrefix(field, ipv6)
		if err != nil {
			return nil, keyLineError(line, key, err)
		}

		// The CNI flannel plugin drops repeated networks too.
		prefix = prefix.Masked()
		if !seen[prefix] {
			seen[prefix] = true
			networks = append(networks, prefix)
		}
	}
	return networks, nil
}

// parseSubnet parses the host subnet and checks that one of networks
// contains it. networkLine is only used to name the networks in an error.
func parseSubnet(networkLine, line envLine, key string, networks []netip.Prefix, ipv6 bool) (netip.Prefix, error) {
	subnet, err := parsePrefix(line.value, ipv6)
	if err != nil {
		return netip.Prefix{}, keyLineError(line, key, err)
	}
	// host-local reserves the network and broadcast addresses, so it needs
	// at least 2 host bits to hand out any address.
	if subnet.Addr().BitLen()-subnet.Bits() < 2 {
		return netip.Prefix{}, keyLineError(line, key, fmt.Errorf("subnet %s is too small: it needs at least 2 host bits", subnet))
	}
	for _, network := range networks {
		if network.Bits() <= subnet.Bits() && network.Contains(subnet.Addr()) {
			return subnet, nil
		}
	}
	return netip.Prefix{}, keyLineError(line, key, fmt.Errorf("subnet %s is not inside %s %s (line %d)",
		subnet, networkKey(key), quoteCut(networkLine.value), networkLine.number))
}

func networkKey(subnetKey string) string {
	if subnetKey == KeyIPv6Subnet {
		return KeyIPv6Network
	}
	return KeyNetwork
}

// parsePrefix parses one CIDR of the requested address family.
func parsePrefix(text string, ipv6 bool) (netip.Prefix, error) {
	prefix, err := netip.ParsePrefix(text)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %s: %w", quoteCut(text), err)
	}

	addr := prefix.Addr()
	switch {
	case ipv6 && (!addr.Is6() || addr.Is4In6()):
		return netip.Prefix{}, fmt.Errorf("CIDR %s is not an IPv6 prefix", prefix)
	case !ipv6 && !addr.Is4():
		return netip.Prefix{}, fmt.Errorf("CIDR %s is not an IPv4 prefix", prefix)
	}
	return prefix, nil
}

func parseMTUValue(line envLine) (int, error) {
	for _, c := range []byte(line.value) {
		if c < '0' || c > '9' {
			return 0, keyLineError(line, KeyMTU, fmt.Errorf("invalid MTU %s: expected a decimal integer from %d to %d",
				quoteCut(line.value), MinMTU, MaxMTU))
		}
	}
	mtu, err := strconv.ParseUint(line.value, 10, 32)
	if err != nil || mtu < MinMTU || mtu > MaxMTU {
		// The value is digits only here, so it needs no quotes.
		text := line.value
		if len(text) > 20 {
			text = text[:20] + "..."
		}
		return 0, keyLineError(line, KeyMTU, fmt.Errorf("MTU %s is out of range: expected %d to %d",
			text, MinMTU, MaxMTU))
	}
	return int(mtu), nil
}

func parseIPMasq(line envLine) (bool, error) {
	switch line.value {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, keyLineError(line, KeyIPMasq, fmt.Errorf("invalid value %s: expected true or false", quoteCut(line.value)))
}

// keyLineError names the key, the line number and the line's text.
func keyLineError(line envLine, key string, err error) error {
	return fmt.Errorf("%s on line %d %s: %w", key, line.number, quoteCut(line.text), err)
}

// quoteLine quotes a line for an error message, cut to maxQuotedText bytes.
func quoteCut(text string) string {
	if len(text) <= maxQuotedText {
		return strconv.Quote(text)
	}
	return strconv.Quote(text[:maxQuotedText]) + "..."
}

// isEnvKey reports whether key is a valid shell variable name.
func isEnvKey(key string) bool {
	if key == "" || (key[0] >= '0' && key[0] <= '9') {
		return false
	}
	for _, c := range []byte(key) {
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// isQuoted reports whether value starts or ends with a quote character.
func isQuoted(value string) bool {
	first, last := value[0], value[len(value)-1]
	return first == '"' || first == '\'' || last == '"' || last == '\''
}
