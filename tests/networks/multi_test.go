//go:build linux

package networks_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mixedNetworks are the networks that tests combine on one VM. Of b, m and
// p, only p gives the guest a default route. pd and bd each give one too,
// for the conflict cases.
var mixedNetworks = map[string]string{
	"p": `{"cniVersion":"1.0.0","name":"p","type":"ptp",
		"ipam":{"type":"host-local","dataDir":"IPAMDIR","subnet":"10.80.0.0/24","routes":[{"dst":"0.0.0.0/0"}]}}`,
	"b": `{"cniVersion":"1.0.0","name":"b","type":"bridge","bridge":"kvmtbr0","isGateway":true,
		"ipam":{"type":"host-local","dataDir":"IPAMDIR","subnet":"10.81.0.0/24"}}`,
	"m": `{"cniVersion":"1.0.0","name":"m","type":"macvlan","master":"vmaster",
		"ipam":{"type":"host-local","dataDir":"IPAMDIR","subnet":"10.82.0.0/24"}}`,
	"pd": `{"cniVersion":"1.0.0","name":"pd","type":"ptp",
		"ipam":{"type":"host-local","dataDir":"IPAMDIR","subnet":"10.83.0.0/24","routes":[{"dst":"0.0.0.0/0","gw":"10.83.0.1"}]}}`,
	"bd": `{"cniVersion":"1.0.0","name":"bd","type":"bridge","bridge":"kvmtbr1","isDefaultGateway":true,
		"ipam":{"type":"host-local","dataDir":"IPAMDIR","subnet":"10.84.0.0/24"}}`,
}

// hostLinkType is the link type of each network's host device.
var hostLinkType = map[string]string{"p": "tap", "b": "tap", "m": "macvtap", "pd": "tap", "bd": "tap"}

// newMixedWorld creates a namespace with the macvtap master vmaster and the
// config files of mixedNetworks, and takes the baseline.
func newMixedWorld(t *testing.T, prefix string) *world {
	t.Helper()
	w := newWorld(t, prefix)
	w.addVeth("vmaster", 1500)
	for name, conf := range mixedNetworks {
		w.writeNet(name, conf)
	}
	w.takeBaseline()
	return w
}

// checkAttachments checks that the VM's interfaces are eth0, eth1, ... in the
// order of nets, on the right network, each with a host link of the
// network's type, and that exactly one of them carries an IPv4 default
// route, the one on network defaultNet, or none when defaultNet is "".
func (w *world) checkAttachments(vm string, nets []string, defaultNet string, args ...string) {
	w.t.Helper()
	res := w.up(vm, args...)
	if len(res.Interfaces) != len(nets) {
		w.t.Fatalf("got %d interfaces, want %d: %+v", len(res.Interfaces), len(nets), res.Interfaces)
	}
	snap := w.ns.Snapshot(w.t)
	seen := map[string]bool{}
	for i, ifc := range res.Interfaces {
		if want := fmt.Sprintf("eth%d", i); ifc.GuestDevice != want || ifc.Network != nets[i] {
			w.t.Errorf("interface %d is %s on network %q, want %s on %q", i, ifc.GuestDevice, ifc.Network, want, nets[i])
		}
		if seen[ifc.HostDevice] {
			w.t.Errorf("host device %s used twice", ifc.HostDevice)
		}
		seen[ifc.HostDevice] = true
		link, ok := snap.Link(ifc.HostDevice)
		if !ok {
			w.t.Errorf("host device %s of %s missing", ifc.HostDevice, ifc.GuestDevice)
			continue
		}
		if want := hostLinkType[ifc.Network]; link.Type != want {
			w.t.Errorf("host device %s of network %q is a %s, want %s", ifc.HostDevice, ifc.Network, link.Type, want)
		}
	}

	routes := defaultRoutes(res)
	if defaultNet == "" {
		if len(routes) != 0 {
			w.t.Errorf("default routes %v, want none", routes)
		}
		return
	}
	if len(routes) != 1 {
		w.t.Fatalf("default routes %v, want exactly one", routes)
	}
	if got := res.DefaultRoute(4); got == nil || got.Network != defaultNet {
		w.t.Errorf("default route on %+v, want on network %q", got, defaultNet)
	}
}

