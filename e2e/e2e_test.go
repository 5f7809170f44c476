//go:build linux

// Package e2e runs the kvmnet binary in private network namespaces, boots
// QEMU guests on the devices it creates and checks real traffic.
//
// Every test builds cmd/kvmnet, creates a "host" namespace where kvmnet and
// QEMU run (and, where needed, an "outside" namespace routed behind it),
// passes QEMU exactly the arguments `kvmnet up --format qemu` prints and the
// guest exactly the `--format kernel-args` output. The tests need root,
// qemu-system-x86_64 and busybox; under CI=true they fail when those are
// missing, elsewhere they skip.
package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kvmnet/kvmnet/internal/guesttest"
)

// Addresses of the test's own namespaces. They are documentation ranges
// (RFC 5737), used only inside namespaces the tests create.
const (
	outsideSubnet    = "203.0.113.0/24"
	hostOutsideAddr  = "203.0.113.1"
	outsideAddr      = "203.0.113.2"
	outsideSourceURL = "http://" + outsideAddr + "/cgi-bin/source"
	bridgeSubnet     = "198.51.100.0/24"
	macvlanSubnet    = "192.0.2.0/24"
	macvlanPeerAddr  = "192.0.2.1"
)

// newOutside creates the "outside" namespace behind the host namespace,
// linked by a veth pair, with an HTTP server that reports client addresses.
// The outside has no route back to the guests' subnets, so only masqueraded
// guest traffic gets a reply.
func newOutside(t *testing.T, e *env) *guesttest.Netns {
	t.Helper()
	outside := guesttest.NewNetns(t, "out")
	addVeth(t, e.host, "kvmt-out", hostOutsideAddr+"/24", outside, "kvmt-in", outsideAddr+"/24")
	startSourceServer(t, outside)
	requirePing(t, e.host, outsideAddr)
	return outside
}

func TestDefaultNetwork(t *testing.T) {
	e := newEnv(t)
	newOutside(t, e)
	vm := e.up("e2e-default")
	g := e.boot(vm)
	guestAddr, gw := vm.guestAddr(t, 0), vm.gateway(t, 0)

	t.Run("guest pings gateway", func(t *testing.T) {
		if ok, out := guestPing(g, gw); !ok {
			t.Errorf("guest ping to gateway %s failed:\n%s", gw, out)
		}
	})
	t.Run("host reaches guest TCP", func(t *testing.T) {
		requirePing(t, e.host, guestAddr)
		page, err := e.host.HTTPGet("http://" + guestAddr + "/")
		if err != nil {
			t.Fatalf("fetch guest page from host namespace: %v", err)
		}
		if !strings.Contains(page, guestAddr) {
			t.Errorf("guest page does not list %s:\n%s", guestAddr, page)
		}
	})
	t.Run("guest reaches outside masqueraded", func(t *testing.T) {
		out, rc := guestFetch(g, outsideSourceURL)
		if rc != 0 {
			t.Fatalf("guest fetch of %s exited with %d (no masquerade for the default network?):\n%s", outsideSourceURL, rc, out)
		}
		if want := "client=" + hostOutsideAddr + "\n"; out != want {
			t.Errorf("outside saw %q, want %q (the host's address, because the default network masquerades)", out, want)
		}
	})
}

func TestDefaultRestrictedNetwork(t *testing.T) {
	e := newEnv(t)
	newOutside(t, e)
	startSourceServer(t, e.host)
	vm := e.up("e2e-restricted", "--net", "default-restricted")
	g := e.boot(vm)
	guestAddr, gw := vm.guestAddr(t, 0), vm.gateway(t, 0)

	t.Run("guest reaches host", func(t *testing.T) {
		if ok, out := guestPing(g, gw); !ok {
			t.Errorf("guest ping to host address %s failed:\n%s", gw, out)
		}
		out, rc := guestFetch(g, "http://"+gw+"/cgi-bin/source")
		if rc != 0 {
			t.Fatalf("guest fetch from host exited with %d:\n%s", rc, out)
		}
		if want := "client=" + guestAddr + "\n"; out != want {
			t.Errorf("host saw %q, want %q (no address translation towards the host)", out, want)
		}
	})
	t.Run("guest has no default route", func(t *testing.T) {
		if routes := g.MustRun("ip route"); strings.Contains(routes, "default") {
			t.Errorf("guest on default-restricted has a default route:\n%s", routes)
		}
	})
	t.Run("guest does not reach outside", func(t *testing.T) {
		if out, rc := guestFetch(g, outsideSourceURL); rc == 0 {
			t.Errorf("guest reached the outside without a route:\n%s", out)
		}
		// Even with a route added by hand in the guest, the outside's
		// replies cannot come back, because nothing masquerades.
		g.MustRun("ip route add " + outsideSubnet + " via " + gw)
		if out, rc := guestFetch(g, outsideSourceURL); rc == 0 {
			t.Errorf("guest reached the outside through the host:\n%s", out)
		}
	})
}

