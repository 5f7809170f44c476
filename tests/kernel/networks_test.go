package kernel_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/internal/testenv"
)

func TestPtpDualStack(t *testing.T) {
	e := newEnv(t, "dual")
	e.writeConf("10-dual.conf", `{"cniVersion":"1.0.0","name":"dual","type":"ptp","mtu":1400,
		"ipam":{"type":"host-local","ranges":[[{"subnet":"10.210.0.0/24"}],[{"subnet":"fd6b:766d:1::/64"}]],
		"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}}`)
	res := e.up("vm-1", "--net", "dual")
	ifc := res.Interfaces[0]

	if ifc.MTU != 1400 {
		t.Errorf("result mtu %d, want 1400", ifc.MTU)
	}
	if len(ifc.Addresses) != 2 || !ifc.Addresses[0].Addr().Is4() || !ifc.Addresses[1].Addr().Is6() {
		t.Fatalf("addresses %v, want one IPv4 and one IPv6 address", ifc.Addresses)
	}
	if !netip.MustParsePrefix("fd6b:766d:1::/64").Contains(ifc.Addresses[1].Addr()) || ifc.Addresses[1].Bits() != 64 {
		t.Errorf("IPv6 address %s, want one in fd6b:766d:1::/64", ifc.Addresses[1])
	}
	wantGW := []netip.Addr{netip.MustParseAddr("10.210.0.1"), netip.MustParseAddr("fd6b:766d:1::1")}
	if !slices.Equal(ifc.Gateways, wantGW) {
		t.Errorf("gateways %v, want %v", ifc.Gateways, wantGW)
	}
	wantRoutes := []kvmnet.Route{
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), GW: wantGW[0]},
		{Dst: netip.MustParsePrefix("::/0"), GW: wantGW[1]},
	}
	if !slices.Equal(ifc.Routes, wantRoutes) {
		t.Errorf("routes %v, want %v", ifc.Routes, wantRoutes)
	}

	snap := e.ns.Snapshot(t)
	tap, _ := snap.Link(ifc.HostDevice)
	if tap.MTU != 1400 {
		t.Errorf("tap mtu %d, want 1400", tap.MTU)
	}
	addrs := snap.AddrsOf(ifc.HostDevice)
	for _, want := range []string{"10.210.0.1/24", "fd6b:766d:1::1/64"} {
		if !slices.Contains(addrs, want) {
			t.Errorf("tap addresses %v, want %s among them", addrs, want)
		}
	}
	requireOnlyHostRoute(t, e, ifc.HostDevice, "-4", ifc.Addresses[0].Addr().String())
	requireOnlyHostRoute(t, e, ifc.HostDevice, "-6", ifc.Addresses[1].Addr().String())
	if v := snap.Sysctls["net/ipv6/conf/all/forwarding"]; v != "1" {
		t.Errorf("IPv6 forwarding = %s, want 1", v)
	}
	if got := e.reservedBy("vm-1"); len(got) != 2 {
		t.Errorf("reservations of vm-1: %v, want two", got)
	}

	e.down("vm-1")
	e.requireBaseline()
}

// bridgeConf returns a bridge network config on bridge kvbr0, MTU 1400.
func bridgeConf(name, subnet, flags string) string {
	return `{"cniVersion":"1.0.0","name":"` + name + `","type":"bridge","bridge":"kvbr0","mtu":1400` + flags + `,
		"ipam":{"type":"host-local","subnet":"` + subnet + `"}}`
}

// globalAddrs returns the addresses of link name other than IPv6 link-local ones.
func globalAddrs(s testenv.Snapshot, name string) []string {
	var out []string
	for _, a := range s.AddrsOf(name) {
		if !strings.HasPrefix(a, "fe80:") {
			out = append(out, a)
		}
	}
	return out
}

