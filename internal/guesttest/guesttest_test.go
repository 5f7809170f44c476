//go:build linux

package guesttest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// tapArgs returns QEMU NIC arguments in the form `kvmnet up --format qemu`
// prints them, for a tap that the test created by hand.
func tapArgs(index int, tap, mac string) []string {
	return SplitArgs(fmt.Sprintf(
		"-netdev tap,id=net%d,ifname=%s,script=no,downscript=no -device virtio-net-pci,netdev=net%d,mac=%s",
		index, tap, index, mac))
}

// addTap creates a tap in ns with the given address and brings it up.
func addTap(ns *Netns, name, cidr string) {
	ns.IP("tuntap", "add", "dev", name, "mode", "tap", "vnet_hdr")
	ns.IP("addr", "add", cidr, "dev", name)
	ns.IP("link", "set", name, "up")
}

// TestGuestOnTap boots the guest on a hand-made tap with each machine type
// and checks traffic both ways.
func TestGuestOnTap(t *testing.T) {
	for _, machine := range []Machine{MachineMicrovm, MachineQ35} {
		t.Run(string(machine), func(t *testing.T) {
			ns := NewNetns(t, "gt")
			addTap(ns, "kvmt0", "192.0.2.1/24")
			g := Boot(t, Options{
				Name:       "tap-" + string(machine),
				Netns:      ns.Name,
				Machine:    machine,
				NetArgs:    tapArgs(0, "kvmt0", "02:6b:76:00:00:02"),
				KernelArgs: "ip=192.0.2.2::192.0.2.1:255.255.255.0:gt-guest:eth0:off:192.0.2.53",
			})

			if err := ns.WaitPing("192.0.2.2", 10*time.Second); err != nil {
				t.Fatalf("ping guest from namespace: %v", err)
			}
			page, err := ns.HTTPGet("http://192.0.2.2/")
			if err != nil {
				t.Fatalf("fetch guest page: %v", err)
			}
			if !strings.Contains(page, "gt-guest") || !strings.Contains(page, "192.0.2.2/24") {
				t.Errorf("guest page lacks hostname gt-guest or address 192.0.2.2/24:\n%s", page)
			}
			info, err := ns.HTTPGet("http://192.0.2.2/cgi-bin/info")
			if err != nil {
				t.Fatalf("fetch guest info: %v", err)
			}
			if !strings.Contains(info, "client=192.0.2.1\n") {
				t.Errorf("guest info does not show client 192.0.2.1:\n%s", info)
			}
			echo, err := ns.Try("sh", "-c", "echo kvmnet-echo | timeout 5 busybox nc 192.0.2.2 7")
			if !strings.Contains(echo, "kvmnet-echo") {
				t.Errorf("echo port 7 returned %q (%v), want kvmnet-echo", echo, err)
			}

			if out, rc := g.Run("ping -c1 -W2 192.0.2.1"); rc != 0 {
				t.Errorf("guest ping to host exited with %d:\n%s", rc, out)
			}
			if routes := g.MustRun("ip route"); !strings.Contains(routes, "default via 192.0.2.1 dev eth0") {
				t.Errorf("guest has no default route via 192.0.2.1:\n%s", routes)
			}
			if resolv := g.MustRun("cat /etc/resolv.conf"); resolv != "nameserver 192.0.2.53\n" {
				t.Errorf("guest resolv.conf = %q, want nameserver 192.0.2.53", resolv)
			}
		})
	}
}

// TestGuestRun checks the console command protocol: output, exit codes,
// output without a final newline, and rejected input.
func TestGuestRun(t *testing.T) {
	g := Boot(t, Options{Name: "run"})

	tests := []struct {
		name    string
		command string
		want    string
		wantRC  int
	}{
		{name: "plain output", command: "echo hello", want: "hello\n"},
		{name: "no final newline", command: "printf abc", want: "abc"},
		{name: "exit code", command: "echo out; exit 3", want: "out\n", wantRC: 3},
		{name: "stderr merged", command: "echo err >&2", want: "err\n"},
		{name: "no output", command: "true", want: ""},
		{name: "marker text in output", command: "echo KVMNET-CMD-END 999 rc=0", want: "KVMNET-CMD-END 999 rc=0\n"},
		{name: "quotes", command: `echo "a  b" 'c'`, want: "a  b c\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rc := g.Run(tt.command)
			if got != tt.want {
				t.Errorf("output = %q, want %q", got, tt.want)
			}
			if rc != tt.wantRC {
				t.Errorf("rc = %d, want %d", rc, tt.wantRC)
			}
		})
	}

	if _, _, err := g.Exec(t.Context(), "echo a\necho b"); err == nil {
		t.Error("Exec accepted a command with a newline")
	}
}

