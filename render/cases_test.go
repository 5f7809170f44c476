package render

import (
	"net/netip"

	"github.com/kvmnet/kvmnet"
)

// testCase is one Result rendered in every format and compared with the
// golden files in testdata/<name>/<format>.golden.
type testCase struct {
	name   string
	result kvmnet.Result
	opts   Options
	// unsupported lists the formats whose hypervisor cannot attach one of
	// the devices. They must fail with errors.ErrUnsupported.
	unsupported []string
}

func prefixes(s ...string) []netip.Prefix {
	list := make([]netip.Prefix, len(s))
	for i, p := range s {
		list[i] = netip.MustParsePrefix(p)
	}
	return list
}

func addrs(s ...string) []netip.Addr {
	list := make([]netip.Addr, len(s))
	for i, a := range s {
		list[i] = netip.MustParseAddr(a)
	}
	return list
}

func route(dst, gw string) kvmnet.Route {
	rt := kvmnet.Route{Dst: netip.MustParsePrefix(dst)}
	if gw != "" {
		rt.GW = netip.MustParseAddr(gw)
	}
	return rt
}

// withResolvConf fills DNS.ResolvConf the way the core does.
func withResolvConf(r kvmnet.Result) kvmnet.Result {
	r.DNS.ResolvConf = ResolvConf(r.DNS)
	return r
}

