package firewall

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func addrPort(addr string, port int) string {
	return net.JoinHostPort(addr, itoa(port))
}

func itoa(n int) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(n)).String()[len("0.0.0.0:"):]
}

func forward(hostPort, guestPort int, proto string, guest netip.Addr) PortForward {
	return PortForward{HostPort: uint16(hostPort), GuestPort: uint16(guestPort), Proto: proto, GuestIP: guest}
}

// ptpGuest is a guest on its own host device, as with a ptp network.
func (l *lab) ptpGuest(t testing.TB, dev, mac string, addrs ...string) *guest {
	return l.guest(t, guestSpec{dev: dev, mac: mac, addrs: addrs})
}

func TestMasquerade(t *testing.T) {
	l := newLab(t)
	g := l.ptpGuest(t, "kvt1", "52:54:00:00:01:02", "10.1.0.2/24", "fd00:1::2/64")
	serveTCP(t, l.peer, addrPort(peerAddr4, 7000))
	serveTCP(t, l.peer, addrPort(peerAddr6, 7000))

	// Without masquerade the peer cannot reply, because it has no route back.
	mustNotReach(t, g.ns, "", addrPort(peerAddr4, 7000))

	a := g.attachment("net1")
	a.Masquerade, a.MasqueradeIPv6 = true, true
	vm := VM{ID: "vm-masq", Attachments: []Attachment{a}}
	r := l.mustAdd(vm)
	mustSee(t, g.ns, addrPort(peerAddr4, 7000), hostUplink4)
	mustSee(t, g.ns, addrPort(peerAddr6, 7000), hostUplink6)

	l.mustRemove(vm, r)
	mustNotReach(t, g.ns, "", addrPort(peerAddr4, 7000))
}

func TestMasqueradeIPv6OnlyWhenAsked(t *testing.T) {
	l := newLab(t)
	g := l.ptpGuest(t, "kvt1", "52:54:00:00:01:02", "10.1.0.2/24", "fd00:1::2/64")
	serveTCP(t, l.peer, addrPort(peerAddr4, 7000))
	serveTCP(t, l.peer, addrPort(peerAddr6, 7000))
	a := g.attachment("net1")
	a.Masquerade = true
	l.mustAdd(VM{ID: "vm-masq4", Attachments: []Attachment{a}})
	mustSee(t, g.ns, addrPort(peerAddr4, 7000), hostUplink4)
	mustNotReach(t, g.ns, "", addrPort(peerAddr6, 7000))
}

func TestSameBridgeGuests(t *testing.T) {
	l := newLab(t)
	g1 := l.guest(t, guestSpec{dev: "kvt1", bridge: "kvbr0", mac: "52:54:00:00:01:02", addrs: []string{"10.5.0.2/24", "fd00:5::2/64"}})
	g2 := l.guest(t, guestSpec{dev: "kvt2", bridge: "kvbr0", mac: "52:54:00:00:01:03", addrs: []string{"10.5.0.3/24", "fd00:5::3/64"}})
	for _, g := range []*guest{g1, g2} {
		a := g.attachment("br")
		a.Masquerade, a.MasqueradeIPv6 = true, true
		l.mustAdd(VM{ID: "vm-" + g.spec.dev, Attachments: []Attachment{a}})
	}
	serveTCP(t, g2.ns, addrPort("10.5.0.3", 80))
	serveTCP(t, g2.ns, addrPort("fd00:5::3", 80))

	// Bridged traffic passes this namespace's hooks (bridge netfilter is on
	// in a new namespace), and stays unmasqueraded inside the subnet.
	mustSee(t, g1.ns, addrPort("10.5.0.3", 80), "10.5.0.2")
	mustSee(t, g1.ns, addrPort("fd00:5::3", 80), "fd00:5::2")
}

func TestNetworksSeparated(t *testing.T) {
	l := newLab(t)
	g1 := l.ptpGuest(t, "kvt1", "52:54:00:00:01:02", "10.1.0.2/24", "fd00:1::2/64")
	g4 := l.ptpGuest(t, "kvt4", "52:54:00:00:04:02", "10.4.0.2/24", "fd00:4::2/64")
	serveTCP(t, g4.ns, addrPort("10.4.0.2", 80))
	serveTCP(t, g4.ns, addrPort("fd00:4::2", 80))
	mustSee(t, g1.ns, addrPort("10.4.0.2", 80), "10.1.0.2")

	l.mustAdd(VM{ID: "vm-a", Attachments: []Attachment{g1.attachment("neta")}})
	l.mustAdd(VM{ID: "vm-b", Attachments: []Attachment{g4.attachment("netb")}})
	mustNotReach(t, g1.ns, "", addrPort("10.4.0.2", 80))
	mustNotReach(t, g1.ns, "", addrPort("fd00:4::2", 80))
}

