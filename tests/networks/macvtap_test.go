//go:build linux

package networks_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/internal/vmid"
)

// macvlanConf is a macvlan network on master vmaster. Its %s takes extra
// fields, such as `"mode":"vepa",` or "".
const macvlanConf = `{"cniVersion":"1.0.0","name":"mv","type":"macvlan","master":"vmaster",%s
	"ipam":{"type":"host-local","dataDir":"IPAMDIR","subnet":"10.77.0.0/24"}}`

func macvlanWith(fields string) string { return fmt.Sprintf(macvlanConf, fields) }

func TestMacvtapModes(t *testing.T) {
	for _, mode := range []string{"bridge", "private", "vepa", "passthru"} {
		t.Run(mode, func(t *testing.T) {
			w := newWorld(t, "mvmode")
			w.addVeth("vmaster", 1500)
			// Two more veth pairs raise the macvtap's index above the
			// low minors the kernel hands out, so that a device node made
			// from the index instead of the minor fails the checks.
			w.addVeth("spare0", 1500)
			w.addVeth("spare1", 1500)
			w.writeNet("mv", macvlanWith(`"mode":"`+mode+`",`))
			w.takeBaseline()
			master := w.linkDetails("vmaster")

			res := w.up("vm-mv", "--net", "mv")
			if len(res.Interfaces) != 1 {
				t.Fatalf("got %d interfaces, want 1: %+v", len(res.Interfaces), res.Interfaces)
			}
			ifc := res.Interfaces[0]
			link := w.linkDetails(ifc.HostDevice)
			if link.Info.Kind != "macvtap" || link.Info.Data.Mode != mode {
				t.Errorf("link %s is %s mode %q, want macvtap mode %q", ifc.HostDevice, link.Info.Kind, link.Info.Data.Mode, mode)
			}
			if ifc.MAC != link.Address {
				t.Errorf("result mac %s, link %s has %s", ifc.MAC, ifc.HostDevice, link.Address)
			}
			// passthru keeps the master's MAC, and the other modes take
			// the planned, stable one.
			wantMAC := vmid.MAC("vm-mv", 0).String()
			if mode == "passthru" {
				wantMAC = master.Address
			}
			if ifc.MAC != wantMAC {
				t.Errorf("mode %s: result mac %s, want %s", mode, ifc.MAC, wantMAC)
			}
			if ifc.MTU != 1500 || link.MTU != 1500 {
				t.Errorf("mtu: result %d, link %d, want the master's 1500", ifc.MTU, link.MTU)
			}
			if got := w.readNSFile("/proc/sys/net/ipv4/conf/" + ifc.HostDevice + "/proxy_arp"); got != "1" {
				t.Errorf("proxy_arp on %s is %s, want 1", ifc.HostDevice, got)
			}
			w.checkDeviceNode(ifc)
			w.checkOpensMacvtap(ifc)

			w.down("vm-mv")
			w.checkClean()
		})
	}
}

