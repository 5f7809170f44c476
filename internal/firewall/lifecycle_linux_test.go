package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kvmnet/kvmnet/internal/netns"
	"github.com/kvmnet/kvmnet/internal/testenv"
)

// kernelState is what a VM's Add may change in the host namespace.
type kernelState struct {
	Ruleset   string
	Localnet  string // route_localnet of the bridge
	Loopback6 string // local routes of table local on the bridge
}

func (h *fwHost) kernelState(bridge string) kernelState {
	h.t.Helper()
	return kernelState{
		Ruleset:   h.ruleset(),
		Localnet:  strings.TrimSpace(h.ns.Run(h.t, "sysctl", "-n", "net.ipv4.conf."+bridge+".route_localnet")),
		Loopback6: withoutLinkLocal(h.ns.Run(h.t, "ip", "-6", "route", "show", "table", "local", "dev", bridge)),
	}
}

// bridgedVM returns a VM on bridge kvbr0 with masquerade, anti-spoofing and
// one forwarded port per family; n picks its addresses, device and ports.
func bridgedVM(n int) VM {
	v4 := netip.AddrFrom4([4]byte{10, 100, byte(n / 250), byte(n%250 + 2)})
	v6 := netip.MustParseAddr(fmt.Sprintf("fd00:100::%x", n+2))
	return VM{ID: fmt.Sprintf("vm-%d", n), Attachments: []Attachment{{
		Network: "br", HostDevice: fmt.Sprintf("kvb%d", n), Bridge: "kvbr0",
		MAC:        mustMAC(fmt.Sprintf("52:54:00:00:%02x:%02x", n/256, n%256)),
		Addrs:      []netip.Prefix{netip.PrefixFrom(v4, 16), netip.PrefixFrom(v6, 64)},
		Masquerade: true, MasqueradeIPv6: true, AntiSpoof: true,
		Ports: []PortForward{
			forward(10000+n, 80, "tcp", v4),
			forward(10000+n, 80, "tcp", v6),
		},
	}}}
}

func newBridgeHost(t testing.TB) *fwHost {
	h := newFWHost(t)
	h.ns.Run(t, "ip", "link", "add", "kvbr0", "type", "bridge")
	h.ns.Run(t, "ip", "link", "set", "kvbr0", "up")
	return h
}

func TestAddRemoveLoopReturnsToBaseline(t *testing.T) {
	h := newBridgeHost(t)
	before := h.kernelState("kvbr0")
	vm := bridgedVM(1)
	h.mustRemove(vm, h.mustAdd(vm))
	baseline := h.kernelState("kvbr0")
	if baseline.Localnet != before.Localnet || baseline.Loopback6 != before.Loopback6 {
		t.Fatalf("first add/remove changed the device: before %+v, after %+v", before, baseline)
	}
	if strings.Contains(baseline.Ruleset, "elements") || strings.Contains(baseline.Ruleset, "kvmnet-guard-") {
		t.Fatalf("ruleset after Remove still has entries:\n%s", baseline.Ruleset)
	}

	for i := range 20 {
		r := h.mustAdd(vm)
		if got := h.kernelState("kvbr0"); got.Localnet != "1" || !strings.Contains(got.Loopback6, "::1") {
			t.Fatalf("round %d: loopback changes missing after Add: %+v", i, got)
		}
		h.mustRemove(vm, r)
	}
	if diff := cmp.Diff(baseline, h.kernelState("kvbr0")); diff != "" {
		t.Errorf("state after 20 add/remove rounds differs from the baseline (-want +got):\n%s", diff)
	}
}

func TestManyVMsRemovedToBaseline(t *testing.T) {
	h := newBridgeHost(t)
	h.mustRemove(bridgedVM(0), h.mustAdd(bridgedVM(0)))
	baseline := h.kernelState("kvbr0")

	const n = 200
	receipts := make([]Receipt, n)
	for i := range n {
		receipts[i] = h.mustAdd(bridgedVM(i))
	}
	var owners []string
	h.do(func() (err error) {
		owners, err = h.fw.Owners()
		return err
	})
	if len(owners) != n {
		t.Errorf("Owners() returned %d ids, want %d", len(owners), n)
	}
	for i := range n {
		h.mustRemove(bridgedVM(i), receipts[i])
		if i == n/2 {
			if got := h.kernelState("kvbr0"); got.Localnet != "1" {
				t.Errorf("route_localnet = %s while VMs still forward through the bridge, want 1", got.Localnet)
			}
		}
	}
	if diff := cmp.Diff(baseline, h.kernelState("kvbr0")); diff != "" {
		t.Errorf("state after removing %d VMs differs from the baseline (-want +got):\n%s", n, diff)
	}
}

