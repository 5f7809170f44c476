package firewall

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePortSpec(t *testing.T) {
	v4 := netip.MustParseAddr("127.0.0.1")
	v6 := netip.MustParseAddr("::1")
	tests := []struct {
		in   string
		want PortSpec
	}{
		{"8080:80", PortSpec{PortForward: PortForward{HostPort: 8080, HostPortEnd: 8080, GuestPort: 80, Proto: "tcp"}}},
		{"8080:80/udp", PortSpec{PortForward: PortForward{HostPort: 8080, HostPortEnd: 8080, GuestPort: 80, Proto: "udp"}}},
		{"127.0.0.1:8080:80", PortSpec{PortForward: PortForward{HostIP: v4, HostPort: 8080, HostPortEnd: 8080, GuestPort: 80, Proto: "tcp"}}},
		{"[::1]:8080:80/tcp", PortSpec{PortForward: PortForward{HostIP: v6, HostPort: 8080, HostPortEnd: 8080, GuestPort: 80, Proto: "tcp"}}},
		{"8000-8009:80-89", PortSpec{PortForward: PortForward{HostPort: 8000, HostPortEnd: 8009, GuestPort: 80, Proto: "tcp"}}},
		{"lan:8080:80", PortSpec{Network: "lan", PortForward: PortForward{HostPort: 8080, HostPortEnd: 8080, GuestPort: 80, Proto: "tcp"}}},
		{"lan:127.0.0.1:8080:80/udp", PortSpec{Network: "lan", PortForward: PortForward{HostIP: v4, HostPort: 8080, HostPortEnd: 8080, GuestPort: 80, Proto: "udp"}}},
		{"lan:[::1]:8080:80", PortSpec{Network: "lan", PortForward: PortForward{HostIP: v6, HostPort: 8080, HostPortEnd: 8080, GuestPort: 80, Proto: "tcp"}}},
		{"lan::8080:80", PortSpec{Network: "lan", PortForward: PortForward{HostPort: 8080, HostPortEnd: 8080, GuestPort: 80, Proto: "tcp"}}},
		{"10.0.0.1::8080:80", PortSpec{Network: "10.0.0.1", PortForward: PortForward{HostPort: 8080, HostPortEnd: 8080, GuestPort: 80, Proto: "tcp"}}},
		{"0.0.0.0:8080:80", PortSpec{PortForward: PortForward{HostIP: netip.IPv4Unspecified(), HostPort: 8080, HostPortEnd: 8080, GuestPort: 80, Proto: "tcp"}}},
		{"1:65535", PortSpec{PortForward: PortForward{HostPort: 1, HostPortEnd: 1, GuestPort: 65535, Proto: "tcp"}}},
		{"my_net.v2-x:9000:90", PortSpec{Network: "my_net.v2-x", PortForward: PortForward{HostPort: 9000, HostPortEnd: 9000, GuestPort: 90, Proto: "tcp"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePortSpec(tt.in)
			if err != nil {
				t.Fatalf("ParsePortSpec(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("ParsePortSpec(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParsePortSpecRejects(t *testing.T) {
	tests := []struct {
		in     string
		reason string
	}{
		{"", "empty"},
		{"8080", "fields"},
		{"8080:", "missing guest port"},
		{":80", "missing host port"},
		{"0:80", "not in 1-65535"},
		{"8080:65536", "not in 1-65535"},
		{"80a:80", "not a number"},
		{"+80:80", "not a number"},
		{"8080:80/sctp", "protocol"},
		{"8080:80/TCP", "protocol"},
		{"8080:80/tcp/udp", "protocol"},
		{"8009-8000:80-89", "ends before it starts"},
		{"8000-8009:80", "differ in length"},
		{"8000-8009:80-90", "differ in length"},
		{"1-2000:1-2000", "larger than"},
		{"::1:8080:80", "fields"},
		{":8080:80", "empty network name"},
		{"::8080:80", "empty network name"},
		{"[::1:8080:80", "missing ]"},
		{"[::1]8080:80", "want : after ]"},
		{"[10.0.0.1]:8080:80", "not an IPv6 address"},
		{"[fe80::1%eth0]:8080:80", "zones"},
		{"[::ffff:10.0.0.1]:8080:80", "IPv4-mapped"},
		{"[ff02::1]:8080:80", "multicast"},
		{"224.0.0.1:8080:80", "multicast"},
		{"lan:fd00::1:8080:80", "fields"},
		{"lan:host:8080:80", "not an IPv4 address"},
		{"-lan:8080:80", "network name"},
		{"la[n:8080:80", "brackets"},
		{"lan 1:8080:80", "not allowed"},
		{"8080:80\n", "not allowed"},
		{"a:b:c:d:e", "fields"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParsePortSpec(tt.in)
			if err == nil {
				t.Fatalf("ParsePortSpec(%q) succeeded, want an error about %q", tt.in, tt.reason)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("ParsePortSpec(%q) = %v, want an error wrapping ErrInvalid", tt.in, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.reason) {
				t.Errorf("ParsePortSpec(%q) = %q, want it to mention %q", tt.in, msg, tt.reason)
			}
			if quoted := strings.Trim(strings.TrimPrefix(msg, ErrInvalid.Error()+": port spec "), " "); !strings.HasPrefix(quoted, `"`) {
				t.Errorf("ParsePortSpec(%q) = %q, want the spec quoted in the message", tt.in, msg)
			}
		})
	}
}

// FuzzParsePortSpec checks that ParsePortSpec never panics, that every
// error wraps ErrInvalid, and that every accepted spec is a valid forward
// whose String form parses back to the same spec.
func FuzzParsePortSpec(f *testing.F) {
	for _, s := range []string{"8080:80", "lan:[::1]:8000-8009:80-89/udp", "127.0.0.1:1:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParsePortSpec(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParsePortSpec(%q) = %v, want an error wrapping ErrInvalid", s, err)
			}
			return
		}
		if spec.HostPort == 0 || spec.GuestPort == 0 || spec.HostPortEnd < spec.HostPort {
			t.Fatalf("ParsePortSpec(%q) = %+v: invalid ports", s, spec)
		}
		if int(spec.HostPortEnd-spec.HostPort)+int(spec.GuestPort) > 65535 {
			t.Fatalf("ParsePortSpec(%q) = %+v: guest range past 65535", s, spec)
		}
		if spec.Proto != "tcp" && spec.Proto != "udp" {
			t.Fatalf("ParsePortSpec(%q) = %+v: protocol", s, spec)
		}
		text := spec.PortForward.String()
		if spec.Network != "" {
			prefix := spec.Network + ":"
			if !spec.HostIP.IsValid() {
				prefix += ":"
			}
			text = prefix + text
		}
		again, err := ParsePortSpec(text)
		if err != nil {
			t.Fatalf("ParsePortSpec(%q) = %+v, but its form %q does not parse: %v", s, spec, text, err)
		}
		if again != spec {
			t.Fatalf("ParsePortSpec(%q) = %+v, but %q parses to %+v", s, spec, text, again)
		}
	})
}