// checkDeviceNode checks that the result's devicePath is a character device
// whose major:minor is the one sysfs gives for the macvtap, and that its
// major is the "macvtap" entry of /proc/devices. The minor comes from the
// kernel's minor allocator, which is shared by all namespaces, so it often
// differs from the link's index (which names /dev/tapN).
func (w *world) checkDeviceNode(ifc kvmnet.Interface) {
	w.t.Helper()
	if ifc.DevicePath == "" {
		w.t.Fatalf("macvtap %s has no devicePath in the result", ifc.HostDevice)
	}
	var st unix.Stat_t
	if err := unix.Stat(ifc.DevicePath, &st); err != nil {
		w.t.Fatalf("stat device node: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		w.t.Fatalf("%s has mode %o, want a character device", ifc.DevicePath, st.Mode)
	}
	gotMajor, gotMinor := unix.Major(st.Rdev), unix.Minor(st.Rdev)

	if want := macvtapMajor(w.t); gotMajor != want {
		w.t.Errorf("%s has major %d, /proc/devices gives macvtap %d", ifc.DevicePath, gotMajor, want)
	}
	index := w.linkDetails(ifc.HostDevice).Index
	sysfs := w.readNSFile(fmt.Sprintf("/sys/class/net/%s/macvtap/tap%d/dev", ifc.HostDevice, index))
	if got := fmt.Sprintf("%d:%d", gotMajor, gotMinor); got != sysfs {
		w.t.Errorf("%s is device %s, but sysfs gives %s for macvtap %s (index %d)", ifc.DevicePath, got, sysfs, ifc.HostDevice, index)
	}
}

// macvtapMajor returns the major number of "macvtap" in /proc/devices.
func macvtapMajor(t *testing.T) uint32 {
	t.Helper()
	data, err := os.ReadFile("/proc/devices")
	if err != nil {
		t.Fatalf("read /proc/devices: %v", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 2 && fields[1] == "macvtap" {
			major, err := strconv.ParseUint(fields[0], 10, 32)
			if err != nil {
				t.Fatalf("parse /proc/devices line %q: %v", line, err)
			}
			return uint32(major)
		}
	}
	t.Fatal("no macvtap entry in /proc/devices")
	return 0
}

// checkOpensMacvtap opens the result's devicePath as a hypervisor would and
// queries the kernel which link the descriptor belongs to: it must be the
// VM's own macvtap, not a macvtap of another namespace with that minor.
func (w *world) checkOpensMacvtap(ifc kvmnet.Interface) {
	w.t.Helper()
	fd, err := unix.Open(ifc.DevicePath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		w.t.Errorf("open %s for macvtap %s: %v", ifc.DevicePath, ifc.HostDevice, err)
		return
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("")
	if err != nil {
		w.t.Fatalf("new ifreq: %v", err)
	}
	if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
		w.t.Errorf("TUNGETIFF on %s: %v", ifc.DevicePath, err)
		return
	}
	if got := ifr.Name(); got != ifc.HostDevice {
		w.t.Errorf("%s opens link %s, want %s", ifc.DevicePath, got, ifc.HostDevice)
	}
}

func TestMacvtapPassthruOnePerMaster(t *testing.T) {
	w := newWorld(t, "mvpass")
	w.addVeth("vmaster", 1500)
	w.writeNet("mv", macvlanWith(`"mode":"passthru",`))
	w.takeBaseline()

	first := w.up("vm-a", "--net", "mv")
	afterFirst := w.ns.Snapshot(t)

	out := w.upFails("vm-b", "--net", "mv")
	checkContains(t, "error of the second passthru macvtap", out.Stderr, "vm-b", "vmaster")
	if diff := diffSnapshots(afterFirst, w.ns.Snapshot(t)); diff != "" {
		t.Errorf("failed up of vm-b changed the namespace (-before +after):\n%s", diff)
	}
	if _, ok := w.ns.Snapshot(t).Link(first.Interfaces[0].HostDevice); !ok {
		t.Errorf("macvtap %s of vm-a is gone after the failed up of vm-b", first.Interfaces[0].HostDevice)
	}
	w.down("vm-b")

	w.down("vm-a")
	w.checkClean()
}

func TestMacvtapMTU(t *testing.T) {
	tests := []struct {
		name      string
		masterMTU int
		fields    string
		want      int
	}{
		{name: "master's mtu by default", masterMTU: 1400, fields: "", want: 1400},
		{name: "mtu from config", masterMTU: 1400, fields: `"mtu":1300,`, want: 1300},
		{name: "mtu equal to master's", masterMTU: 9000, fields: `"mtu":9000,`, want: 9000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, "mvmtu")
			w.addVeth("vmaster", tt.masterMTU)
			w.writeNet("mv", macvlanWith(tt.fields))
			w.takeBaseline()

			res := w.up("vm-mtu", "--net", "mv")
			ifc := res.Interfaces[0]
			if got := w.linkDetails(ifc.HostDevice).MTU; got != tt.want {
				t.Errorf("macvtap mtu %d, want %d", got, tt.want)
			}
			if ifc.MTU != tt.want {
				t.Errorf("result mtu %d, want %d", ifc.MTU, tt.want)
			}

			w.down("vm-mtu")
			w.checkClean()
		})
	}
}

