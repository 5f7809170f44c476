package flannel

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	envIPv4 = "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
	envIPv6 = "FLANNEL_IPV6_NETWORK=fd00:10::/56\nFLANNEL_IPV6_SUBNET=fd00:10:0:11::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n"
	envDual = "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\n" +
		"FLANNEL_IPV6_NETWORK=fd00:10::/56\nFLANNEL_IPV6_SUBNET=fd00:10:0:11::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
)

func prefixes(texts ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, text := range texts {
		out = append(out, netip.MustParsePrefix(text))
	}
	return out
}

func TestParseSubnetEnvValid(t *testing.T) {
	tests := []struct {
		name string
		data string
		want SubnetEnv
	}{
		{
			name: "ipv4",
			data: envIPv4,
			want: SubnetEnv{
				Networks: prefixes("10.1.0.0/16"),
				Subnet:   netip.MustParsePrefix("10.1.17.1/24"),
				MTU:      1450,
				IPMasq:   true,
			},
		},
		{
			name: "ipv6 only",
			data: envIPv6,
			want: SubnetEnv{
				IPv6Networks: prefixes("fd00:10::/56"),
				IPv6Subnet:   netip.MustParsePrefix("fd00:10:0:11::1/64"),
				MTU:          1430,
			},
		},
		{
			name: "dual stack",
			data: envDual,
			want: SubnetEnv{
				Networks:     prefixes("10.1.0.0/16"),
				Subnet:       netip.MustParsePrefix("10.1.17.1/24"),
				IPv6Networks: prefixes("fd00:10::/56"),
				IPv6Subnet:   netip.MustParsePrefix("fd00:10:0:11::1/64"),
				MTU:          1450,
				IPMasq:       true,
			},
		},
		{
			name: "no final newline",
			data: strings.TrimSuffix(envIPv4, "\n"),
			want: SubnetEnv{
				Networks: prefixes("10.1.0.0/16"),
				Subnet:   netip.MustParsePrefix("10.1.17.1/24"),
				MTU:      1450,
				IPMasq:   true,
			},
		},
		{
			name: "comments and blank lines",
			data: "# written by hand\n\n" + envIPv4 + "\n#FLANNEL_MTU=9000\n",
			want: SubnetEnv{
				Networks: prefixes("10.1.0.0/16"),
				Subnet:   netip.MustParsePrefix("10.1.17.1/24"),
				MTU:      1450,
				IPMasq:   true,
			},
		},
		{
			name: "several networks",
			data: "FLANNEL_NETWORK=10.1.0.0/16,10.2.0.0/16\nFLANNEL_SUBNET=10.2.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n",
			want: SubnetEnv{
				Networks: prefixes("10.1.0.0/16", "10.2.0.0/16"),
				Subnet:   netip.MustParsePrefix("10.2.3.1/24"),
				MTU:      1450,
			},
		},
		{
			name: "repeated network dropped",
			data: "FLANNEL_NETWORK=10.1.0.0/16,10.2.0.0/16,10.1.2.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
			want: SubnetEnv{
				Networks: prefixes("10.1.0.0/16", "10.2.0.0/16"),
				Subnet:   netip.MustParsePrefix("10.1.17.1/24"),
				MTU:      1450,
				IPMasq:   true,
			},
		},
		{
			name: "network with host bits is masked",
			data: "FLANNEL_NETWORK=10.1.2.3/16\nFLANNEL_SUBNET=10.1.17.0/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n",
			want: SubnetEnv{
				Networks: prefixes("10.1.0.0/16"),
				Subnet:   netip.MustParsePrefix("10.1.17.0/24"),
				MTU:      1500,
			},
		},
		{
			name: "subnet equal to network",
			data: "FLANNEL_NETWORK=10.1.17.0/24\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n",
			want: SubnetEnv{
				Networks: prefixes("10.1.17.0/24"),
				Subnet:   netip.MustParsePrefix("10.1.17.1/24"),
				MTU:      1500,
			},
		},
		{
			name: "unknown keys ignored",
			data: "OTHER=x\nFLANNEL_FUTURE=1\n" + envIPv4,
			want: SubnetEnv{
				Networks: prefixes("10.1.0.0/16"),
				Subnet:   netip.MustParsePrefix("10.1.17.1/24"),
				MTU:      1450,
				IPMasq:   true,
			},
		},
		{
			name: "mtu bounds",
			data: "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=68\nFLANNEL_IPMASQ=false\n",
			want: SubnetEnv{
				Networks: prefixes("10.1.0.0/16"),
				Subnet:   netip.MustParsePrefix("10.1.17.1/24"),
				MTU:      68,
			},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSubnetEnv([]byte(tt.data))
			if err != nil {
				t.Fatalf("ParseSubnetEnv() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("ParseSubnetEnv() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSubnetEnvInvalid(t *testing.T) {
	const (
		network = "FLANNEL_NETWORK=10.1.0.0/16\n"
		subnet  = "FLANNEL_SUBNET=10.1.17.1/24\n"
		mtu     = "FLANNEL_MTU=1450\n"
		ipmasq  = "FLANNEL_IPMASQ=true\n"
	)
	tests := []struct {
		name string
		data string
		// want are fragments that the error message must contain.
		want []string
	}{
		{"empty file", "", []string{"file is empty"}},
		{"whitespace only", " \n\n\t\n", []string{"file is empty"}},
		{"only comments", "# nothing\n", []string{"missing FLANNEL_NETWORK and FLANNEL_SUBNET (or FLANNEL_IPV6_NETWORK and FLANNEL_IPV6_SUBNET)", "FLANNEL_MTU", "FLANNEL_IPMASQ"}},
		{"missing network", subnet + mtu + ipmasq, []string{"missing FLANNEL_NETWORK (FLANNEL_SUBNET is set)"}},
		{"missing subnet", network + mtu + ipmasq, []string{"missing FLANNEL_SUBNET (FLANNEL_NETWORK is set)"}},
		{"missing ipv6 subnet", network + subnet + "FLANNEL_IPV6_NETWORK=fd00::/56\n" + mtu + ipmasq, []string{"missing FLANNEL_IPV6_SUBNET (FLANNEL_IPV6_NETWORK is set)"}},
		{"missing ipv6 network", "FLANNEL_IPV6_SUBNET=fd00::/64\n" + mtu + ipmasq, []string{"missing FLANNEL_IPV6_NETWORK (FLANNEL_IPV6_SUBNET is set)"}},
		{"missing mtu", network + subnet + ipmasq, []string{"missing FLANNEL_MTU"}},
		{"missing ipmasq", network + subnet + mtu, []string{"missing FLANNEL_IPMASQ"}},
		{"missing several", subnet, []string{"missing FLANNEL_NETWORK (FLANNEL_SUBNET is set), FLANNEL_MTU, FLANNEL_IPMASQ"}},
		{"line without equals", network + "FLANNEL_SUBNET\n" + mtu + ipmasq, []string{`line 2 "FLANNEL_SUBNET": missing '='`}},
		{"crlf line ends", strings.ReplaceAll(network+subnet+mtu+ipmasq, "\n", "\r\n"), []string{`line 1 "FLANNEL_NETWORK=10.1.0.0/16\r"`, "carriage return", "CRLF"}},
		{"indented comment", network + subnet + "  # note\n" + mtu + ipmasq, []string{`line 3 "  # note"`, "leading or trailing whitespace"}},
		{"trailing comment", network + subnet + "FLANNEL_MTU=1450 # note\n" + ipmasq, []string{`line 3`, "value of FLANNEL_MTU contains whitespace"}},
		{"double quoted value", network + subnet + `FLANNEL_MTU="1450"` + "\n" + ipmasq, []string{`line 3 "FLANNEL_MTU=\"1450\""`, "quoted value for FLANNEL_MTU", "without quotes"}},
		{"single quoted value", network + subnet + mtu + "FLANNEL_IPMASQ='true'\n", []string{`line 4`, "quoted value for FLANNEL_IPMASQ"}},
		{"space around equals", network + subnet + "FLANNEL_MTU = 1450\n" + ipmasq, []string{`line 3`, `invalid key "FLANNEL_MTU "`}},
		{"export prefix", network + subnet + "export FLANNEL_MTU=1450\n" + ipmasq, []string{`line 3`, `invalid key "export FLANNEL_MTU"`}},
		{"empty value", network + subnet + "FLANNEL_MTU=\n" + ipmasq, []string{`line 3`, "empty value for FLANNEL_MTU"}},
		{"whitespace line", network + " \n" + subnet + mtu + ipmasq, []string{`line 2 " "`, "only whitespace"}},
		{"invalid utf8", network + "FLANNEL_\xff=1\n" + subnet + mtu + ipmasq, []string{"line 2", "not valid UTF-8"}},
		{"duplicate key", network + subnet + mtu + "FLANNEL_MTU=1450\n" + ipmasq, []string{`line 4 "FLANNEL_MTU=1450": duplicate key FLANNEL_MTU, first set on line 3`}},
		{"bad network cidr", "FLANNEL_NETWORK=10.1.0.0\n" + subnet + mtu + ipmasq, []string{`FLANNEL_NETWORK on line 1 "FLANNEL_NETWORK=10.1.0.0"`, "invalid CIDR"}},
		{"bad network prefix length", "FLANNEL_NETWORK=10.1.0.0/33\n" + subnet + mtu + ipmasq, []string{"FLANNEL_NETWORK on line 1", "invalid CIDR"}},
		{"empty network in list", "FLANNEL_NETWORK=10.1.0.0/16,\n" + subnet + mtu + ipmasq, []string{"FLANNEL_NETWORK on line 1", `invalid CIDR ""`}},
		{"ipv6 in ipv4 key", "FLANNEL_NETWORK=fd00::/56\n" + subnet + mtu + ipmasq, []string{"FLANNEL_NETWORK on line 1", "not an IPv4 prefix"}},
		{"ipv4 in ipv6 key", "FLANNEL_IPV6_NETWORK=10.1.0.0/16\nFLANNEL_IPV6_SUBNET=10.1.17.0/24\n" + mtu + ipmasq, []string{"FLANNEL_IPV6_NETWORK on line 1", "not an IPv6 prefix"}},
		{"mapped ipv4 in ipv6 key", "FLANNEL_IPV6_NETWORK=::ffff:10.1.0.0/112\nFLANNEL_IPV6_SUBNET=::ffff:10.1.17.0/120\n" + mtu + ipmasq, []string{"FLANNEL_IPV6_NETWORK on line 1", "not an IPv6 prefix"}},
		{"ipv6 zone", "FLANNEL_IPV6_NETWORK=fe80::%eth0/64\nFLANNEL_IPV6_SUBNET=fe80::/64\n" + mtu + ipmasq, []string{"FLANNEL_IPV6_NETWORK on line 1", "invalid CIDR"}},
		{"bad subnet cidr", network + "FLANNEL_SUBNET=10.1.17.300/24\n" + mtu + ipmasq, []string{`FLANNEL_SUBNET on line 2 "FLANNEL_SUBNET=10.1.17.300/24"`, "invalid CIDR"}},
		{"subnet outside network", network + "FLANNEL_SUBNET=10.2.17.1/24\n" + mtu + ipmasq, []string{"FLANNEL_SUBNET on line 2", "subnet 10.2.17.1/24 is not inside FLANNEL_NETWORK \"10.1.0.0/16\" (line 1)"}},
		{"subnet wider than network", network + "FLANNEL_SUBNET=10.1.0.0/8\n" + mtu + ipmasq, []string{"FLANNEL_SUBNET on line 2", "not inside FLANNEL_NETWORK"}},
		{"subnet too small", network + "FLANNEL_SUBNET=10.1.17.1/31\n" + mtu + ipmasq, []string{"FLANNEL_SUBNET on line 2", "too small"}},
		{"ipv6 subnet outside network", "FLANNEL_IPV6_NETWORK=fd00:10::/56\nFLANNEL_IPV6_SUBNET=fd00:20::/64\n" + mtu + ipmasq, []string{"FLANNEL_IPV6_SUBNET on line 2", "not inside FLANNEL_IPV6_NETWORK \"fd00:10::/56\""}},
		{"ipv6 subnet too small", "FLANNEL_IPV6_NETWORK=fd00:10::/56\nFLANNEL_IPV6_SUBNET=fd00:10::1/127\n" + mtu + ipmasq, []string{"FLANNEL_IPV6_SUBNET on line 2", "too small"}},
		{"mtu zero", network + subnet + "FLANNEL_MTU=0\n" + ipmasq, []string{`FLANNEL_MTU on line 3 "FLANNEL_MTU=0"`, "MTU 0 is out of range: expected 68 to 65535"}},
		{"mtu too small", network + subnet + "FLANNEL_MTU=67\n" + ipmasq, []string{"FLANNEL_MTU on line 3", "out of range"}},
		{"mtu too large", network + subnet + "FLANNEL_MTU=65536\n" + ipmasq, []string{"FLANNEL_MTU on line 3", "out of range"}},
		{"mtu beyond uint32", network + subnet + "FLANNEL_MTU=99999999999999999999\n" + ipmasq, []string{"FLANNEL_MTU on line 3", "out of range"}},
		{"mtu negative", network + subnet + "FLANNEL_MTU=-1450\n" + ipmasq, []string{"FLANNEL_MTU on line 3", `invalid MTU "-1450"`}},
		{"mtu not a number", network + subnet + "FLANNEL_MTU=abc\n" + ipmasq, []string{"FLANNEL_MTU on line 3", `invalid MTU "abc"`}},
		{"mtu with fraction", network + subnet + "FLANNEL_MTU=1450.0\n" + ipmasq, []string{"FLANNEL_MTU on line 3", `invalid MTU "1450.0"`}},
		{"ipmasq not a boolean", network + subnet + mtu + "FLANNEL_IPMASQ=yes\n", []string{`FLANNEL_IPMASQ on line 4 "FLANNEL_IPMASQ=yes"`, `invalid value "yes": expected true or false`}},
		{"ipmasq capitalized", network + subnet + mtu + "FLANNEL_IPMASQ=True\n", []string{"FLANNEL_IPMASQ on line 4", "expected true or false"}},
		{"long line is cut", network + subnet + mtu + "FLANNEL_IPMASQ=" + strings.Repeat("x", 500) + "\n", []string{`xxx"...`}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSubnetEnv([]byte(tt.data))
			if err == nil {
				t.Fatalf("ParseSubnetEnv() = %+v, want an error", got)
			}
			if !errors.Is(err, ErrInvalidSubnetEnv) {
				t.Errorf("ParseSubnetEnv() error %q does not wrap ErrInvalidSubnetEnv", err)
			}
			for _, fragment := range tt.want {
				if !strings.Contains(err.Error(), fragment) {
					t.Errorf("ParseSubnetEnv() error %q does not contain %q", err, fragment)
				}
			}
			if len(err.Error()) > 400 {
				t.Errorf("ParseSubnetEnv() error is %d bytes long, want at most 400", len(err.Error()))
			}
		})
	}
}