func TestIsolated(t *testing.T) {
	l := newLab(t)
	g := l.ptpGuest(t, "kvt3", "52:54:00:00:03:02", "10.3.0.2/24", "fd00:3::2/64")
	other := l.ptpGuest(t, "kvt4", "52:54:00:00:04:02", "10.4.0.2/24")
	serveTCP(t, l.ns, addrPort("10.3.0.1", 5000))
	serveTCP(t, l.ns, addrPort(hostUplink4, 5000))
	serveTCP(t, l.ns, addrPort("fd00:3::1", 5000))
	serveTCP(t, l.peer, addrPort(peerAddr4, 7000))
	serveTCP(t, l.peer, addrPort(peerAddr6, 7000))
	serveTCP(t, other.ns, addrPort("10.4.0.2", 80))
	serveTCP(t, g.ns, addrPort("10.3.0.2", 6000))

	a := g.attachment("restricted")
	a.Isolated = true
	a.Masquerade = true // ignored for an isolated attachment
	l.mustAdd(VM{ID: "vm-iso", Attachments: []Attachment{a}})
	// The peer routes replies to the host, so only the firewall stops these.
	l.peer.Run(t, "ip", "route", "add", "10.3.0.0/24", "via", hostUplink4)
	l.peer.Run(t, "ip", "-6", "route", "add", "fd00:3::/64", "via", hostUplink6)

	mustSee(t, g.ns, addrPort("10.3.0.1", 5000), "10.3.0.2")
	mustSee(t, g.ns, addrPort(hostUplink4, 5000), "10.3.0.2")
	mustSee(t, g.ns, addrPort("fd00:3::1", 5000), "fd00:3::2")
	mustNotReach(t, g.ns, "", addrPort(peerAddr4, 7000))
	mustNotReach(t, g.ns, "", addrPort(peerAddr6, 7000))
	mustNotReach(t, g.ns, "", addrPort("10.4.0.2", 80))
	// Nothing beyond the host opens connections to the isolated guest either.
	mustNotReach(t, l.peer, "", addrPort("10.3.0.2", 6000))
}

// forwardLab is a lab with one guest that has forwarded ports and servers
// listening on its ports 80, 81, 90-92 (TCP) and 53 (UDP).
type forwardLab struct {
	*lab
	g  *guest
	vm VM
	r  Receipt
}

func newForwardLab(t *testing.T) *forwardLab {
	l := newLab(t)
	g := l.ptpGuest(t, "kvt1", "52:54:00:00:01:02", "10.1.0.2/24", "fd00:1::2/64")
	g4, g6 := g.addr("4"), g.addr("6")
	for _, port := range []int{80, 81, 90, 91, 92} {
		serveTCP(t, g.ns, addrPort("0.0.0.0", port))
	}
	serveUDP(t, g.ns, addrPort("10.1.0.2", 53))
	serveUDP(t, g.ns, addrPort("fd00:1::2", 53))

	a := g.attachment("net1")
	a.Masquerade = true
	specific := forward(8081, 81, "tcp", g4)
	specific.HostIP = netip.MustParseAddr(hostUplink4)
	rng := forward(9000, 90, "tcp", g4)
	rng.HostPortEnd = 9002
	a.Ports = []PortForward{
		forward(8080, 80, "tcp", g4),
		specific,
		rng,
		forward(5353, 53, "udp", g4),
		forward(8086, 80, "tcp", g6),
		forward(5353, 53, "udp", g6),
	}
	f := &forwardLab{lab: l, g: g, vm: VM{ID: "vm-fwd", Attachments: []Attachment{a}}}
	f.r = l.mustAdd(f.vm)
	return f
}

