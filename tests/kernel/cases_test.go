package kernel_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/internal/testenv"
)

// ptpConf returns a ptp network config with host-local IPAM on subnet.
func ptpConf(name, version, subnet, extra string) string {
	return `{"cniVersion":"` + version + `","name":"` + name + `","type":"ptp"` + extra + `,
		"ipam":{"type":"host-local","subnet":"` + subnet + `"}}`
}

// TestLongNetName covers a network name longer than a link name may be.
func TestLongNetName(t *testing.T) {
	e := newEnv(t, "long")
	name := "longlonglonglong-network"
	e.writeConf("10-long.conf", ptpConf(name, "1.0.0", "10.240.0.0/24", `,"ipMasq":true`))
	res := e.up("vm-1", "--net", name)
	ifc := res.Interfaces[0]
	if ifc.Network != name || !tapName.MatchString(ifc.HostDevice) {
		t.Errorf("interface network=%q device=%q, want %q and a kvm name", ifc.Network, ifc.HostDevice, name)
	}
	for _, l := range e.ns.Snapshot(t).Links {
		if len(l.Name) > 15 {
			t.Errorf("link %q is longer than 15 bytes", l.Name)
		}
	}
	checkMasquerade(t, e.ns, guestAddr(t, ifc), true)
	e.down("vm-1")
	e.requireBaseline()
}

// TestUpDownLoop brings a masqueraded network up and down 20 times.
func TestUpDownLoop(t *testing.T) {
	e := newEnv(t, "loop")
	for i := range 20 {
		res := e.up("vm-1")
		if i == 0 {
			checkMasquerade(t, e.ns, guestAddr(t, res.Interfaces[0]), true)
		}
		e.down("vm-1")
		if r := e.reservedBy("vm-1"); len(r) != 0 {
			t.Fatalf("round %d: reservations left after down: %v", i, r)
		}
	}
	e.requireBaseline()
}

// TestSharedPrefixIDs uses two ids with the same first 8 characters.
func TestSharedPrefixIDs(t *testing.T) {
	e := newEnv(t, "prefix")
	a := e.up("webserver-a").Interfaces[0]
	b := e.up("webserver-b").Interfaces[0]
	if a.HostDevice == b.HostDevice || a.MAC == b.MAC || a.Addresses[0] == b.Addresses[0] {
		t.Fatalf("webserver-a %+v and webserver-b %+v share a device, MAC or address", a, b)
	}
	afterB := e.ns.Snapshot(t)

	e.down("webserver-a")
	snap := e.ns.Snapshot(t)
	tap, ok := snap.Link(b.HostDevice)
	if !ok || tap.Alias != "kvmnet vm=webserver-b" {
		t.Fatalf("tap of webserver-b after down of webserver-a: %+v (exists %v)", tap, ok)
	}
	if got, want := snap.AddrsOf(b.HostDevice), afterB.AddrsOf(b.HostDevice); !slices.Equal(got, want) {
		t.Errorf("addresses of webserver-b's tap changed from %v to %v", want, got)
	}
	requireOnlyHostRoute(t, e, b.HostDevice, "-4", guestAddr(t, b))
	if r := e.reservedBy("webserver-b"); len(r) != 1 {
		t.Errorf("reservations of webserver-b: %v, want one", r)
	}
	e.down("webserver-b")
	e.requireBaseline()
}

// TestIDs covers a long VM id and two invalid ones.
func TestIDs(t *testing.T) {
	t.Run("long", func(t *testing.T) {
		e := newEnv(t, "idlong")
		id := strings.Repeat("v", 200)
		res := e.up(id)
		if dev := res.Interfaces[0].HostDevice; !tapName.MatchString(dev) {
			t.Errorf("host device %q of a 200-byte id, want kvm and 12 characters", dev)
		}
		e.down(id)
		e.requireBaseline()
	})
	for _, id := range []string{"../../etc/x", ""} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			e := newEnv(t, "idbad")
			out := e.cli.Run("up", id)
			if out.Code != 2 {
				t.Fatalf("up %q: exit status %d, want 2 (invalid usage)\n%s", id, out.Code, out)
			}
			stderr := out.Stderr
			if !strings.Contains(stderr, "invalid VM id") {
				t.Errorf("error %q does not say that the VM id is invalid", stderr)
			}
			e.requireBaseline()
			entries, _ := os.ReadDir(e.cli.StateDir)
			if len(entries) != 0 {
				t.Errorf("state dir has %d entries after a rejected id, want none", len(entries))
			}
			if _, err := os.Stat(filepath.Join(e.cli.StateDir, id+".json")); err == nil {
				t.Errorf("a record was written for id %q", id)
			}
		})
	}
}