// TestGuestCommandLine boots a guest with two NICs and every kvmnet.* entry
// of the init's command line syntax.
func TestGuestCommandLine(t *testing.T) {
	ns := NewNetns(t, "gc")
	addTap(ns, "kvmt0", "192.0.2.1/24")
	addTap(ns, "kvmt1", "198.51.100.1/24")
	ns.IP("-6", "addr", "add", "2001:db8::1/64", "dev", "kvmt0", "nodad")

	// The MAC entries swap the names: the first NIC becomes eth1.
	args := append(tapArgs(0, "kvmt0", "02:6b:76:00:00:10"), tapArgs(1, "kvmt1", "02:6b:76:00:00:11")...)
	g := Boot(t, Options{
		Name:    "cmdline",
		Netns:   ns.Name,
		NetArgs: args,
		KernelArgs: strings.Join([]string{
			"kvmnet.mac=eth1:02:6B:76:00:00:10",
			"kvmnet.mac=eth0:02:6b:76:00:00:11",
			"ip=198.51.100.2:::255.255.255.0:cl-guest:eth0:off",
			"kvmnet.ip=192.0.2.2::192.0.2.1:255.255.255.0::eth1:off:192.0.2.53",
			"kvmnet.mtu=eth0:1400",
			"kvmnet.ip6=eth1:2001:db8::2/64:2001:db8::1",
			"kvmnet.route=eth0:203.0.113.0/25:198.51.100.1",
			"kvmnet.route=eth0:203.0.113.128/25",
			"kvmnet.dns=192.0.2.54",
		}, " "),
	})

	if got := strings.TrimSpace(g.MustRun("cat /sys/class/net/eth1/address")); got != "02:6b:76:00:00:10" {
		t.Errorf("eth1 MAC = %s, want 02:6b:76:00:00:10 (renamed by kvmnet.mac)", got)
	}
	if got := strings.TrimSpace(g.MustRun("cat /sys/class/net/eth0/mtu")); got != "1400" {
		t.Errorf("eth0 MTU = %s, want 1400", got)
	}
	if got := strings.TrimSpace(g.MustRun("hostname")); got != "cl-guest" {
		t.Errorf("hostname = %s, want cl-guest", got)
	}
	routes := g.MustRun("ip route")
	for _, want := range []string{
		"default via 192.0.2.1 dev eth1",
		"203.0.113.0/25 via 198.51.100.1 dev eth0",
		"203.0.113.128/25 dev eth0",
	} {
		if !strings.Contains(routes, want) {
			t.Errorf("guest routes lack %q:\n%s", want, routes)
		}
	}
	if routes6 := g.MustRun("ip -6 route"); !strings.Contains(routes6, "default via 2001:db8::1 dev eth1") {
		t.Errorf("guest has no IPv6 default route via 2001:db8::1:\n%s", routes6)
	}
	if resolv := g.MustRun("cat /etc/resolv.conf"); resolv != "nameserver 192.0.2.53\nnameserver 192.0.2.54\n" {
		t.Errorf("guest resolv.conf = %q", resolv)
	}

	for _, addr := range []string{"198.51.100.2", "192.0.2.2", "2001:db8::2"} {
		if err := ns.WaitPing(addr, 10*time.Second); err != nil {
			t.Errorf("ping guest address %s: %v", addr, err)
		}
	}
	if out, rc := g.Run("ping -c1 -W2 2001:db8::1"); rc != 0 {
		t.Errorf("guest IPv6 ping to host exited with %d:\n%s", rc, out)
	}
}

// BenchmarkBoot measures the time from starting QEMU to the guest's ready
// marker, for each machine type.
func BenchmarkBoot(b *testing.B) {
	for _, machine := range []Machine{MachineMicrovm, MachineQ35} {
		b.Run(string(machine), func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				ns := NewNetns(b, "gb")
				addTap(ns, "kvmt0", "192.0.2.1/24")
				g := Boot(b, Options{
					Name:       "bench",
					Netns:      ns.Name,
					Machine:    machine,
					NetArgs:    tapArgs(0, "kvmt0", "02:6b:76:00:00:02"),
					KernelArgs: "ip=192.0.2.2::192.0.2.1:255.255.255.0::eth0:off",
				})
				total += g.BootTime
				// Cleanups would run only after the loop, and every
				// iteration needs one of the MaxGuests slots.
				g.Close()
				ns.Close()
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/boot")
		})
	}
}
