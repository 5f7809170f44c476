package kernel_test

import (
	"encoding/json"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet"
)

// tapName is the shape of a host device name: "kvm" and 12 base32 characters.
var tapName = regexp.MustCompile(`^kvm[a-z2-7]{12}$`)

func TestDefault(t *testing.T) {
	e := newEnv(t, "def")
	out := e.cli.Run("up", "vm-1", "--json")
	if out.Code != 0 {
		t.Fatalf("up failed:\n%s", out)
	}

	// The JSON result names every field a hypervisor wrapper reads.
	var raw struct {
		Interfaces []map[string]json.RawMessage `json:"interfaces"`
		DNS        json.RawMessage              `json:"dns"`
	}
	if err := json.Unmarshal([]byte(out.Stdout), &raw); err != nil {
		t.Fatalf("decode result: %v\n%s", err, out.Stdout)
	}
	if len(raw.Interfaces) != 1 {
		t.Fatalf("result has %d interfaces, want 1:\n%s", len(raw.Interfaces), out.Stdout)
	}
	for _, key := range []string{"network", "type", "hostDevice", "mac", "mtu", "addresses", "gateways", "routes"} {
		if _, ok := raw.Interfaces[0][key]; !ok {
			t.Errorf("result interface has no field %q:\n%s", key, out.Stdout)
		}
	}
	if raw.DNS == nil {
		t.Errorf("result has no field \"dns\":\n%s", out.Stdout)
	}

	var res kvmnet.Result
	if err := json.Unmarshal([]byte(out.Stdout), &res); err != nil {
		t.Fatalf("decode result: %v", err)
	}
	ifc := res.Interfaces[0]
	if ifc.Network != "default" || ifc.Type != "ptp" || ifc.GuestDevice != "eth0" || ifc.MTU != 1500 {
		t.Errorf("interface network=%q type=%q guest=%q mtu=%d, want default, ptp, eth0, 1500", ifc.Network, ifc.Type, ifc.GuestDevice, ifc.MTU)
	}
	if !tapName.MatchString(ifc.HostDevice) {
		t.Errorf("host device %q is not kvm followed by 12 base32 characters", ifc.HostDevice)
	}
	if mac, err := net.ParseMAC(ifc.MAC); err != nil || mac[0]&0x03 != 0x02 {
		t.Errorf("MAC %q is not a locally administered unicast address (%v)", ifc.MAC, err)
	}
	subnet := netip.MustParsePrefix("172.16.28.0/24")
	gw := netip.MustParseAddr("172.16.28.1")
	if len(ifc.Addresses) != 1 || ifc.Addresses[0].Bits() != 24 || !subnet.Contains(ifc.Addresses[0].Addr()) {
		t.Errorf("addresses %v, want one address in %s", ifc.Addresses, subnet)
	}
	if !slices.Equal(ifc.Gateways, []netip.Addr{gw}) {
		t.Errorf("gateways %v, want [%s]", ifc.Gateways, gw)
	}
	wantRoutes := []kvmnet.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), GW: gw}}
	if !slices.Equal(ifc.Routes, wantRoutes) {
		t.Errorf("routes %v, want %v", ifc.Routes, wantRoutes)
	}
	guest := guestAddr(t, ifc)

	// The tap: tun device in tap mode, owned by the VM, gateway without a
	// prefix route, and a host route to the guest.
	snap := e.ns.Snapshot(t)
	tap, ok := snap.Link(ifc.HostDevice)
	if !ok {
		t.Fatalf("no link %s in the namespace", ifc.HostDevice)
	}
	if tap.Type != "tap" || tap.Alias != "kvmnet vm=vm-1" || tap.MTU != 1500 {
		t.Errorf("tap %+v, want type tap, alias \"kvmnet vm=vm-1\", mtu 1500", tap)
	}
	if got := snap.AddrsOf(ifc.HostDevice); !slices.Equal(got, []string{"172.16.28.1/24"}) {
		t.Errorf("tap addresses %v, want [172.16.28.1/24]", got)
	}
	requireOnlyHostRoute(t, e, ifc.HostDevice, "-4", guest)
	if v := snap.Sysctls["net/ipv4/ip_forward"]; v != "1" {
		t.Errorf("ip_forward = %s, want 1", v)
	}

	// The reservation names the VM, in the state dir.
	if got := e.reservedBy("vm-1"); !slices.Equal(got, []string{"default/" + guest}) {
		t.Errorf("reservations of vm-1: %v, want [default/%s]", got, guest)
	}
	checkMasquerade(t, e.ns, guest, true)

	e.down("vm-1")
	e.requireBaseline()
}