func TestMacvtapMTUAboveMaster(t *testing.T) {
	w := newWorld(t, "mvbig")
	w.addVeth("vmaster", 1500)
	w.writeNet("mv", macvlanWith(`"mtu":9000,`))
	w.writeNet("p", mixedNetworks["p"])
	w.takeBaseline()

	// The MTU is known before any kernel call, so up must fail before it
	// creates a link, also for the tap of a network listed before it.
	for _, nets := range []string{"mv", "p,mv"} {
		t.Run(nets, func(t *testing.T) {
			w := w.in(t)
			monitor := w.startLinkMonitor()
			out := w.upFails("vm-big", "--net", nets)
			if created := monitor.stop(); len(created) != 0 {
				t.Errorf("failed up changed links before the MTU check:\n%s", strings.Join(created, "\n"))
			}
			checkContains(t, "error of mtu above the master's", out.Stderr, "9000", "1500", "vmaster")
			w.checkClean()
			w.down("vm-big")
		})
	}
}

// linkMonitor records the link events of a namespace while it runs.
type linkMonitor struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}
	// lines are the events after the marker link, the marker's own aside.
	lines []string
}

// monitorMarker is the name of the veth link that startLinkMonitor adds and
// removes until `ip monitor` reports it, which proves the monitor listens.
const monitorMarker = "kvmtmark"