// testCases returns fresh copies of the golden cases.
func testCases() []testCase {
	return []testCase{
		{
			name: "ptp",
			result: withResolvConf(kvmnet.Result{
				VM: "web-1",
				Interfaces: []kvmnet.Interface{{
					Network:     "default",
					Type:        "ptp",
					HostDevice:  "kvm3f2a1c09",
					GuestDevice: "eth0",
					MAC:         "02:6B:76:3F:2A:01",
					MTU:         1500,
					Queues:      1,
					VnetHdr:     true,
					Addresses:   prefixes("172.16.28.2/24"),
					Gateways:    addrs("172.16.28.1"),
					Routes:      []kvmnet.Route{route("0.0.0.0/0", "172.16.28.1")},
					Ports: []kvmnet.Port{
						{Proto: "tcp", HostPort: 8080, HostPortEnd: 8080, GuestIP: netip.MustParseAddr("172.16.28.2"), GuestPort: 80},
						{Proto: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5300, HostPortEnd: 5301, GuestIP: netip.MustParseAddr("172.16.28.2"), GuestPort: 53},
					},
				}},
				DNS: kvmnet.DNS{
					Nameservers: addrs("192.0.2.53", "198.51.100.53", "203.0.113.53"),
					Search:      []string{"svc.example.internal", "example.internal"},
					Options:     []string{"ndots:2", "edns0"},
					Source:      "default",
				},
			}),
			opts: Options{Hostname: "web-1"},
		},
		{
			name: "bridge-dual-stack",
			result: withResolvConf(kvmnet.Result{
				VM: "db-7",
				Interfaces: []kvmnet.Interface{{
					Network:     "lan",
					Type:        "bridge",
					HostDevice:  "kvm8d41e7b2",
					Bridge:      "kvmbr0",
					GuestDevice: "eth0",
					MAC:         "02:6b:76:8d:41:01",
					MTU:         1450,
					Queues:      1,
					VnetHdr:     true,
					Addresses:   prefixes("fd42:7a3b::5/64", "10.22.0.5/16"),
					Gateways:    addrs("fd42:7a3b::1", "10.22.0.1"),
					Routes: []kvmnet.Route{
						route("::/0", "fd42:7a3b::1"),
						route("0.0.0.0/0", "10.22.0.1"),
					},
					Ports: []kvmnet.Port{
						{Proto: "tcp", HostIP: netip.MustParseAddr("::1"), HostPort: 5432, HostPortEnd: 5432, GuestIP: netip.MustParseAddr("fd42:7a3b::5"), GuestPort: 5432},
					},
				}},
				DNS: kvmnet.DNS{
					Nameservers: addrs("fd42:7a3b::1", "10.22.0.1"),
					Domain:      "lan.example.internal",
					Source:      "lan",
				},
			}),
		},
		{
			name: "three-nics",
			result: withResolvConf(kvmnet.Result{
				VM: "ci-runner-3",
				Interfaces: []kvmnet.Interface{
					{
						Network:     "default",
						Type:        "ptp",
						HostDevice:  "kvm1a2b3c01",
						GuestDevice: "eth0",
						MAC:         "02:6b:76:1a:2b:01",
						MTU:         1500,
						Queues:      1,
						VnetHdr:     true,
						Addresses:   prefixes("10.1.0.2/24"),
						Gateways:    addrs("10.1.0.1"),
						Routes:      []kvmnet.Route{route("0.0.0.0/0", "10.1.0.1")},
					},
					{
						Network:     "backend",
						Type:        "bridge",
						HostDevice:  "kvm1a2b3c02",
						Bridge:      "kvmbr1",
						GuestDevice: "eth1",
						MAC:         "02:6b:76:1a:2b:02",
						MTU:         1500,
						Queues:      1,
						VnetHdr:     true,
						Addresses:   prefixes("10.2.0.7/24"),
						Gateways:    addrs("10.2.0.1"),
					},
					{
						Network:     "uplink",
						Type:        "macvlan",
						HostDevice:  "kvm1a2b3c03",
						DevicePath:  "/dev/tap42",
						GuestDevice: "eth2",
						MAC:         "02:6b:76:1a:2b:03",
						MTU:         1500,
						Queues:      4,
						VnetHdr:     true,
						Addresses:   prefixes("10.3.0.9/24"),
						Gateways:    addrs("10.3.0.1"),
						Routes:      []kvmnet.Route{route("10.30.0.0/16", "10.3.0.1")},
					},
				},
				DNS: kvmnet.DNS{
					Nameservers: addrs("10.1.0.1"),
					Search:      []string{"example.internal"},
					Source:      "default",
					Ignored:     []string{"uplink"},
				},
			}),
			opts:        Options{Hostname: "ci-runner-3"},
			unsupported: []string{"firecracker"},
		},
		{
			name: "no-addresses",
			result: withResolvConf(kvmnet.Result{
				VM: "empty-1",
				Interfaces: []kvmnet.Interface{{
					Network:     "l2only",
					Type:        "bridge",
					HostDevice:  "kvm55aa0001",
					Bridge:      "kvmbr2",
					GuestDevice: "eth0",
					MAC:         "02:6b:76:55:aa:01",
					MTU:         1500,
					Queues:      1,
				}},
			}),
		},
		{
			name: "no-dns",
			result: withResolvConf(kvmnet.Result{
				VM: "batch-9",
				Interfaces: []kvmnet.Interface{{
					Network:     "default-restricted",
					Type:        "ptp",
					HostDevice:  "kvm0c0ffee1",
					GuestDevice: "eth0",
					MAC:         "02:6b:76:0c:0f:01",
					MTU:         1500,
					Queues:      1,
					VnetHdr:     true,
					Addresses:   prefixes("10.9.0.2/24"),
					Gateways:    addrs("10.9.0.1"),
					Routes: []kvmnet.Route{
						route("0.0.0.0/0", "10.9.0.1"),
						route("10.99.0.0/16", ""),
					},
				}},
			}),
		},
		{
			// A microvm without PCI, with vhost-net, a two-queue tap with a
			// jumbo MTU and a macvtap with one queue.
			name: "microvm-vhost",
			result: withResolvConf(kvmnet.Result{
				VM: "fast-2",
				Interfaces: []kvmnet.Interface{
					{
						Network:     "jumbo",
						Type:        "bridge",
						HostDevice:  "kvm77e0d001",
						Bridge:      "kvmbr9",
						GuestDevice: "eth0",
						MAC:         "02:6b:76:77:e0:01",
						MTU:         9000,
						Queues:      2,
						VnetHdr:     true,
						Addresses:   prefixes("10.50.0.4/24", "fd00:50::4/64"),
						Gateways:    addrs("10.50.0.1"),
						Routes:      []kvmnet.Route{route("0.0.0.0/0", "10.50.0.1")},
					},
					{
						Network:     "direct",
						Type:        "macvlan",
						HostDevice:  "kvm77e0d002",
						DevicePath:  "/dev/tap7",
						GuestDevice: "eth1",
						MAC:         "02:6b:76:77:e0:02",
						MTU:         1500,
						Queues:      1,
						VnetHdr:     true,
						Addresses:   prefixes("192.168.77.20/24"),
					},
				},
				DNS: kvmnet.DNS{
					Nameservers: addrs("10.50.0.1", "fd00:50::1"),
					Options:     []string{"rotate"},
				},
			}),
			opts:        Options{VhostNet: true, QemuDevice: "virtio-net-device"},
			unsupported: []string{"firecracker", "lkvm"},
		},
	}
}