func TestBridge(t *testing.T) {
	cases := []struct {
		name       string
		flags      string
		wantAddrs  []string
		wantRoutes []kvmnet.Route
	}{
		{name: "plain"},
		{name: "gateway", flags: `,"isGateway":true`, wantAddrs: []string{"10.220.0.1/24"}},
		{
			name: "default-gateway", flags: `,"isDefaultGateway":true`, wantAddrs: []string{"10.220.0.1/24"},
			wantRoutes: []kvmnet.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), GW: netip.MustParseAddr("10.220.0.1")}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "br")
			e.writeConf("10-br.conf", bridgeConf("br", "10.220.0.0/24", tc.flags))
			res := e.up("vm-1", "--net", "br")
			ifc := res.Interfaces[0]
			if ifc.Type != "bridge" || ifc.Bridge != "kvbr0" || ifc.MTU != 1400 {
				t.Errorf("interface type=%q bridge=%q mtu=%d, want bridge, kvbr0, 1400", ifc.Type, ifc.Bridge, ifc.MTU)
			}
			if !slices.Equal(ifc.Routes, tc.wantRoutes) {
				t.Errorf("routes %v, want %v", ifc.Routes, tc.wantRoutes)
			}

			snap := e.ns.Snapshot(t)
			br, ok := snap.Link("kvbr0")
			if !ok {
				t.Fatal("no bridge kvbr0")
			}
			if br.Type != "bridge" || br.Alias != "kvmnet bridge" || br.MTU != 1400 {
				t.Errorf("bridge %+v, want type bridge, alias \"kvmnet bridge\", mtu 1400", br)
			}
			tap, _ := snap.Link(ifc.HostDevice)
			if tap.Master != "kvbr0" || tap.MTU != 1400 {
				t.Errorf("tap %+v, want master kvbr0, mtu 1400", tap)
			}
			if got := globalAddrs(snap, "kvbr0"); !slices.Equal(got, tc.wantAddrs) {
				t.Errorf("bridge addresses %v, want %v", got, tc.wantAddrs)
			}
			if got := globalAddrs(snap, ifc.HostDevice); len(got) != 0 {
				t.Errorf("tap addresses %v, want none", got)
			}

			e.down("vm-1")
			e.requireBaseline()
		})
	}
}

func TestBridgePreexisting(t *testing.T) {
	for _, tc := range []struct{ name, flags string }{{"plain", ""}, {"gateway", `,"isGateway":true`}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "brpre")
			// An MTU set after creation is kept by the kernel when the
			// last port leaves; one given at creation is not.
			e.ns.Run(t, "ip", "link", "add", "kvbr0", "type", "bridge")
			e.ns.Run(t, "ip", "link", "set", "kvbr0", "mtu", "1400", "up")
			e.rebase()
			e.writeConf("10-br.conf", bridgeConf("br", "10.221.0.0/24", tc.flags))
			res := e.up("vm-1", "--net", "br")

			snap := e.ns.Snapshot(t)
			tap, _ := snap.Link(res.Interfaces[0].HostDevice)
			if tap.Master != "kvbr0" {
				t.Errorf("tap master %q, want kvbr0", tap.Master)
			}
			if br, _ := snap.Link("kvbr0"); br.Alias != "" {
				t.Errorf("pre-existing bridge got alias %q, want none", br.Alias)
			}

			e.down("vm-1")
			e.requireBaseline()
		})
	}
}

func TestTwoVMsOneBridge(t *testing.T) {
	e := newEnv(t, "br2")
	e.writeConf("10-br.conf", bridgeConf("br", "10.222.0.0/24", `,"isGateway":true`))
	a := e.up("vm-a", "--net", "br").Interfaces[0]
	b := e.up("vm-b", "--net", "br").Interfaces[0]
	if a.HostDevice == b.HostDevice || a.Addresses[0] == b.Addresses[0] || a.MAC == b.MAC {
		t.Errorf("vm-a %+v and vm-b %+v share a device, address or MAC", a, b)
	}
	snap := e.ns.Snapshot(t)
	for _, ifc := range []kvmnet.Interface{a, b} {
		if tap, _ := snap.Link(ifc.HostDevice); tap.Master != "kvbr0" {
			t.Errorf("tap %s master %q, want kvbr0", ifc.HostDevice, tap.Master)
		}
	}
	if got := globalAddrs(snap, "kvbr0"); !slices.Equal(got, []string{"10.222.0.1/24"}) {
		t.Errorf("bridge addresses %v, want one gateway 10.222.0.1/24", got)
	}

	// The bridge stays while a VM uses it, and goes with the last one.
	e.down("vm-a")
	snap = e.ns.Snapshot(t)
	if _, ok := snap.Link("kvbr0"); !ok {
		t.Fatal("bridge kvbr0 removed while vm-b still uses it")
	}
	if tap, ok := snap.Link(b.HostDevice); !ok || tap.Master != "kvbr0" {
		t.Errorf("tap of vm-b after down of vm-a: %+v (exists %v), want it on kvbr0", tap, ok)
	}
	if _, ok := snap.Link(a.HostDevice); ok {
		t.Errorf("tap %s of vm-a still exists", a.HostDevice)
	}
	e.down("vm-b")
	e.requireBaseline()
}