func TestForwardFromPeer(t *testing.T) {
	f := newForwardLab(t)
	// A forward from another host keeps the client's address.
	mustSee(t, f.peer, addrPort(hostUplink4, 8080), peerAddr4)
	mustSee(t, f.peer, addrPort(hostUplink4, 8081), peerAddr4)
	mustSee(t, f.peer, addrPort(hostUplink6, 8086), peerAddr6)
	for _, port := range []int{9000, 9001, 9002} {
		mustSee(t, f.peer, addrPort(hostUplink4, port), peerAddr4)
	}
	for _, target := range []string{addrPort(hostUplink4, 5353), addrPort(hostUplink6, 5353)} {
		got, err := seenUDP(f.peer, target, reachTimeout)
		if err != nil {
			t.Errorf("udp from peer to %s: %v", target, err)
		} else if want := hostOf(target); got != peerAddr4 && got != peerAddr6 {
			t.Errorf("udp from peer to %s: server saw %s, want the peer's address of the family of %s", target, got, want)
		}
	}
	// 8081 listens on the uplink address only.
	f.ns.Run(t, "ip", "addr", "add", "198.51.100.1/24", "dev", "kvup0")
	f.peer.Run(t, "ip", "addr", "add", "198.51.100.2/24", "dev", "eth0")
	mustSee(t, f.peer, addrPort("198.51.100.1", 8080), "198.51.100.2")
	mustNotReach(t, f.peer, "", addrPort("198.51.100.1", 8081))

	f.mustRemove(f.vm, f.r)
	mustNotReach(t, f.peer, "", addrPort(hostUplink4, 8080))
}

func TestForwardRangeMapsPortByPort(t *testing.T) {
	f := newForwardLab(t)
	// The guest servers answer with the client address only, so check the
	// mapping in the DNAT map instead.
	out := f.ns.Run(t, "nft", "list", "map", "inet", "kvmnet", "dnat4_any")
	for _, want := range []string{"tcp . 9000 comment \"vm-fwd\" : 10.1.0.2 . 90", "tcp . 9001 comment \"vm-fwd\" : 10.1.0.2 . 91", "tcp . 9002 comment \"vm-fwd\" : 10.1.0.2 . 92"} {
		if !strings.Contains(out, want) {
			t.Errorf("map dnat4_any lacks %q:\n%s", want, out)
		}
	}
}

func TestForwardFromHostLoopback(t *testing.T) {
	f := newForwardLab(t)
	sysctl := "net.ipv4.conf.kvt1.route_localnet"
	if got := strings.TrimSpace(f.ns.Run(t, "sysctl", "-n", sysctl)); got != "1" {
		t.Errorf("%s = %s after Add, want 1", sysctl, got)
	}
	wantSysctl := SysctlChange{Name: sysctl, Device: "kvt1", Previous: "0", Value: "1"}
	if len(f.r.Sysctls) != 1 || f.r.Sysctls[0] != wantSysctl {
		t.Errorf("receipt sysctls = %+v, want [%+v]", f.r.Sysctls, wantSysctl)
	}
	wantRoute := RouteChange{Device: "kvt1", Route: "local ::1 dev kvt1 table local"}
	if len(f.r.Routes) != 1 || f.r.Routes[0] != wantRoute {
		t.Errorf("receipt routes = %+v, want [%+v]", f.r.Routes, wantRoute)
	}
	loopbackRoutes := func() string {
		return f.ns.Run(t, "ip", "-6", "route", "show", "table", "local", "dev", "kvt1", "type", "local", "::1")
	}
	if got := loopbackRoutes(); !strings.Contains(got, "::1") {
		t.Errorf("no local route for ::1 on kvt1 after Add: %q", got)
	}
	// The guest sees the gateway, so its reply comes back to the host.
	mustSee(t, f.ns, addrPort("127.0.0.1", 8080), "10.1.0.1")
	mustSee(t, f.ns, addrPort("::1", 8086), "fd00:1::1")
	if got, err := seenUDP(f.ns, addrPort("127.0.0.1", 5353), reachTimeout); err != nil || got != "10.1.0.1" {
		t.Errorf("udp from host to 127.0.0.1:5353: saw %q, %v; want 10.1.0.1", got, err)
	}

	f.mustRemove(f.vm, f.r)
	if got := strings.TrimSpace(f.ns.Run(t, "sysctl", "-n", sysctl)); got != "0" {
		t.Errorf("%s = %s after Remove, want 0", sysctl, got)
	}
	if got := loopbackRoutes(); got != "" {
		t.Errorf("local route for ::1 on kvt1 left after Remove: %q", got)
	}
}