// TestConcurrentBridge brings 10 VMs up at once on a bridge that does not
// exist yet.
func TestConcurrentBridge(t *testing.T) {
	e := newEnv(t, "conc")
	e.writeConf("10-br.conf", bridgeConf("br", "10.250.0.0/24", `,"isGateway":true`))
	const n = 10
	outs := make([]testenv.Output, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { outs[i] = e.cli.Run("up", fmt.Sprintf("vm-%d", i), "--net", "br", "--json") })
	}
	wg.Wait()

	addrs := map[netip.Addr]string{}
	var taps []string
	for i, out := range outs {
		if out.Code != 0 {
			t.Errorf("up vm-%d failed:\n%s", i, out)
			continue
		}
		ifc := decodeResult(t, out).Interfaces[0]
		taps = append(taps, ifc.HostDevice)
		for _, p := range ifc.Addresses {
			if prev, ok := addrs[p.Addr()]; ok {
				t.Errorf("vm-%d and %s both got %s", i, prev, p.Addr())
			}
			addrs[p.Addr()] = fmt.Sprintf("vm-%d", i)
		}
	}
	snap := e.ns.Snapshot(t)
	if bridges := snap.LinksOfType("bridge"); len(bridges) != 1 {
		t.Errorf("bridges %+v, want exactly one", bridges)
	}
	if got := globalAddrs(snap, "kvbr0"); !slices.Equal(got, []string{"10.250.0.1/24"}) {
		t.Errorf("bridge addresses %v, want one gateway 10.250.0.1/24", got)
	}
	for _, tap := range taps {
		if l, _ := snap.Link(tap); l.Master != "kvbr0" {
			t.Errorf("tap %s master %q, want kvbr0", tap, l.Master)
		}
	}

	for i := range n {
		wg.Go(func() {
			if out := e.cli.Run("down", fmt.Sprintf("vm-%d", i)); out.Code != 0 {
				t.Errorf("down vm-%d failed:\n%s", i, out)
			}
		})
	}
	wg.Wait()
	e.requireBaseline()
}

// TestCNIVersions uses host-local with every CNI spec version since 0.3.1.
func TestCNIVersions(t *testing.T) {
	for _, version := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(version, func(t *testing.T) {
			e := newEnv(t, "ver")
			e.writeConf("10-v.conf", ptpConf("v", version, "10.251.0.0/24", ""))
			ifc := e.up("vm-1", "--net", "v").Interfaces[0]
			if len(ifc.Addresses) != 1 || !netip.MustParsePrefix("10.251.0.0/24").Contains(ifc.Addresses[0].Addr()) {
				t.Errorf("addresses %v, want one in 10.251.0.0/24", ifc.Addresses)
			}
			e.down("vm-1")
			e.requireBaseline()
		})
	}
}

func TestStaticIPAM(t *testing.T) {
	e := newEnv(t, "static")
	e.writeConf("10-st.conf", `{"cniVersion":"1.0.0","name":"st","type":"ptp",
		"ipam":{"type":"static","addresses":[{"address":"10.252.0.5/24","gateway":"10.252.0.1"}],
		"routes":[{"dst":"0.0.0.0/0"}]}}`)
	ifc := e.up("vm-1", "--net", "st").Interfaces[0]
	if !slices.Equal(ifc.Addresses, []netip.Prefix{netip.MustParsePrefix("10.252.0.5/24")}) {
		t.Errorf("addresses %v, want [10.252.0.5/24]", ifc.Addresses)
	}
	wantRoutes := []kvmnet.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), GW: netip.MustParseAddr("10.252.0.1")}}
	if !slices.Equal(ifc.Routes, wantRoutes) {
		t.Errorf("routes %v, want %v", ifc.Routes, wantRoutes)
	}
	if got := e.ns.Snapshot(t).AddrsOf(ifc.HostDevice); !slices.Equal(got, []string{"10.252.0.1/24"}) {
		t.Errorf("tap addresses %v, want [10.252.0.1/24]", got)
	}
	e.down("vm-1")
	e.requireBaseline()
}