func TestTwoNetworks(t *testing.T) {
	e := newEnv(t, "two")
	e.writeConf("10-net-a.conf", `{"cniVersion":"1.0.0","name":"net-a","type":"ptp",
		"ipam":{"type":"host-local","subnet":"10.230.0.0/24"}}`)
	e.writeConf("20-net-b.conf", bridgeConf("net-b", "10.231.0.0/24", `,"isGateway":true`))
	for _, order := range [][]string{{"net-a", "net-b"}, {"net-b", "net-a"}} {
		res := e.up("vm-1", "--net", order[0], "--net", order[1])
		if len(res.Interfaces) != 2 {
			t.Fatalf("--net %v: %d interfaces, want 2", order, len(res.Interfaces))
		}
		for i, ifc := range res.Interfaces {
			wantGuest := []string{"eth0", "eth1"}[i]
			if ifc.Network != order[i] || ifc.GuestDevice != wantGuest {
				t.Errorf("--net %v: interface %d is network %q as %s, want %q as %s", order, i, ifc.Network, ifc.GuestDevice, order[i], wantGuest)
			}
		}
		if res.Interfaces[0].HostDevice == res.Interfaces[1].HostDevice {
			t.Errorf("--net %v: both interfaces use host device %s", order, res.Interfaces[0].HostDevice)
		}
		e.down("vm-1")
		e.requireBaseline()
	}
}

func TestFormats(t *testing.T) {
	e := newEnv(t, "fmt")
	up := e.cli.Run("up", "vm-1", "--format", "qemu")
	if up.Code != 0 {
		t.Fatalf("up --format qemu failed:\n%s", up)
	}
	show := e.cli.Run("show", "vm-1", "--json")
	res := decodeResult(t, show)
	ifc := res.Interfaces[0]

	for _, out := range []testenv.Output{up, e.cli.Run("show", "vm-1", "--format", "qemu")} {
		netdev, device := parseQEMU(t, out.Stdout)
		if netdev["type"] != "tap" || netdev["ifname"] != ifc.HostDevice || netdev["script"] != "no" {
			t.Errorf("qemu -netdev %v, want a tap with ifname=%s and script=no", netdev, ifc.HostDevice)
		}
		if device["netdev"] != netdev["id"] || device["mac"] != ifc.MAC {
			t.Errorf("qemu -device %v, want netdev=%s mac=%s", device, netdev["id"], ifc.MAC)
		}
	}

	args := e.cli.Run("show", "vm-1", "--format", "kernel-args", "--hostname", "guest1")
	if args.Code != 0 {
		t.Fatalf("show --format kernel-args failed:\n%s", args)
	}
	ip, ok := strings.CutPrefix(strings.TrimSpace(args.Stdout), "ip=")
	if !ok {
		t.Fatalf("kernel-args output %q does not start with ip=", args.Stdout)
	}
	// ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>
	fields := strings.Split(ip, ":")
	want := []string{guestAddr(t, ifc), "", "172.16.28.1", "255.255.255.0", "guest1", "eth0", "off"}
	if len(fields) < len(want) || !slices.Equal(fields[:len(want)], want) {
		t.Errorf("kernel ip= fields %q, want %q", fields, want)
	}

	e.down("vm-1")
	e.requireBaseline()
}

// parseQEMU returns the properties of the single -netdev and -device of
// QEMU arguments; the first value of each is stored under "type".
func parseQEMU(t *testing.T, out string) (netdev, device map[string]string) {
	t.Helper()
	fields := strings.Fields(out)
	props := map[string]map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		option := fields[i]
		if option != "-netdev" && option != "-device" {
			t.Fatalf("qemu output %q: unexpected %q", out, option)
		}
		if props[option] != nil {
			t.Fatalf("qemu output %q: %s given twice, want it once", out, option)
		}
		m := map[string]string{}
		for j, part := range strings.Split(fields[i+1], ",") {
			key, value, ok := strings.Cut(part, "=")
			switch {
			case j == 0 && !ok:
				m["type"] = part
			case ok:
				m[key] = value
			default:
				m[key] = ""
			}
		}
		props[option] = m
	}
	if len(fields)%2 != 0 || props["-netdev"] == nil || props["-device"] == nil {
		t.Fatalf("qemu output %q: want one -netdev and one -device", out)
	}
	return props["-netdev"], props["-device"]
}