func TestForwardFromHostAddress(t *testing.T) {
	f := newForwardLab(t)
	mustSee(t, f.ns, addrPort(hostUplink4, 8080), hostUplink4)
	mustSee(t, f.ns, addrPort(hostUplink4, 8081), hostUplink4)
	mustSee(t, f.ns, addrPort(hostUplink6, 8086), hostUplink6)
}

func TestForwardHairpin(t *testing.T) {
	f := newForwardLab(t)
	// The guest reaches itself through the host's address; without source
	// NAT it would answer itself directly.
	mustSee(t, f.g.ns, addrPort(hostUplink4, 8080), "10.1.0.1")
	mustSee(t, f.g.ns, addrPort("10.1.0.1", 8080), "10.1.0.1")
	mustSee(t, f.g.ns, addrPort(hostUplink6, 8086), "fd00:1::1")
}

func TestForwardHairpinSameBridge(t *testing.T) {
	l := newLab(t)
	g1 := l.guest(t, guestSpec{dev: "kvt1", bridge: "kvbr0", mac: "52:54:00:00:01:02", addrs: []string{"10.5.0.2/24"}})
	g2 := l.guest(t, guestSpec{dev: "kvt2", bridge: "kvbr0", mac: "52:54:00:00:01:03", addrs: []string{"10.5.0.3/24"}})
	serveTCP(t, g2.ns, addrPort("10.5.0.3", 80))
	a2 := g2.attachment("br")
	a2.Ports = []PortForward{forward(8080, 80, "tcp", g2.addr("4"))}
	l.mustAdd(VM{ID: "vm-1", Attachments: []Attachment{g1.attachment("br")}})
	l.mustAdd(VM{ID: "vm-2", Attachments: []Attachment{a2}})
	mustSee(t, g1.ns, addrPort(hostUplink4, 8080), "10.5.0.1")
	mustSee(t, l.ns, addrPort("127.0.0.1", 8080), "10.5.0.1")
	if got := strings.TrimSpace(l.ns.Run(t, "sysctl", "-n", "net.ipv4.conf.kvbr0.route_localnet")); got != "1" {
		t.Errorf("route_localnet of the bridge = %s, want 1", got)
	}
}

func TestConflict(t *testing.T) {
	l := newFWHost(t)
	guestA := netip.MustParseAddr("10.1.0.2")
	guestB := netip.MustParseAddr("10.1.0.3")
	vmOf := func(id, dev string, guest netip.Addr, ports ...PortForward) VM {
		return VM{ID: id, Attachments: []Attachment{{
			Network: "n", HostDevice: dev, Addrs: []netip.Prefix{netip.PrefixFrom(guest, 24)}, Ports: ports,
		}}}
	}
	on := func(pf PortForward, host string) PortForward {
		pf.HostIP = netip.MustParseAddr(host)
		return pf
	}
	span := func(pf PortForward, end int) PortForward {
		pf.HostPortEnd = uint16(end)
		return pf
	}
	l.ns.Run(t, "ip", "link", "add", "kvt1", "type", "veth", "peer", "name", "kvt2")
	l.mustAdd(vmOf("vm-a", "kvt1", guestA,
		forward(8080, 80, "tcp", guestA),
		on(forward(9090, 90, "tcp", guestA), "192.0.2.1"),
		span(forward(7000, 70, "udp", guestA), 7009)))
	baseline := l.ruleset()

	tests := []struct {
		name    string
		forward PortForward
		port    string
	}{
		{"same port", forward(8080, 81, "tcp", guestB), "8080/tcp"},
		{"specific host address on wildcard port", on(forward(8080, 81, "tcp", guestB), "192.0.2.7"), "8080/tcp"},
		{"wildcard on specific host address port", forward(9090, 91, "tcp", guestB), "9090/tcp"},
		{"same specific host address", on(forward(9090, 91, "tcp", guestB), "192.0.2.1"), "9090/tcp"},
		{"overlapping range", span(forward(7005, 75, "udp", guestB), 7020), "7005/udp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.add(vmOf("vm-b", "kvt2", guestB, tt.forward))
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("Add = %v, want a conflict", err)
			}
			var conflict *ConflictError
			if !errors.As(err, &conflict) || conflict.Owner != "vm-a" {
				t.Errorf("Add = %v, want a *ConflictError with owner vm-a", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.port) || !strings.Contains(msg, "vm-a") {
				t.Errorf("error %q does not name port %s and owner vm-a", msg, tt.port)
			}
			if got := l.ruleset(); got != baseline {
				t.Errorf("ruleset changed by a rejected Add:\n%s", got)
			}
		})
	}

	t.Run("other protocol and other specific address", func(t *testing.T) {
		vm := vmOf("vm-c", "kvt2", guestB,
			forward(8080, 80, "udp", guestB),
			on(forward(9090, 90, "tcp", guestB), "192.0.2.2"),
			forward(7010, 70, "udp", guestB))
		r := l.mustAdd(vm)
		l.mustRemove(vm, r)
	})
}