func TestBridgeTwoGuests(t *testing.T) {
	e := newEnv(t)
	e.writeNetConf("e2ebr", `{
		"cniVersion": "1.0.0",
		"name": "e2ebr",
		"type": "bridge",
		"bridge": "kvmt-br0",
		"isGateway": true,
		"ipam": {
			"type": "host-local",
			"subnet": "`+bridgeSubnet+`",
			"dataDir": "`+filepath.Join(e.dir, "ipam")+`"
		}
	}`)
	vmA := e.up("e2e-bridge-a", "--net", "e2ebr")
	vmB := e.up("e2e-bridge-b", "--net", "e2ebr")
	if vmA.result.Interfaces[0].Bridge != vmB.result.Interfaces[0].Bridge {
		t.Fatalf("guests are on different bridges: %q and %q", vmA.result.Interfaces[0].Bridge, vmB.result.Interfaces[0].Bridge)
	}
	gA, gB := e.boot(vmA), e.boot(vmB)
	addrA, addrB := vmA.guestAddr(t, 0), vmB.guestAddr(t, 0)

	if ok, out := guestPing(gA, addrB); !ok {
		t.Errorf("guest a ping to guest b %s failed:\n%s", addrB, out)
	}
	if ok, out := guestPing(gB, addrA); !ok {
		t.Errorf("guest b ping to guest a %s failed:\n%s", addrA, out)
	}
	out, rc := guestFetch(gA, "http://"+addrB+"/cgi-bin/info")
	if rc != 0 {
		t.Fatalf("guest a fetch from guest b exited with %d:\n%s", rc, out)
	}
	if want := "client=" + addrA + "\n"; !strings.Contains(out, want) {
		t.Errorf("guest b saw %q, want it to contain %q", out, want)
	}
}

// TestDefaultTwoGuests puts two guests on the built-in ptp network: each
// sees the subnet on-link behind its own tap, and the host answers ARP for
// the other, so they reach each other through the host.
func TestDefaultTwoGuests(t *testing.T) {
	e := newEnv(t)
	vmA := e.up("e2e-ptp-a")
	vmB := e.up("e2e-ptp-b")
	gA, gB := e.boot(vmA), e.boot(vmB)
	addrA, addrB := vmA.guestAddr(t, 0), vmB.guestAddr(t, 0)

	if ok, out := guestPing(gA, addrB); !ok {
		t.Errorf("guest a ping to guest b %s failed:\n%s", addrB, out)
	}
	out, rc := guestFetch(gB, "http://"+addrA+"/cgi-bin/info")
	if rc != 0 {
		t.Fatalf("guest b fetch from guest a exited with %d:\n%s", rc, out)
	}
	if want := "client=" + addrB + "\n"; !strings.Contains(out, want) {
		t.Errorf("guest a saw %q, want it to contain %q", out, want)
	}
}

