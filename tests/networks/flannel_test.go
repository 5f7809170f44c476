//go:build linux

package networks_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet"
)

// Fixture lines of subnet.env, in the form flanneld writes them.
const (
	envNetwork     = "FLANNEL_NETWORK=10.1.0.0/16"
	envSubnet      = "FLANNEL_SUBNET=10.1.17.1/24"
	envIPv6Network = "FLANNEL_IPV6_NETWORK=fd00:10::/56"
	envIPv6Subnet  = "FLANNEL_IPV6_SUBNET=fd00:10:0:11::1/64"
	envMTU         = "FLANNEL_MTU=1450"
	envIPMasq      = "FLANNEL_IPMASQ=true"
)

// flannelConf is a flannel network whose subnet file and host-local data
// dir writeFlannel fills in. Its %s takes extra top-level fields.
const flannelConf = `{"cniVersion":"1.0.0","name":"fl","type":"flannel",%s"subnetFile":"SUBNETFILE","dataDir":"IPAMDIR"}`

// writeFlannel writes env as the subnet file and a flannel network "fl"
// pointing to it, with extra top-level fields such as `"delegate":{...},`.
// It returns the subnet file's path.
func (w *world) writeFlannel(env, fields string) string {
	w.t.Helper()
	path := filepath.Join(w.t.TempDir(), "subnet.env")
	if err := os.WriteFile(path, []byte(env), 0o644); err != nil {
		w.t.Fatalf("write subnet.env: %v", err)
	}
	conf := strings.Replace(flannelConf, "%s", fields, 1)
	w.writeNet("fl", strings.ReplaceAll(conf, "SUBNETFILE", path))
	return path
}

