package firewall

import (
	"net/netip"
	"testing"

	"github.com/kvmnet/kvmnet/internal/netns"
	"github.com/kvmnet/kvmnet/internal/testenv"
)

// fwHost is a test namespace standing for the host, with a Firewall opened
// in it. Every firewall call runs on a thread inside the namespace.
type fwHost struct {
	t  testing.TB
	ns *testenv.NS
	fw *Firewall
}

func newFWHost(t testing.TB) *fwHost {
	t.Helper()
	h := &fwHost{t: t, ns: testenv.NewNS(t, "fw")}
	h.do(func() error {
		fw, err := New()
		h.fw = fw
		return err
	})
	t.Cleanup(func() {
		if err := h.fw.Close(); err != nil {
			t.Errorf("close firewall: %v", err)
		}
	})
	return h
}

// do runs fn on a thread in the host namespace and fails the test on error.
func (h *fwHost) do(fn func() error) {
	h.t.Helper()
	if err := netns.Do(h.ns.Path, fn); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fwHost) add(vm VM) (Receipt, error) {
	var r Receipt
	err := netns.Do(h.ns.Path, func() error {
		var err error
		r, err = h.fw.Add(vm)
		return err
	})
	return r, err
}

func (h *fwHost) mustAdd(vm VM) Receipt {
	h.t.Helper()
	r, err := h.add(vm)
	if err != nil {
		h.t.Fatalf("Add(%s): %v", vm.ID, err)
	}
	return r
}

func (h *fwHost) remove(vm VM, r Receipt) error {
	return netns.Do(h.ns.Path, func() error { return h.fw.Remove(vm, r) })
}

func (h *fwHost) mustRemove(vm VM, r Receipt) {
	h.t.Helper()
	if err := h.remove(vm, r); err != nil {
		h.t.Fatalf("Remove(%s): %v", vm.ID, err)
	}
}

func (h *fwHost) ruleset() string {
	h.t.Helper()
	return h.ns.Run(h.t, "nft", "list", "ruleset")
}

// lab is a host namespace with a firewall, and a peer namespace standing for
// another host on the uplink 192.0.2.0/24 and fd00:9::/64. The peer has no
// route to any guest subnet, so its traffic reaches a guest only through
// DNAT, and a guest reaches it only through masquerade.
type lab struct {
	*fwHost
	peer *testenv.NS
}

const (
	hostUplink4 = "192.0.2.1"
	peerAddr4   = "192.0.2.2"
	hostUplink6 = "fd00:9::1"
	peerAddr6   = "fd00:9::2"
)

func newLab(t testing.TB) *lab {
	t.Helper()
	l := &lab{fwHost: newFWHost(t), peer: testenv.NewNS(t, "fp")}
	h := l.ns
	h.Run(t, "ip", "link", "add", "kvup0", "type", "veth", "peer", "name", "eth0", "netns", l.peer.Name)
	h.Run(t, "ip", "addr", "add", hostUplink4+"/24", "dev", "kvup0")
	h.Run(t, "ip", "addr", "add", hostUplink6+"/64", "dev", "kvup0", "nodad")
	h.Run(t, "ip", "link", "set", "kvup0", "up")
	h.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	l.peer.Run(t, "ip", "addr", "add", peerAddr4+"/24", "dev", "eth0")
	l.peer.Run(t, "ip", "addr", "add", peerAddr6+"/64", "dev", "eth0", "nodad")
	l.peer.Run(t, "ip", "link", "set", "eth0", "up")
	return l
}

// guestSpec describes a namespace standing for a guest. A veth pair stands
// for the tap: eth0 in the guest namespace, dev in the host namespace.
type guestSpec struct {
	dev    string
	bridge string // host bridge that dev is enslaved to; created on first use
	mac    string
	// addrs are the guest's addresses; their first address in the subnet
	// is the host-side gateway.
	addrs []string
}

type guest struct {
	ns   *testenv.NS
	spec guestSpec
}

func (l *lab) guest(t testing.TB, spec guestSpec) *guest {
	t.Helper()
	g := &guest{ns: testenv.NewNS(t, "fg"), spec: spec}
	h := l.ns
	h.Run(t, "ip", "link", "add", spec.dev, "type", "veth", "peer", "name", "eth0", "netns", g.ns.Name)
	g.ns.Run(t, "ip", "link", "set", "eth0", "address", spec.mac)
	g.ns.Run(t, "ip", "link", "set", "eth0", "up")
	gwDev := spec.dev
	if spec.bridge != "" {
		gwDev = spec.bridge
		if _, err := h.Try("ip", "link", "show", spec.bridge); err != nil {
			h.Run(t, "ip", "link", "add", spec.bridge, "type", "bridge")
			h.Run(t, "ip", "link", "set", spec.bridge, "up")
		}
		h.Run(t, "ip", "link", "set", spec.dev, "master", spec.bridge)
	}
	h.Run(t, "ip", "link", "set", spec.dev, "up")
	for _, p := range prefixes(spec.addrs...) {
		gw := gatewayOf(p)
		family := "-4"
		if p.Addr().Is6() {
			family = "-6"
		}
		g.ns.Run(t, "ip", family, "addr", "add", p.String(), "dev", "eth0", "nodad")
		g.ns.Run(t, "ip", family, "route", "add", "default", "via", gw.Addr().String())
		if _, err := h.Try("ip", family, "addr", "add", gw.String(), "dev", gwDev, "nodad"); err != nil && spec.bridge == "" {
			t.Fatal(err)
		}
	}
	return g
}

// gatewayOf returns the first address of p's subnet, with p's length.
func gatewayOf(p netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(p.Masked().Addr().Next(), p.Bits())
}

// attachment returns the attachment of g with anti-spoofing on, as the core
// passes it.
func (g *guest) attachment(network string) Attachment {
	a := Attachment{
		Network: network, HostDevice: g.spec.dev, Bridge: g.spec.bridge,
		MAC: mustMAC(g.spec.mac), Addrs: prefixes(g.spec.addrs...), AntiSpoof: true,
	}
	for _, p := range a.Addrs {
		a.Gateways = append(a.Gateways, gatewayOf(p).Addr())
	}
	return a
}

// addr returns the guest's address of the family of want ("4" or "6").
func (g *guest) addr(family string) netip.Addr {
	for _, p := range prefixes(g.spec.addrs...) {
		if p.Addr().Is4() == (family == "4") {
			return p.Addr()
		}
	}
	panic("guest has no IPv" + family + " address")
}