func TestAntiSpoofSourceAddress(t *testing.T) {
	l := newLab(t)
	g := l.ptpGuest(t, "kvt1", "52:54:00:00:01:02", "10.1.0.2/24", "fd00:1::2/64")
	serveTCP(t, l.ns, addrPort("::", 5000))
	g.ns.Run(t, "ip", "addr", "add", "10.1.0.99/24", "dev", "eth0")
	g.ns.Run(t, "ip", "-6", "addr", "add", "fd00:1::99/64", "dev", "eth0", "nodad")
	// Without the firewall the spoofed source gets through.
	if _, err := seenTCP(g.ns, "10.1.0.99", addrPort("10.1.0.1", 5000), reachTimeout); err != nil {
		t.Fatalf("spoofed source before Add: %v", err)
	}

	l.mustAdd(VM{ID: "vm-spoof", Attachments: []Attachment{g.attachment("net1")}})
	mustNotReach(t, g.ns, "10.1.0.99", addrPort("10.1.0.1", 5000))
	mustNotReach(t, g.ns, "fd00:1::99", addrPort("fd00:1::1", 5000))
	if got, err := seenTCP(g.ns, "10.1.0.2", addrPort("10.1.0.1", 5000), reachTimeout); err != nil || got != "10.1.0.2" {
		t.Errorf("own address after Add: saw %q, %v", got, err)
	}
	if got, err := seenTCP(g.ns, "fd00:1::2", addrPort("fd00:1::1", 5000), reachTimeout); err != nil || got != "fd00:1::2" {
		t.Errorf("own IPv6 address after Add: saw %q, %v", got, err)
	}
}

func TestAntiSpoofMAC(t *testing.T) {
	l := newLab(t)
	g := l.ptpGuest(t, "kvt1", "52:54:00:00:01:02", "10.1.0.2/24")
	serveTCP(t, l.ns, addrPort("10.1.0.1", 5000))
	l.mustAdd(VM{ID: "vm-mac", Attachments: []Attachment{g.attachment("net1")}})
	mustSee(t, g.ns, addrPort("10.1.0.1", 5000), "10.1.0.2")

	g.ns.Run(t, "ip", "link", "set", "eth0", "address", "52:54:00:00:01:99")
	l.ns.Run(t, "ip", "neigh", "flush", "dev", "kvt1")
	mustNotReach(t, g.ns, "", addrPort("10.1.0.1", 5000))
}

func TestAntiSpoofARPSender(t *testing.T) {
	l := newLab(t)
	g := l.ptpGuest(t, "kvt1", "52:54:00:00:01:02", "10.1.0.2/24")
	arping := func(source string) error {
		_, err := g.ns.Try("busybox", "arping", "-q", "-c", "1", "-w", "1", "-I", "eth0", "-s", source, "10.1.0.1")
		return err
	}
	for _, a := range []string{"10.1.0.50/32", "10.1.0.51/32"} {
		g.ns.Run(t, "ip", "addr", "add", a, "dev", "eth0", "noprefixroute")
	}
	if err := arping("10.1.0.50"); err != nil {
		t.Fatalf("arping with another sender address before Add: %v", err)
	}
	l.mustAdd(VM{ID: "vm-arp", Attachments: []Attachment{g.attachment("net1")}})
	if err := arping("10.1.0.51"); err == nil {
		t.Error("arping with another sender address after Add got a reply, want it dropped")
	}
	if err := arping("10.1.0.2"); err != nil {
		t.Errorf("arping with the guest's own address after Add: %v", err)
	}
}