// requireOnlyHostRoute checks that the main table routes nothing through
// dev but the single host route to guest.
func requireOnlyHostRoute(t *testing.T, e *env, dev, family, guest string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(e.ns.Run(t, "ip", family, "route", "show", "dev", dev)), "\n")
	if len(lines) != 1 || strings.Fields(lines[0])[0] != guest {
		t.Errorf("ip %s route show dev %s:\n%s\nwant only the host route to %s", family, dev, strings.Join(lines, "\n"), guest)
	}
}

func TestDefaultRestricted(t *testing.T) {
	e := newEnv(t, "restr")
	res := e.up("vm-1", "--net", "default-restricted")
	ifc := res.Interfaces[0]
	if ifc.Network != "default-restricted" || ifc.Type != "ptp" {
		t.Errorf("interface network=%q type=%q, want default-restricted, ptp", ifc.Network, ifc.Type)
	}
	subnet := netip.MustParsePrefix("172.31.0.0/16")
	if len(ifc.Addresses) != 1 || ifc.Addresses[0].Bits() != 16 || !subnet.Contains(ifc.Addresses[0].Addr()) {
		t.Errorf("addresses %v, want one address in %s", ifc.Addresses, subnet)
	}
	if len(ifc.Routes) != 0 {
		t.Errorf("routes %v, want none", ifc.Routes)
	}
	guest := guestAddr(t, ifc)
	snap := e.ns.Snapshot(t)
	if got := snap.AddrsOf(ifc.HostDevice); !slices.Equal(got, []string{"172.31.0.1/16"}) {
		t.Errorf("tap addresses %v, want [172.31.0.1/16]", got)
	}
	requireOnlyHostRoute(t, e, ifc.HostDevice, "-4", guest)
	if got := e.reservedBy("vm-1"); !slices.Equal(got, []string{"default-restricted/" + guest}) {
		t.Errorf("reservations of vm-1: %v, want [default-restricted/%s]", got, guest)
	}
	checkMasquerade(t, e.ns, guest, false)

	e.down("vm-1")
	e.requireBaseline()
}

func TestUpTwice(t *testing.T) {
	e := newEnv(t, "twice")
	res := e.up("vm-1")
	first := e.ns.Snapshot(t)

	stderr := e.upFails("vm-1")
	if !strings.Contains(stderr, "vm-1") || !strings.Contains(stderr, "already up") {
		t.Errorf("second up: error %q does not say that vm-1 is already up", stderr)
	}
	e.requireSame(first, "second up")
	if got := e.reservedBy("vm-1"); len(got) != 1 {
		t.Errorf("reservations of vm-1 after the second up: %v, want one", got)
	}
	show := e.cli.Run("show", "vm-1", "--json")
	var showResult kvmnet.Result
	if err := json.Unmarshal([]byte(show.Stdout), &showResult); show.Code != 0 || err != nil {
		t.Fatalf("show after the second up: %v\n%s", err, show)
	}
	if showResult.Interfaces[0].HostDevice != res.Interfaces[0].HostDevice || showResult.Interfaces[0].Addresses[0] != res.Interfaces[0].Addresses[0] {
		t.Errorf("show after the second up: %+v, want the first result %+v", showResult.Interfaces[0], res.Interfaces[0])
	}

	e.down("vm-1")
	e.requireBaseline()
}
