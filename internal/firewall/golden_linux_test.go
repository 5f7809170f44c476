package firewall

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kvmnet/kvmnet/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/ruleset.golden from the kernel's ruleset")

const goldenPath = "testdata/ruleset.golden"

// goldenVMs are three VMs that together use every kind of entry. They have
// bridged and ptp attachments, masquerade for both families, isolation, and
// anti-spoofing with one and two addresses per family. Their forwards listen
// on every host address, on specific addresses and on 127.0.0.1, and one
// covers a range.
func goldenVMs() []VM {
	web4, web6 := netip.MustParseAddr("10.88.0.2"), netip.MustParseAddr("fd00:88::2")
	db4 := netip.MustParseAddr("10.89.0.2")
	cache4, cache6 := netip.MustParseAddr("10.88.0.3"), netip.MustParseAddr("fd00:88::3")
	return []VM{
		{ID: "web", Attachments: []Attachment{{
			Network: "lan", HostDevice: "kvtap-web0", Bridge: "kvbr0", MAC: mustMAC("52:54:00:88:00:02"),
			Addrs: prefixes("10.88.0.2/16", "fd00:88::2/64"), Masquerade: true, MasqueradeIPv6: true, AntiSpoof: true,
			Ports: []PortForward{forward(8080, 80, "tcp", web4), forward(8080, 80, "tcp", web6)},
		}}},
		{ID: "db", Attachments: []Attachment{{
			Network: "restricted", HostDevice: "kvtap-db0", MAC: mustMAC("52:54:00:89:00:02"),
			Addrs: prefixes("10.89.0.2/24", "10.89.0.3/24"), Isolated: true, AntiSpoof: true,
			Ports: []PortForward{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5432, GuestPort: 5432, Proto: "tcp", GuestIP: db4}},
		}}},
		{ID: "cache", Attachments: []Attachment{{
			Network: "lan", HostDevice: "kvtap-cache0", Bridge: "kvbr0", MAC: mustMAC("52:54:00:88:00:03"),
			Addrs: prefixes("10.88.0.3/16", "fd00:88::3/64", "fd00:88::33/64"), Masquerade: true, AntiSpoof: true,
			Ports: []PortForward{
				{HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 6379, HostPortEnd: 6380, GuestPort: 6379, Proto: "udp", GuestIP: cache4},
				{HostIP: netip.MustParseAddr("fd00:9::1"), HostPort: 8443, GuestPort: 443, Proto: "tcp", GuestIP: cache6},
			},
		}}},
	}
}

func TestRulesetGolden(t *testing.T) {
	h := newFWHost(t)
	h.ns.Run(t, "ip", "link", "add", "kvbr0", "type", "bridge")
	h.ns.Run(t, "ip", "link", "set", "kvbr0", "up")
	h.ns.Run(t, "ip", "tuntap", "add", "kvtap-db0", "mode", "tap")
	for _, vm := range goldenVMs() {
		h.mustAdd(vm)
	}
	got := h.ruleset()
	if *update {
		if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("ruleset differs from %s (-want +got):\n%s", goldenPath, diff)
	}
}

// TestRulesetGoldenLoadsInNft checks that nft accepts the golden ruleset
// and lists it back unchanged, so that the rules built over netlink are
// ones nft itself can express.
func TestRulesetGoldenLoadsInNft(t *testing.T) {
	ns := testenv.NewNS(t, "fwd")
	path, err := filepath.Abs(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "nft", "-f", path)
	if diff := cmp.Diff(string(want), ns.Run(t, "nft", "list", "ruleset")); diff != "" {
		t.Errorf("nft lists the loaded golden ruleset differently (-golden +listed):\n%s", diff)
	}
}