// startLinkMonitor starts `ip monitor link` in the namespace of w and
// returns once the monitor has reported the marker link.
func (w *world) startLinkMonitor() *linkMonitor {
	w.t.Helper()
	m := &linkMonitor{t: w.t, done: make(chan struct{})}
	m.cmd = exec.Command("ip", "-n", w.ns.Name, "-oneline", "monitor", "link")
	pipe, err := m.cmd.StdoutPipe()
	if err != nil {
		w.t.Fatalf("ip monitor: %v", err)
	}
	if err := m.cmd.Start(); err != nil {
		w.t.Fatalf("start ip monitor: %v", err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(m.done)
		var once sync.Once
		scanner := bufio.NewScanner(pipe)
		for scanner.Scan() {
			line := scanner.Text()
			if strings.Contains(line, monitorMarker) {
				once.Do(func() { close(ready) })
				continue
			}
			select {
			case <-ready:
				m.lines = append(m.lines, line)
			default:
			}
		}
	}()

	deadline := time.After(5 * time.Second)
	for {
		w.ns.Run(w.t, "ip", "link", "add", monitorMarker, "type", "veth", "peer", "name", monitorMarker+"p")
		w.ns.Run(w.t, "ip", "link", "del", monitorMarker)
		select {
		case <-ready:
			return m
		case <-deadline:
			m.stop()
			w.t.Fatal("ip monitor did not report the marker link within 5s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the monitor and returns the events it recorded.
func (m *linkMonitor) stop() []string {
	m.t.Helper()
	if err := m.cmd.Process.Kill(); err != nil {
		m.t.Errorf("stop ip monitor (pid %d): %v", m.cmd.Process.Pid, err)
	}
	<-m.done
	_ = m.cmd.Wait() // killed, so the exit status carries no information
	return m.lines
}

func TestMacvtapFormats(t *testing.T) {
	w := newWorld(t, "mvfmt")
	w.addVeth("vmaster", 1500)
	w.writeNet("mv", macvlanWith(""))
	w.takeBaseline()

	one := w.up("vm-one", "--net", "mv").Interfaces[0]
	qemu := w.show("vm-one", "qemu")
	checkContains(t, "qemu arguments", qemu, "-netdev tap,id=net0,fd=3", "mac="+one.MAC)
	if strings.Contains(qemu, "ifname=") {
		t.Errorf("qemu arguments of a macvtap name the link instead of passing a descriptor:\n%s", qemu)
	}
	checkContains(t, "cloud-hypervisor arguments", w.show("vm-one", "cloud-hypervisor"), "fd=[3]", "mac="+one.MAC)
	checkContains(t, "lkvm arguments", w.show("vm-one", "lkvm"), "tapif="+one.DevicePath, "guest_mac="+one.MAC)
	out := w.kvmnet("show", "vm-one", "--format", "firecracker")
	if out.Code != 1 || !strings.Contains(out.Stderr, "firecracker") {
		t.Errorf("firecracker format of a macvtap: want exit status 1 naming firecracker, got:\n%s", out)
	}
	w.checkOpensMacvtap(one)

	two := w.up("vm-two", "--net", "mv", "--queues", "2").Interfaces[0]
	checkContains(t, "qemu arguments with two queues", w.show("vm-two", "qemu"), "fds=3:4", "mq=on")
	for range 2 {
		w.checkOpensMacvtap(two)
	}

	w.down("vm-one")
	w.down("vm-two")
	w.checkClean()
}

func TestMacvtapOwner(t *testing.T) {
	w := newWorld(t, "mvown")
	// Every user must reach the device nodes, so their dir lives in a dir
	// of mode 0755 rather than in the test's private temp dir.
	parent, err := os.MkdirTemp("", "kvmnet-devdir-")
	if err != nil {
		t.Fatalf("create dev dir parent: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatalf("chmod dev dir parent: %v", err)
	}
	w.devDir = filepath.Join(parent, "dev")
	w.addVeth("vmaster", 1500)
	w.writeNet("mv", macvlanWith(""))
	w.takeBaseline()
	opener := newTapOpener(t)

	ifc := w.up("vm-own", "--net", "mv", "--tap-owner", "1000", "--tap-group", "1000").Interfaces[0]
	var st unix.Stat_t
	if err := unix.Stat(ifc.DevicePath, &st); err != nil {
		t.Fatalf("stat device node: %v", err)
	}
	if st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("%s is owned by %d:%d, want 1000:1000", ifc.DevicePath, st.Uid, st.Gid)
	}
	if out, err := opener.openMacvtap(w, ifc.DevicePath, ifc.HostDevice, 1000, 1000); err != nil {
		t.Errorf("uid 1000 cannot open macvtap %s: %v\n%s", ifc.DevicePath, err, out)
	}
	if out, err := opener.openMacvtap(w, ifc.DevicePath, ifc.HostDevice, 1001, 1001); err == nil {
		t.Errorf("uid 1001 opened macvtap %s owned by 1000:1000:\n%s", ifc.DevicePath, out)
	}

	w.down("vm-own")
	w.checkClean()
}

func TestMacvtapDeletedBeforeDown(t *testing.T) {
	w := newWorld(t, "mvgone")
	w.addVeth("vmaster", 1500)
	w.writeNet("mv", macvlanWith(""))
	w.takeBaseline()

	ifc := w.up("vm-gone", "--net", "mv").Interfaces[0]
	w.ns.Run(t, "ip", "link", "del", ifc.HostDevice)

	w.down("vm-gone")
	w.checkClean()
}

// TestMacvtapSharedDevDirRejected checks that a dev dir other users can
// write to is rejected, because they could swap the node for a link while
// kvmnet sets its owner, and that nothing is left behind.
func TestMacvtapSharedDevDirRejected(t *testing.T) {
	w := newWorld(t, "mvdir")
	w.addVeth("vmaster", 1500)
	w.writeNet("mv", macvlanWith(""))
	if err := os.MkdirAll(w.devDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(w.devDir, 0o1777); err != nil {
		t.Fatal(err)
	}
	w.takeBaseline()
	out := w.upFails("vm-dir", "--net", "mv")
	checkContains(t, "error of a shared dev dir", out.Stderr, w.devDir, "writable by other users")
	w.checkClean()
}