func TestReusedAddress(t *testing.T) {
	for _, via := range []string{"RemoveOwner", "Remove"} {
		t.Run(via, func(t *testing.T) {
			h := newBridgeHost(t)
			a := bridgedVM(1)
			b := bridgedVM(2)
			// B got A's addresses after A died without teardown.
			b.Attachments[0].Addrs = a.Attachments[0].Addrs
			for i := range b.Attachments[0].Ports {
				b.Attachments[0].Ports[i].GuestIP = a.Attachments[0].Ports[i].GuestIP
			}
			receiptA := h.mustAdd(a)
			h.mustAdd(b)

			h.do(func() error {
				if via == "RemoveOwner" {
					return h.fw.RemoveOwner(a.ID)
				}
				return h.fw.Remove(a, receiptA)
			})
			rules := h.ruleset()
			for _, want := range []string{
				`10.100.0.3 comment "vm-2"`, // guest4 element that B took over
				`tcp . 10002 comment "vm-2" : 10.100.0.3 . 80`,
				"kvmnet-guard-kvb2",
			} {
				if !strings.Contains(rules, want) {
					t.Errorf("ruleset lacks %q after removing vm-1:\n%s", want, rules)
				}
			}
			for _, gone := range []string{`"vm-1"`, "kvmnet-guard-kvb1", "10001"} {
				if strings.Contains(rules, gone) {
					t.Errorf("ruleset still has %q after removing vm-1:\n%s", gone, rules)
				}
			}
			if got := h.kernelState("kvbr0").Localnet; got != "1" {
				t.Errorf("route_localnet = %s, want 1 while vm-2 forwards through the bridge", got)
			}
			var owners []string
			h.do(func() (err error) {
				owners, err = h.fw.Owners()
				return err
			})
			if !slices.Equal(owners, []string{"vm-2"}) {
				t.Errorf("Owners() = %q, want [vm-2]", owners)
			}
		})
	}
}

func TestRemoveOwnerWithoutRecord(t *testing.T) {
	h := newBridgeHost(t)
	h.mustRemove(bridgedVM(0), h.mustAdd(bridgedVM(0)))
	baseline := h.kernelState("kvbr0")
	vm := bridgedVM(3)
	vm.Attachments[0].Ports = append(vm.Attachments[0].Ports, PortForward{
		HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 7000, GuestPort: 70, Proto: "udp",
		GuestIP: vm.Attachments[0].Addrs[0].Addr(),
	})
	vm.Attachments[0].Isolated = true
	h.mustAdd(vm)
	h.do(func() error { return h.fw.RemoveOwner(vm.ID) })
	if diff := cmp.Diff(baseline, h.kernelState("kvbr0")); diff != "" {
		t.Errorf("state after RemoveOwner differs from the baseline (-want +got):\n%s", diff)
	}
}

func TestRemoveToleratesAbsence(t *testing.T) {
	h := newBridgeHost(t)
	vm := bridgedVM(1)
	if err := h.remove(vm, Receipt{}); err != nil {
		t.Errorf("Remove before any Add: %v", err)
	}
	r := h.mustAdd(vm)
	h.mustRemove(vm, r)
	if err := h.remove(vm, r); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	h.mustAdd(vm)
	h.ns.Run(t, "nft", "delete", "table", "inet", "kvmnet")
	h.ns.Run(t, "nft", "delete", "table", "netdev", "kvmnet-guard-kvb1")
	if err := h.remove(vm, r); err != nil {
		t.Errorf("Remove after the tables were deleted: %v", err)
	}
	if err := netns.Do(h.ns.Path, func() error { return h.fw.RemoveOwner("vm-never") }); err != nil {
		t.Errorf("RemoveOwner of an unknown id: %v", err)
	}
}

func TestAddTwiceReplaces(t *testing.T) {
	h := newBridgeHost(t)
	vm := bridgedVM(1)
	vm.Attachments[0].Ports = append(vm.Attachments[0].Ports, PortForward{
		HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 7000, GuestPort: 70, Proto: "udp",
		GuestIP: vm.Attachments[0].Addrs[0].Addr(),
	})
	r := h.mustAdd(vm)
	once := h.ruleset()
	h.mustAdd(vm)
	if diff := cmp.Diff(once, h.ruleset()); diff != "" {
		t.Errorf("second Add changed the ruleset (-once +twice):\n%s", diff)
	}
	h.mustRemove(vm, r)
	if strings.Contains(h.ruleset(), "elements") {
		t.Errorf("entries left after Remove:\n%s", h.ruleset())
	}
}