func TestMacvlanGuest(t *testing.T) {
	e := newEnv(t)
	peer := guesttest.NewNetns(t, "peer")
	// The master is a veth whose other end is in the peer namespace, so
	// frames from the macvtap leave through the master to the peer.
	addVeth(t, e.host, "kvmt-m0", "", peer, "kvmt-p0", macvlanPeerAddr+"/24")
	e.writeNetConf("e2emv", `{
		"cniVersion": "1.0.0",
		"name": "e2emv",
		"type": "macvlan",
		"master": "kvmt-m0",
		"mode": "bridge",
		"ipam": {
			"type": "host-local",
			"subnet": "`+macvlanSubnet+`",
			"rangeStart": "192.0.2.10",
			"rangeEnd": "192.0.2.20",
			"dataDir": "`+filepath.Join(e.dir, "ipam")+`"
		}
	}`)
	vm, err := e.tryUp("e2e-macvlan", "--net", "e2emv")
	if err != nil {
		t.Fatalf("kvmnet up on a macvlan network failed; this test needs macvtap support in kvmnet: %v", err)
	}
	if vm.result.Interfaces[0].DevicePath == "" {
		t.Fatalf("macvlan result has no devicePath: %+v", vm.result.Interfaces[0])
	}
	g := e.boot(vm)
	guestAddr := vm.guestAddr(t, 0)

	requirePing(t, peer, guestAddr)
	page, err := peer.HTTPGet("http://" + guestAddr + "/")
	if err != nil {
		t.Fatalf("fetch guest page from peer namespace: %v", err)
	}
	if !strings.Contains(page, guestAddr) {
		t.Errorf("guest page does not list %s:\n%s", guestAddr, page)
	}
	if ok, out := guestPing(g, macvlanPeerAddr); !ok {
		t.Errorf("guest ping to peer %s failed:\n%s", macvlanPeerAddr, out)
	}
}

func TestTwoNetworksOneGuest(t *testing.T) {
	e := newEnv(t)
	vm := e.up("e2e-two", "--net", "default,default-restricted")
	if n := len(vm.result.Interfaces); n != 2 {
		t.Fatalf("result has %d interfaces, want 2", n)
	}
	g := e.boot(vm)

	for i, ifc := range vm.result.Interfaces {
		addr, gw := vm.guestAddr(t, i), vm.gateway(t, i)
		if ok, out := guestPing(g, gw); !ok {
			t.Errorf("%s (%s): guest ping to gateway %s failed:\n%s", ifc.Network, ifc.GuestDevice, gw, out)
		}
		if err := e.host.WaitPing(addr, pingWait); err != nil {
			t.Errorf("%s (%s): host ping to guest %s failed: %v", ifc.Network, ifc.GuestDevice, addr, err)
		}
		if page, err := e.host.HTTPGet("http://" + addr + "/"); err != nil || !strings.Contains(page, addr) {
			t.Errorf("%s (%s): fetch guest page at %s: %v\n%s", ifc.Network, ifc.GuestDevice, addr, err, page)
		}
	}

	defaultIfc := vm.result.DefaultRoute(4)
	if defaultIfc == nil {
		t.Fatal("result has no IPv4 default route")
	}
	if defaultIfc.Network != "default" {
		t.Errorf("default route is on network %s, want default", defaultIfc.Network)
	}
	routes := g.MustRun("ip route show default")
	want := "default via " + vm.gateway(t, 0) + " dev " + defaultIfc.GuestDevice
	if strings.Count(routes, "default") != 1 || !strings.Contains(routes, want) {
		t.Errorf("guest default routes = %q, want exactly %q", routes, want)
	}
}

func TestDownRestoresBaseline(t *testing.T) {
	e := newEnv(t)
	before := takeSnapshot(t, e.host)
	vm := e.up("e2e-down")
	g := e.boot(vm)
	guestAddr, gw := vm.guestAddr(t, 0), vm.gateway(t, 0)
	requirePing(t, e.host, guestAddr)
	if ok, out := guestPing(g, gw); !ok {
		t.Fatalf("guest ping to gateway %s before down failed:\n%s", gw, out)
	}

	e.mustKvmnet("down", vm.id)

	after := takeSnapshot(t, e.host)
	if diff := cmp.Diff(before, after, cmp.AllowUnexported(snapshot{})); diff != "" {
		t.Errorf("host namespace differs from its baseline after down (-before +after):\n%s", diff)
	}
	if list := e.mustKvmnet("list"); strings.Contains(list, vm.id) {
		t.Errorf("kvmnet list still shows %s after down:\n%s", vm.id, list)
	}
	if reserved := findFiles(t, e.stateDir, guestAddr); len(reserved) != 0 {
		t.Errorf("IPAM reservation of %s left after down: %v", guestAddr, reserved)
	}
	if ok, _ := guestPing(g, gw); ok {
		t.Errorf("guest still reaches gateway %s after down", gw)
	}
	if err := e.host.Ping(guestAddr); err == nil {
		t.Errorf("host namespace still reaches guest %s after down", guestAddr)
	}
	if _, err := e.kvmnet("down", vm.id); err != nil {
		t.Errorf("second down: %v", err)
	}
}

// findFiles returns the paths under dir whose base name is name.
func findFiles(t *testing.T, dir, name string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == name {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return found
}
