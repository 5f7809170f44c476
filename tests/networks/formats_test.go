//go:build linux

package networks_test

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/render"
)

func TestFormatsTwoNetworks(t *testing.T) {
	w := newWorld(t, "fmt")
	w.writeNet("b", mixedNetworks["b"])
	w.takeBaseline()

	res := w.up("vm-fmt", "--net", "default,b", "--dns", "192.0.2.53")
	if len(res.Interfaces) != 2 {
		t.Fatalf("got %d interfaces, want 2", len(res.Interfaces))
	}
	eth0, eth1 := res.Interfaces[0], res.Interfaces[1]
	addr0, addr1 := eth0.Addresses[0].Addr().String(), eth1.Addresses[0].Addr().String()

	// Each format must name both host devices (or the guest devices) and
	// both MACs. The map key is the format name.
	want := map[string][]string{
		"qemu": {
			"-netdev tap,id=net0,ifname=" + eth0.HostDevice + ",script=no,downscript=no",
			"-netdev tap,id=net1,ifname=" + eth1.HostDevice + ",script=no,downscript=no",
			"netdev=net0,mac=" + eth0.MAC, "netdev=net1,mac=" + eth1.MAC,
		},
		"cloud-hypervisor": {
			"--net tap=" + eth0.HostDevice + ",mac=" + eth0.MAC,
			"--net tap=" + eth1.HostDevice + ",mac=" + eth1.MAC,
		},
		"lkvm": {
			"--network mode=tap,tapif=" + eth0.HostDevice + ",guest_mac=" + eth0.MAC,
			"--network mode=tap,tapif=" + eth1.HostDevice + ",guest_mac=" + eth1.MAC,
		},
		"kernel-args": {
			"ip=" + addr0 + "::172.16.28.1:255.255.255.0::eth0:off:192.0.2.53",
			"kvmnet.ip=" + addr1 + ":::255.255.255.0::eth1:off",
		},
		"networkd": {
			"# 10-kvmnet-eth0.network", "MACAddress=" + eth0.MAC, "Address=" + eth0.Addresses[0].String(),
			"# 10-kvmnet-eth1.network", "MACAddress=" + eth1.MAC, "Address=" + eth1.Addresses[0].String(),
			"Gateway=172.16.28.1", "DNS=192.0.2.53",
		},
		"cloud-init": {
			"version: 2", eth0.MAC, eth1.MAC, eth0.Addresses[0].String(), eth1.Addresses[0].String(),
			"192.0.2.53",
		},
		"resolv.conf": {"nameserver 192.0.2.53"},
	}
	for _, format := range render.Formats() {
		t.Run(format, func(t *testing.T) {
			out := w.in(t).show("vm-fmt", format)
			switch format {
			case "json":
				var got kvmnet.Result
				if err := json.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("decode json output: %v\n%s", err, out)
				}
				if diff := cmp.Diff(res, &got, cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{})); diff != "" {
					t.Errorf("show json differs from the result of up (-up +show):\n%s", diff)
				}
			case "firecracker":
				checkFirecracker(t, out, res)
			default:
				parts, ok := want[format]
				if !ok {
					t.Fatalf("format %s has no expected output in this test; add it", format)
				}
				checkContains(t, format+" output", out, parts...)
			}
		})
	}

	w.down("vm-fmt")
	w.checkClean()
}

// checkFirecracker checks that the firecracker configuration lists every
// interface of res with its tap and MAC, and carries the kernel ip= argument.
func checkFirecracker(t *testing.T, out string, res *kvmnet.Result) {
	t.Helper()
	var cfg render.FirecrackerConfig
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("decode firecracker output: %v\n%s", err, out)
	}
	var want []render.FirecrackerInterface
	for _, ifc := range res.Interfaces {
		want = append(want, render.FirecrackerInterface{IfaceID: ifc.GuestDevice, HostDevName: ifc.HostDevice, GuestMAC: ifc.MAC})
	}
	if diff := cmp.Diff(want, cfg.NetworkInterfaces); diff != "" {
		t.Errorf("firecracker network-interfaces (-want +got):\n%s", diff)
	}
	if !slices.ContainsFunc(strings.Fields(cfg.BootArgs), func(arg string) bool { return strings.HasPrefix(arg, "ip=") }) {
		t.Errorf("firecracker boot_args %q have no ip= argument", cfg.BootArgs)
	}
}