func TestTwoNetworks(t *testing.T) {
	tests := []struct {
		nets       []string
		defaultNet string
	}{
		{nets: []string{"m", "p"}, defaultNet: "p"},
		{nets: []string{"p", "b"}, defaultNet: "p"},
		{nets: []string{"b", "m"}, defaultNet: ""},
		{nets: []string{"bd", "m"}, defaultNet: "bd"},
		{nets: []string{"m", "bd"}, defaultNet: "bd"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.nets, ","), func(t *testing.T) {
			w := newMixedWorld(t, "two")
			// The repeated flag form of the net list.
			w.checkAttachments("vm-two", tt.nets, tt.defaultNet, "--net", tt.nets[0], "--net", tt.nets[1])

			w.down("vm-two")
			w.checkClean()
		})
	}
}

func TestThreeNetworks(t *testing.T) {
	orders := [][]string{{"p", "b", "m"}, {"b", "m", "p"}, {"m", "p", "b"}, {"m", "b", "p"}}
	for _, nets := range orders {
		t.Run(strings.Join(nets, ","), func(t *testing.T) {
			w := newMixedWorld(t, "three")
			w.checkAttachments("vm-three", nets, "p", "--net", strings.Join(nets, ","))

			w.down("vm-three")
			w.checkClean()
		})
	}
}

func TestTwoDefaultRoutes(t *testing.T) {
	// Each source is the text the error must contain to name it.
	sources := map[string]string{
		"p":  `network "p" ipam route 0.0.0.0/0`,
		"pd": `network "pd" ipam route 0.0.0.0/0 via 10.83.0.1`,
		"bd": `network "bd" isDefaultGateway`,
	}
	pairs := [][]string{{"p", "bd"}, {"bd", "p"}, {"p", "pd"}, {"pd", "p"}, {"m", "pd", "bd"}, {"bd", "m", "pd"}}
	shared := newMixedWorld(t, "twodef")
	for _, nets := range pairs {
		t.Run(strings.Join(nets, ","), func(t *testing.T) {
			w := shared.in(t)
			out := w.upFails("vm-twodef", "--net", strings.Join(nets, ","))
			for _, n := range nets {
				if src, ok := sources[n]; ok {
					checkContains(t, "error", out.Stderr, src)
				}
			}
			w.checkClean()
		})
	}
}

// fakeIPAM is an IPAM plugin whose result gives the guest a default route
// that its config does not show. It logs the container id of every DEL.
const fakeIPAM = `#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","ips":[{"address":"10.85.0.2/24","gateway":"10.85.0.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.85.0.1"}]}' ;;
DEL) echo "$CNI_CONTAINERID" >> "$(dirname "$0")/del.log" ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}' ;;
*) exit 1 ;;
esac
`

func TestDefaultRouteFromIPAMResult(t *testing.T) {
	for _, nets := range [][]string{{"p", "f"}, {"f", "p"}} {
		t.Run(strings.Join(nets, ","), func(t *testing.T) {
			w := newMixedWorld(t, "ipamdef")
			pluginDir := t.TempDir()
			if err := os.WriteFile(filepath.Join(pluginDir, "fake-ipam"), []byte(fakeIPAM), 0o755); err != nil {
				t.Fatalf("write fake IPAM plugin: %v", err)
			}
			w.cli.CNIPath = append([]string{pluginDir}, w.cli.CNIPath...)
			w.writeNet("f", `{"cniVersion":"1.0.0","name":"f","type":"ptp","ipam":{"type":"fake-ipam"}}`)
			w.baseline = w.ns.Snapshot(t)

			out := w.upFails("vm-ipamdef", "--net", strings.Join(nets, ","))
			checkContains(t, "error", out.Stderr, `network "p"`, `network "f"`, "default route")
			w.checkClean()
			log, err := os.ReadFile(filepath.Join(pluginDir, "del.log"))
			if err != nil || strings.TrimSpace(string(log)) != "vm-ipamdef" {
				t.Errorf("fake IPAM plugin DEL log %q (%v), want one DEL for vm-ipamdef", log, err)
			}
		})
	}
}