func TestAddRejectsInvalidVM(t *testing.T) {
	h := newFWHost(t)
	valid := func() VM {
		return VM{ID: "vm-1", Attachments: []Attachment{{
			Network: "n", HostDevice: "kvt1", MAC: mustMAC("52:54:00:00:00:01"), AntiSpoof: true,
			Addrs: prefixes("10.1.0.2/24"),
			Ports: []PortForward{forward(8080, 80, "tcp", netip.MustParseAddr("10.1.0.2"))},
		}}}
	}
	tests := []struct {
		name   string
		mutate func(*VM)
	}{
		{"empty id", func(vm *VM) { vm.ID = "" }},
		{"id with slash", func(vm *VM) { vm.ID = "../../etc/x" }},
		{"id too long", func(vm *VM) { vm.ID = strings.Repeat("a", 129) }},
		{"device name too long", func(vm *VM) { vm.Attachments[0].HostDevice = "kvtap0123456789x" }},
		{"device name with slash", func(vm *VM) { vm.Attachments[0].HostDevice = "a/b" }},
		{"missing MAC", func(vm *VM) { vm.Attachments[0].MAC = nil }},
		{"multicast MAC", func(vm *VM) { vm.Attachments[0].MAC = mustMAC("01:00:5e:00:00:01") }},
		{"bad protocol", func(vm *VM) { vm.Attachments[0].Ports[0].Proto = "sctp" }},
		{"port zero", func(vm *VM) { vm.Attachments[0].Ports[0].HostPort = 0 }},
		{"range reversed", func(vm *VM) { vm.Attachments[0].Ports[0].HostPortEnd = 8000 }},
		{"range too large", func(vm *VM) { vm.Attachments[0].Ports[0].HostPort = 1; vm.Attachments[0].Ports[0].HostPortEnd = 2000 }},
		{"guest range past 65535", func(vm *VM) {
			vm.Attachments[0].Ports[0].HostPortEnd = 8090
			vm.Attachments[0].Ports[0].GuestPort = 65530
		}},
		{"guest address not of attachment", func(vm *VM) { vm.Attachments[0].Ports[0].GuestIP = netip.MustParseAddr("10.9.9.9") }},
		{"host address of other family", func(vm *VM) { vm.Attachments[0].Ports[0].HostIP = netip.MustParseAddr("::1") }},
		{"port forwarded twice", func(vm *VM) { vm.Attachments[0].Ports = append(vm.Attachments[0].Ports, vm.Attachments[0].Ports[0]) }},
		{"address twice", func(vm *VM) { vm.Attachments = append(vm.Attachments, vm.Attachments[0]) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm := valid()
			tt.mutate(&vm)
			_, err := h.add(vm)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Add = %v, want an error wrapping ErrInvalid", err)
			}
			if got := h.ruleset(); got != "" {
				t.Errorf("rejected Add left a ruleset:\n%s", got)
			}
		})
	}
}

// withoutLinkLocal drops the bridge's own fe80:: local route, which the
// kernel adds whenever the bridge gets a carrier, independent of kvmnet.
func withoutLinkLocal(routes string) string {
	var kept []string
	for _, line := range strings.Split(routes, "\n") {
		if !strings.HasPrefix(line, "local fe80:") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

func TestAddFromOtherNamespaceRejected(t *testing.T) {
	h := newBridgeHost(t)
	other := testenv.NewNS(t, "fwo")
	other.Run(t, "ip", "link", "add", "kvbr0", "type", "bridge")
	vm := bridgedVM(1)
	err := netns.Do(other.Path, func() error {
		_, err := h.fw.Add(vm)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "not in the network namespace") {
		t.Errorf("Add on a thread in another namespace = %v, want an error about the namespace", err)
	}
	if got := h.ruleset(); got != "" {
		t.Errorf("rejected Add left a ruleset:\n%s", got)
	}
	if got := strings.TrimSpace(other.Run(t, "sysctl", "-n", "net.ipv4.conf.kvbr0.route_localnet")); got != "0" {
		t.Errorf("route_localnet of the other namespace's bridge = %s, want 0", got)
	}
}

func TestForeignLayoutRejected(t *testing.T) {
	h := newBridgeHost(t)
	h.ns.Run(t, "nft", "add", "table", "inet", "kvmnet")
	h.ns.Run(t, "nft", "add", "set", "inet", "kvmnet", "guest4", "{ type ipv4_addr; }")
	before := h.ns.Run(t, "nft", "list", "ruleset")
	_, err := h.add(bridgedVM(1))
	if !errors.Is(err, ErrLayout) {
		t.Fatalf("Add into a table of another layout = %v, want ErrLayout", err)
	}
	if !strings.Contains(err.Error(), "nft delete table inet kvmnet") {
		t.Errorf("error %q does not say how to get rid of the table", err)
	}
	if after := h.ns.Run(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("ruleset changed by a rejected Add:\n%s", after)
	}
}