// TestFakeIPAM feeds kvmnet results that real plugins rarely print.
func TestFakeIPAM(t *testing.T) {
	usable := []struct{ name, version, output string }{
		{"legacy-ip4", "0.2.0", `{"cniVersion":"0.2.0","ip4":{"ip":"10.253.0.5/24","gateway":"10.253.0.1"}}`},
		{"no-interface", "1.0.0", `{"cniVersion":"1.0.0","ips":[{"address":"10.253.0.5/24","gateway":"10.253.0.1"}]}`},
	}
	for _, tc := range usable {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "fake")
			fake := newFakeIPAM(t, e, "fake-ipam", tc.output)
			e.writeConf("10-f.conf", `{"cniVersion":"`+tc.version+`","name":"f","type":"ptp","ipam":{"type":"fake-ipam"}}`)
			ifc := e.up("vm-1", "--net", "f").Interfaces[0]
			if !slices.Equal(ifc.Addresses, []netip.Prefix{netip.MustParsePrefix("10.253.0.5/24")}) {
				t.Errorf("addresses %v, want [10.253.0.5/24]", ifc.Addresses)
			}
			if !slices.Equal(ifc.Gateways, []netip.Addr{netip.MustParseAddr("10.253.0.1")}) {
				t.Errorf("gateways %v, want [10.253.0.1]", ifc.Gateways)
			}
			e.down("vm-1")
			if n := fake.count(t, "DEL vm-1 eth0"); n == 0 {
				t.Errorf("plugin calls %q, want a DEL for vm-1", fake.calls(t))
			}
			e.requireBaseline()
		})
	}

	unusable := []struct{ name, output string }{
		{"garbage", `this is not JSON`},
		{"no-addresses", `{"cniVersion":"1.0.0","ips":[]}`},
	}
	for _, tc := range unusable {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "fake")
			fake := newFakeIPAM(t, e, "fake-ipam", tc.output)
			e.writeConf("10-f.conf", `{"cniVersion":"1.0.0","name":"f","type":"ptp","ipam":{"type":"fake-ipam"}}`)
			stderr := e.upFails("vm-1", "--net", "f")
			if !strings.Contains(stderr, "fake-ipam") {
				t.Errorf("error %q does not name the IPAM plugin", stderr)
			}
			if n := fake.count(t, "DEL vm-1 eth0"); n == 0 {
				t.Errorf("plugin calls %q, want a DEL for vm-1 after the unusable result", fake.calls(t))
			}
			e.requireBaseline()
		})
	}
}

// TestExhaustedRange fails 50 times after the tap exists, because the
// range has no free address.
func TestExhaustedRange(t *testing.T) {
	e := newEnv(t, "full")
	// A /30 has two host addresses, and the gateway takes the first.
	e.writeConf("10-tiny.conf", ptpConf("tiny", "1.0.0", "10.254.0.0/30", ""))
	e.up("vm-1", "--net", "tiny")
	full := e.ns.Snapshot(t)
	for i := range 50 {
		stderr := e.upFails("vm-2", "--net", "tiny")
		if !strings.Contains(stderr, "no IP addresses available") {
			t.Fatalf("round %d: error %q does not say that the range is exhausted", i, stderr)
		}
		e.requireSame(full, fmt.Sprintf("failed up in round %d", i))
		if _, err := os.Stat(filepath.Join(e.cli.StateDir, "vm-2.json")); err == nil {
			t.Fatalf("round %d: state record of vm-2 left", i)
		}
	}
	if r := e.reservedBy("vm-1"); len(r) != 1 {
		t.Errorf("reservations of vm-1: %v, want one", r)
	}
	e.down("vm-1")
	e.requireBaseline()
}