// envFile joins lines with LF line ends, as flanneld writes them.
func envFile(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// checkFlannelBridge checks that the bridge cni0 exists with the alias of
// a bridge kvmnet created, the given MTU and the gateway addresses, and that
// the VM's tap is enslaved to it with the same MTU.
func (w *world) checkFlannelBridge(ifc kvmnet.Interface, mtu int, gateways ...string) {
	w.t.Helper()
	snap := w.ns.Snapshot(w.t)
	br, ok := snap.Link("cni0")
	if !ok {
		w.t.Fatalf("bridge cni0 not found, links: %+v", snap.Links)
	}
	if br.Type != "bridge" || br.Alias != "kvmnet bridge" || br.MTU != mtu {
		w.t.Errorf("cni0 is %+v, want a bridge with alias \"kvmnet bridge\" and mtu %d", br, mtu)
	}
	tap, ok := snap.Link(ifc.HostDevice)
	if !ok {
		w.t.Fatalf("tap %s not found", ifc.HostDevice)
	}
	if tap.Type != "tap" || tap.Master != "cni0" || tap.MTU != mtu {
		w.t.Errorf("tap is %+v, want a tap on cni0 with mtu %d", tap, mtu)
	}
	if ifc.Bridge != "cni0" || ifc.MTU != mtu {
		w.t.Errorf("result bridge %q mtu %d, want cni0 and %d", ifc.Bridge, ifc.MTU, mtu)
	}
	addrs := snap.AddrsOf("cni0")
	for _, gw := range gateways {
		if !slices.Contains(addrs, gw) {
			w.t.Errorf("cni0 has addresses %v, want %s", addrs, gw)
		}
	}
}

// checkAddress checks that ifc has exactly one address of the family of
// subnet, inside subnet and not its gateway, and that gateway is among the
// result's gateways.
func checkAddress(t *testing.T, ifc kvmnet.Interface, subnet, gateway string) {
	t.Helper()
	want := netip.MustParsePrefix(subnet)
	var found []netip.Prefix
	for _, p := range ifc.Addresses {
		if p.Addr().Is4() == want.Addr().Is4() {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("addresses %v: want one in %s", ifc.Addresses, subnet)
	}
	if found[0].Masked() != want || found[0].Addr() == netip.MustParseAddr(gateway) {
		t.Errorf("address %s, want a guest address in %s other than %s", found[0], subnet, gateway)
	}
	if !slices.Contains(ifc.Gateways, netip.MustParseAddr(gateway)) {
		t.Errorf("gateways %v, want %s", ifc.Gateways, gateway)
	}
}

// checkRoute checks that ifc has a route to dst through gw.
func checkRoute(t *testing.T, ifc kvmnet.Interface, dst, gw string) {
	t.Helper()
	want := kvmnet.Route{Dst: netip.MustParsePrefix(dst), GW: netip.MustParseAddr(gw)}
	if !slices.Contains(ifc.Routes, want) {
		t.Errorf("routes %v, want %s via %s", ifc.Routes, dst, gw)
	}
}

func TestFlannelIPv4(t *testing.T) {
	tests := []struct {
		ipMasqLine string
		wantIPMasq bool
	}{
		{ipMasqLine: "FLANNEL_IPMASQ=true", wantIPMasq: false},
		{ipMasqLine: "FLANNEL_IPMASQ=false", wantIPMasq: true},
	}
	for _, tt := range tests {
		t.Run(tt.ipMasqLine, func(t *testing.T) {
			w := newWorld(t, "fl4")
			w.writeFlannel(envFile(envNetwork, envSubnet, envMTU, tt.ipMasqLine), "")
			w.takeBaseline()

			res := w.up("vm-fl", "--net", "fl")
			ifc := res.Interfaces[0]
			w.checkFlannelBridge(ifc, 1450, "10.1.17.1/24")
			checkAddress(t, ifc, "10.1.17.0/24", "10.1.17.1")
			checkRoute(t, ifc, "10.1.0.0/16", "10.1.17.1")
			if routes := defaultRoutes(res); len(routes) != 0 {
				t.Errorf("flannel network gave default routes %v, want none", routes)
			}
			conf := w.savedConfig("vm-fl", 0)
			if conf["type"] != "bridge" || conf["ipMasq"] != tt.wantIPMasq {
				t.Errorf("saved config has type %v ipMasq %v, want bridge and %v", conf["type"], conf["ipMasq"], tt.wantIPMasq)
			}

			w.down("vm-fl")
			w.checkClean()
		})
	}
}

func TestFlannelIPv6Only(t *testing.T) {
	w := newWorld(t, "fl6")
	w.writeFlannel(envFile(envIPv6Network, envIPv6Subnet, envMTU, envIPMasq), "")
	w.takeBaseline()

	res := w.up("vm-fl6", "--net", "fl")
	ifc := res.Interfaces[0]
	w.checkFlannelBridge(ifc, 1450, "fd00:10:0:11::1/64")
	checkAddress(t, ifc, "fd00:10:0:11::/64", "fd00:10:0:11::1")
	checkRoute(t, ifc, "fd00:10::/56", "fd00:10:0:11::1")
	for _, p := range ifc.Addresses {
		if p.Addr().Is4() {
			t.Errorf("IPv6-only network gave the guest IPv4 address %s", p)
		}
	}

	w.down("vm-fl6")
	w.checkClean()
}

func TestFlannelDualStack(t *testing.T) {
	w := newWorld(t, "fl46")
	w.writeFlannel(envFile(envNetwork, envSubnet, envIPv6Network, envIPv6Subnet, envMTU, envIPMasq), "")
	w.takeBaseline()

	res := w.up("vm-fl46", "--net", "fl")
	ifc := res.Interfaces[0]
	w.checkFlannelBridge(ifc, 1450, "10.1.17.1/24", "fd00:10:0:11::1/64")
	checkAddress(t, ifc, "10.1.17.0/24", "10.1.17.1")
	checkAddress(t, ifc, "fd00:10:0:11::/64", "fd00:10:0:11::1")
	checkRoute(t, ifc, "10.1.0.0/16", "10.1.17.1")
	checkRoute(t, ifc, "fd00:10::/56", "fd00:10:0:11::1")

	w.down("vm-fl46")
	w.checkClean()
}

func TestFlannelCommentLines(t *testing.T) {
	w := newWorld(t, "flcom")
	w.writeFlannel(envFile("# written by hand", envNetwork, envSubnet, "", "# MTU of the vxlan device", envMTU, envIPMasq), "")
	w.takeBaseline()

	ifc := w.up("vm-com", "--net", "fl").Interfaces[0]
	checkAddress(t, ifc, "10.1.17.0/24", "10.1.17.1")

	w.down("vm-com")
	w.checkClean()
}

func TestFlannelMalformedSubnetEnv(t *testing.T) {
	tests := []struct {
		name string
		env  string
		// want are parts of the error message: the key or the bad line.
		want []string
	}{
		{
			name: "missing network",
			env:  envFile(envSubnet, envMTU, envIPMasq),
			want: []string{"FLANNEL_NETWORK"},
		},
		{
			name: "empty file",
			env:  "",
			want: []string{"subnet.env", "empty"},
		},
		{
			name: "line without equals sign",
			env:  envFile(envNetwork, envSubnet, "FLANNEL_MTU 1450", envIPMasq),
			want: []string{"line 3", "FLANNEL_MTU 1450"},
		},
		{
			name: "CRLF line ends",
			env:  strings.Join([]string{envNetwork, envSubnet, envMTU, envIPMasq}, "\r\n") + "\r\n",
			want: []string{"line 1", "FLANNEL_NETWORK", "carriage return"},
		},
		{
			name: "comments only",
			env:  envFile("# flanneld is not running", "# FLANNEL_NETWORK=10.1.0.0/16"),
			want: []string{"missing", "FLANNEL_NETWORK"},
		},
		{
			name: "comment after value",
			env:  envFile(envNetwork, envSubnet, "FLANNEL_MTU=1450 # vxlan", envIPMasq),
			want: []string{"line 3", "FLANNEL_MTU=1450 # vxlan"},
		},
		{
			name: "double-quoted value",
			env:  envFile(envNetwork, `FLANNEL_SUBNET="10.1.17.1/24"`, envMTU, envIPMasq),
			want: []string{"line 2", "FLANNEL_SUBNET", "quoted"},
		},
		{
			name: "single-quoted value",
			env:  envFile(envNetwork, envSubnet, envMTU, "FLANNEL_IPMASQ='true'"),
			want: []string{"line 4", "FLANNEL_IPMASQ", "quoted"},
		},
	}
	shared := newWorld(t, "flbad")
	shared.takeBaseline()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := shared.in(t)
			w.writeFlannel(tt.env, "")

			out := w.upFails("vm-bad", "--net", "fl")
			checkContains(t, "error", out.Stderr, tt.want...)
			w.checkClean()
		})
	}
}

