package firewall

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPrefixRange(t *testing.T) {
	tests := []struct{ prefix, first, last string }{
		{"10.88.0.0/16", "10.88.0.0", "10.88.255.255"},
		{"10.1.0.2/32", "10.1.0.2", "10.1.0.2"},
		{"fd00:1::/64", "fd00:1::", "fd00:1::ffff:ffff:ffff:ffff"},
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255"},
	}
	for _, tt := range tests {
		first, last := prefixRange(netip.MustParsePrefix(tt.prefix))
		if first.String() != tt.first || last.String() != tt.last {
			t.Errorf("prefixRange(%s) = %s, %s; want %s, %s", tt.prefix, first, last, tt.first, tt.last)
		}
	}
}

func TestForwardElementsOfRange(t *testing.T) {
	guest := netip.MustParseAddr("10.1.0.2")
	pf := PortForward{HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 8000, HostPortEnd: 8002, GuestPort: 80, Proto: "udp", GuestIP: guest}
	elems := forwardElements(&pf)
	if len(elems) != 3 {
		t.Fatalf("got %d elements, want 3", len(elems))
	}
	for i, e := range elems {
		if e.set != mapDNAT4Addr || e.kind != kindClaim {
			t.Errorf("element %d: set %s kind %d, want %s claim", i, e.set, e.kind, mapDNAT4Addr)
		}
		claim, ok := claimFromKey(e.set, e.key)
		if !ok {
			t.Fatalf("element %d: key %x does not decode", i, e.key)
		}
		want := portClaim{proto: "udp", hostIP: pf.HostIP, hostPort: 8000 + uint16(i)}
		if claim != want {
			t.Errorf("element %d: claim %+v, want %+v", i, claim, want)
		}
		wantValue := concat(guest.AsSlice(), portBytes(80+uint16(i)))
		if string(e.value) != string(wantValue) {
			t.Errorf("element %d: value %x, want %x", i, e.value, wantValue)
		}
	}
}

func TestNewPlanLoopbackUses(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("fd00:1::2")
	vm := VM{ID: "vm-1", Attachments: []Attachment{{
		Network: "n", HostDevice: "kvt1", Bridge: "kvbr0", Addrs: prefixes("10.1.0.2/24", "fd00:1::2/64"),
		Ports: []PortForward{
			{HostPort: 80, GuestPort: 80, Proto: "tcp", GuestIP: v4},
			{HostPort: 81, GuestPort: 80, Proto: "tcp", GuestIP: v4},
			{HostIP: netip.MustParseAddr("fd00:9::1"), HostPort: 80, GuestPort: 80, Proto: "tcp", GuestIP: v6},
		},
	}}}
	p, err := newPlan(&vm)
	if err != nil {
		t.Fatal(err)
	}
	// One IPv4 use on the bridge; the IPv6 forward listens on a specific
	// address that is not ::1, so it needs no loopback route.
	if len(p.localnet) != 1 || p.localnet[0] != (localnetUse{device: "kvbr0", guest: v4}) {
		t.Errorf("localnet uses = %+v, want one IPv4 use of kvbr0", p.localnet)
	}
	if len(p.guards) != 0 {
		t.Errorf("guards = %+v without AntiSpoof, want none", p.guards)
	}
}

func TestNewPlanIsolatedHasNoMasquerade(t *testing.T) {
	vm := VM{ID: "vm-1", Attachments: []Attachment{{
		Network: "n", HostDevice: "kvt1", Addrs: prefixes("10.1.0.2/24"), Masquerade: true, Isolated: true,
	}}}
	p, err := newPlan(&vm)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range p.elements {
		if e.set == setMasquerade4 {
			t.Errorf("isolated attachment got a %s element", e.set)
		}
	}
}

func TestConflictErrorIs(t *testing.T) {
	err := error(&ConflictError{Port: 8080, Proto: "tcp", Owner: "web"})
	if !errors.Is(err, ErrConflict) {
		t.Error("errors.Is(ConflictError, ErrConflict) = false")
	}
	if got, want := err.Error(), "host port 8080/tcp on every host address is already forwarded to vm web"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