// TestDefaultRouteConflict covers two sources of a default route for one VM.
func TestDefaultRouteConflict(t *testing.T) {
	t.Run("one-config", func(t *testing.T) {
		e := newEnv(t, "dr")
		e.writeConf("10-br.conf", `{"cniVersion":"1.0.0","name":"br","type":"bridge","bridge":"kvbr0","isDefaultGateway":true,
			"ipam":{"type":"host-local","subnet":"10.241.0.0/24","routes":[{"dst":"0.0.0.0/0","gw":"10.241.0.254"}]}}`)
		stderr := e.upFails("vm-1", "--net", "br")
		for _, want := range []string{"isDefaultGateway", "0.0.0.0/0 via 10.241.0.254"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("error %q does not name %q", stderr, want)
			}
		}
		e.requireBaseline()
	})
	t.Run("two-configs", func(t *testing.T) {
		e := newEnv(t, "dr")
		e.writeConf("10-r1.conf", `{"cniVersion":"1.0.0","name":"r1","type":"ptp",
			"ipam":{"type":"host-local","subnet":"10.242.0.0/24","routes":[{"dst":"0.0.0.0/0"}]}}`)
		e.writeConf("20-r2.conf", bridgeConf("r2", "10.243.0.0/24", `,"isDefaultGateway":true`))
		for _, order := range []string{"r1,r2", "r2,r1"} {
			stderr := e.upFails("vm-1", "--net", order)
			for _, want := range []string{`"r1"`, `"r2"`} {
				if !strings.Contains(stderr, want) {
					t.Errorf("--net %s: error %q does not name network %s", order, stderr, want)
				}
			}
			e.requireBaseline()
		}
	})
	t.Run("two-results", func(t *testing.T) {
		// Only the IPAM results carry the routes, so the conflict shows
		// after both taps exist.
		e := newEnv(t, "dr")
		fake := newFakeIPAM(t, e, "fake-ipam", `{"cniVersion":"1.0.0",
			"ips":[{"address":"10.244.0.5/24","gateway":"10.244.0.1"}],"routes":[{"dst":"0.0.0.0/0"}]}`)
		for _, name := range []string{"q1", "q2"} {
			e.writeConf("10-"+name+".conf", `{"cniVersion":"1.0.0","name":"`+name+`","type":"ptp","ipam":{"type":"fake-ipam"}}`)
		}
		stderr := e.upFails("vm-1", "--net", "q1,q2")
		for _, want := range []string{`"q1"`, `"q2"`} {
			if !strings.Contains(stderr, want) {
				t.Errorf("error %q does not name network %s", stderr, want)
			}
		}
		for _, call := range []string{"DEL vm-1 eth0", "DEL vm-1 eth1"} {
			if fake.count(t, call) == 0 {
				t.Errorf("plugin calls %q, want %q", fake.calls(t), call)
			}
		}
		e.requireBaseline()
	})
}

// TestBridgeNameTaken uses a bridge name that a veth already has.
func TestBridgeNameTaken(t *testing.T) {
	e := newEnv(t, "taken")
	e.ns.Run(t, "ip", "link", "add", "kvbr0", "type", "veth", "peer", "name", "kvbr0-peer")
	e.rebase()
	e.writeConf("10-br.conf", bridgeConf("br", "10.245.0.0/24", `,"isGateway":true`))
	stderr := e.upFails("vm-1", "--net", "br")
	if !strings.Contains(stderr, "kvbr0") {
		t.Errorf("error %q does not name the link kvbr0", stderr)
	}
	e.requireBaseline()
}

// TestDownIdempotent runs down when there is nothing or only part left.
func TestDownIdempotent(t *testing.T) {
	e := newEnv(t, "down")
	e.up("vm-1")
	e.down("vm-1")
	e.down("vm-1")
	e.down("never-was")
	e.requireBaseline()

	ifc := e.up("vm-2").Interfaces[0]
	e.ns.Run(t, "ip", "link", "del", ifc.HostDevice)
	e.down("vm-2")
	e.requireBaseline()
}

// TestConfigChanged edits or removes the config between up and down.
func TestConfigChanged(t *testing.T) {
	t.Run("edited", func(t *testing.T) {
		e := newEnv(t, "edit")
		e.writeConf("10-m.conf", ptpConf("m", "1.0.0", "10.246.0.0/24", `,"ipMasq":true`))
		guest := guestAddr(t, e.up("vm-1", "--net", "m").Interfaces[0])
		checkMasquerade(t, e.ns, guest, true)
		e.writeConf("10-m.conf", ptpConf("m", "1.0.0", "10.247.0.0/24", `,"ipMasq":false`))
		e.down("vm-1")
		e.requireBaseline()
	})
	t.Run("removed", func(t *testing.T) {
		e := newEnv(t, "rm")
		e.writeConf("10-m.conf", ptpConf("m", "1.0.0", "10.246.0.0/24", `,"ipMasq":true`))
		e.up("vm-1", "--net", "m")
		if err := os.Remove(filepath.Join(e.cli.NetDir, "10-m.conf")); err != nil {
			t.Fatal(err)
		}
		e.down("vm-1")
		e.requireBaseline()
	})
}