func TestFlannelSubnetFileGone(t *testing.T) {
	w := newWorld(t, "flgone")
	path := w.writeFlannel(envFile(envNetwork, envSubnet, envMTU, envIPMasq), "")
	w.takeBaseline()

	w.up("vm-gone", "--net", "fl")
	if err := os.Remove(path); err != nil {
		t.Fatalf("remove subnet.env: %v", err)
	}

	w.down("vm-gone")
	w.checkClean()
}

func TestFlannelDelegateMTU(t *testing.T) {
	w := newWorld(t, "fldmtu")
	w.writeFlannel(envFile(envNetwork, envSubnet, envMTU, envIPMasq), `"delegate":{"mtu":1400},`)
	w.takeBaseline()

	ifc := w.up("vm-dmtu", "--net", "fl").Interfaces[0]
	w.checkFlannelBridge(ifc, 1400, "10.1.17.1/24")

	w.down("vm-dmtu")
	w.checkClean()
}

func TestFlannelDelegateWrongType(t *testing.T) {
	tests := []struct {
		name     string
		delegate string
		field    string
	}{
		{name: "ipMasq string", delegate: `"delegate":{"ipMasq":"true"},`, field: "delegate.ipMasq"},
		{name: "isDefaultGateway number", delegate: `"delegate":{"isDefaultGateway":1},`, field: "delegate.isDefaultGateway"},
		{name: "mtu string", delegate: `"delegate":{"mtu":"1400"},`, field: "delegate.mtu"},
	}
	shared := newWorld(t, "fldtype")
	shared.takeBaseline()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := shared.in(t)
			w.writeFlannel(envFile(envNetwork, envSubnet, envMTU, envIPMasq), tt.delegate)

			out := w.upFails("vm-dtype", "--net", "fl")
			checkContains(t, "error", out.Stderr, tt.field)
			w.checkClean()
			w.down("vm-dtype")
		})
	}
}

func TestFlannelMTU(t *testing.T) {
	w := newWorld(t, "flmtu")
	w.writeFlannel(envFile(envNetwork, envSubnet, "FLANNEL_MTU=1450", envIPMasq), "")
	w.takeBaseline()

	ifc := w.up("vm-mtu", "--net", "fl").Interfaces[0]
	w.checkFlannelBridge(ifc, 1450, "10.1.17.1/24")
	checkContains(t, "networkd units", w.show("vm-mtu", "networkd"), "MTUBytes=1450")
	checkContains(t, "qemu arguments", w.show("vm-mtu", "qemu"), "host_mtu=1450")
	checkContains(t, "cloud-init network-config", w.show("vm-mtu", "cloud-init"), "mtu: 1450")
	checkContains(t, "kernel arguments", w.show("vm-mtu", "kernel-args"), "kvmnet.mtu=eth0:1450")

	w.down("vm-mtu")
	w.checkClean()
}

func TestFlannelMTUZero(t *testing.T) {
	w := newWorld(t, "flmtu0")
	w.writeFlannel(envFile(envNetwork, envSubnet, "FLANNEL_MTU=0", envIPMasq), "")
	w.takeBaseline()

	out := w.upFails("vm-mtu0", "--net", "fl")
	checkContains(t, "error", out.Stderr, "FLANNEL_MTU", "out of range")
	w.checkClean()
}
