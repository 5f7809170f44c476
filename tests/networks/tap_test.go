//go:build linux

package networks_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kvmnet/kvmnet/internal/testenv"
)

// openTapHelperEnv, when set, makes the test binary open a device as a
// hypervisor does and exit instead of running tests. Its arguments are
// "tap TUN-NODE TAP-NAME" to attach to a tap through a tun device node, or
// "macvtap DEVICE-NODE LINK-NAME" to open a macvtap's device node and check
// that it belongs to that link.
const openTapHelperEnv = "KVMNET_TEST_OPEN_TAP"

// runOpenTapHelper opens the device named in args and returns the exit
// status: 0 when it opened, 1 when it did not, 2 for invalid arguments.
func runOpenTapHelper(args []string) int {
	if len(args) != 3 || (args[0] != "tap" && args[0] != "macvtap") {
		fmt.Fprintln(os.Stderr, "usage: tap TUN-NODE TAP-NAME | macvtap DEVICE-NODE LINK-NAME")
		return 2
	}
	kind, node, name := args[0], args[1], args[2]
	fd, err := unix.Open(node, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "open %s as uid %d: %v\n", node, os.Geteuid(), err)
		return 1
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "link name %s: %v\n", name, err)
		return 2
	}
	if kind == "tap" {
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			fmt.Fprintf(os.Stderr, "attach to tap %s as uid %d: %v\n", name, os.Geteuid(), err)
			return 1
		}
	} else {
		if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
			fmt.Fprintf(os.Stderr, "TUNGETIFF on %s: %v\n", node, err)
			return 1
		}
		if ifr.Name() != name {
			fmt.Fprintf(os.Stderr, "%s belongs to link %s, not %s\n", node, ifr.Name(), name)
			return 1
		}
	}
	fmt.Println("opened")
	return 0
}

// tapOpener runs the open-tap helper as another user inside a namespace.
type tapOpener struct {
	// dir holds a copy of the test binary and a tun device node, both
	// reachable by every user.
	dir string
}

// newTapOpener copies the test binary and creates a tun device node (10:200)
// of mode 0666 in a directory every user can reach. The machine's own
// /dev/net/tun may be root-only, and an unprivileged hypervisor needs a node
// it may open.
func newTapOpener(t *testing.T) *tapOpener {
	t.Helper()
	testenv.RequireRoot(t)
	dir, err := os.MkdirTemp("", "kvmnet-tapopen-")
	if err != nil {
		t.Fatalf("create helper dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("chmod helper dir: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("find test binary: %v", err)
	}
	copyFile(t, self, filepath.Join(dir, "helper"), 0o755)
	tun := filepath.Join(dir, "tun")
	if err := unix.Mknod(tun, unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200))); err != nil {
		t.Fatalf("create tun device node: %v", err)
	}
	if err := os.Chmod(tun, 0o666); err != nil {
		t.Fatalf("chmod tun device node: %v", err)
	}
	return &tapOpener{dir: dir}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatalf("copy to %s: %v", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
	if err := out.Close(); err != nil {
		t.Fatalf("copy to %s: %v", dst, err)
	}
}

// openTap attaches to tap as uid:gid without supplementary groups, inside
// the namespace of w. It returns the helper's combined output and its error.
func (o *tapOpener) openTap(w *world, tap string, uid, gid int) (string, error) {
	return o.run(w, uid, gid, "tap", filepath.Join(o.dir, "tun"), tap)
}

// openMacvtap opens the device node of macvtap link as uid:gid without
// supplementary groups, inside the namespace of w, and checks that the node
// belongs to link.
func (o *tapOpener) openMacvtap(w *world, node, link string, uid, gid int) (string, error) {
	return o.run(w, uid, gid, "macvtap", node, link)
}

func (o *tapOpener) run(w *world, uid, gid int, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", w.ns.Name,
		"setpriv", "--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(gid), "--clear-groups",
		filepath.Join(o.dir, "helper")}, args...)...)
	cmd.Env = append(os.Environ(), openTapHelperEnv+"=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// tunFlags returns /sys/class/net/<tap>/tun_flags of the namespace.
func (w *world) tunFlags(tap string) uint64 {
	w.t.Helper()
	text := w.readNSFile("/sys/class/net/" + tap + "/tun_flags")
	flags, err := strconv.ParseUint(text, 0, 32)
	if err != nil {
		w.t.Fatalf("parse tun_flags %q of %s: %v", text, tap, err)
	}
	return flags
}

func TestTapOwner(t *testing.T) {
	// A user may attach when it matches every id that is set.
	type user struct{ uid, gid int }
	tests := []struct {
		name         string
		args         []string
		owner, group string
		allowed      []user
		denied       []user
	}{
		{
			name:  "owner and group",
			args:  []string{"--tap-owner", "1000", "--tap-group", "1000"},
			owner: "1000", group: "1000",
			allowed: []user{{1000, 1000}},
			denied:  []user{{1001, 1001}, {1000, 1001}, {1001, 1000}},
		},
		{
			name:  "owner only",
			args:  []string{"--tap-owner", "1000"},
			owner: "1000", group: "-1",
			allowed: []user{{1000, 1000}, {1000, 1001}},
			denied:  []user{{1001, 1000}},
		},
		{
			name:  "group only",
			args:  []string{"--tap-group", "1000"},
			owner: "-1", group: "1000",
			allowed: []user{{1000, 1000}, {1001, 1000}},
			denied:  []user{{1000, 1001}},
		},
	}
	opener := newTapOpener(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, "tapown")
			w.takeBaseline()

			tap := w.up("vm-own", tt.args...).Interfaces[0].HostDevice
			if got := w.readNSFile("/sys/class/net/" + tap + "/owner"); got != tt.owner {
				t.Errorf("owner of tap %s is %s, want %s", tap, got, tt.owner)
			}
			if got := w.readNSFile("/sys/class/net/" + tap + "/group"); got != tt.group {
				t.Errorf("group of tap %s is %s, want %s", tap, got, tt.group)
			}
			for _, u := range tt.allowed {
				if out, err := opener.openTap(w, tap, u.uid, u.gid); err != nil {
					t.Errorf("uid %d gid %d cannot attach to tap %s: %v\n%s", u.uid, u.gid, tap, err, out)
				}
			}
			for _, u := range tt.denied {
				out, err := opener.openTap(w, tap, u.uid, u.gid)
				if err == nil {
					t.Errorf("uid %d gid %d attached to tap %s:\n%s", u.uid, u.gid, tap, out)
				} else if !strings.Contains(out, "operation not permitted") {
					t.Errorf("uid %d gid %d on tap %s: want operation not permitted, got %v:\n%s", u.uid, u.gid, tap, err, out)
				}
			}

			w.down("vm-own")
			w.checkClean()
		})
	}
}

func TestTapWithoutOwnerRootOnly(t *testing.T) {
	w := newWorld(t, "tapnoown")
	w.takeBaseline()
	opener := newTapOpener(t)

	tap := w.up("vm-root").Interfaces[0].HostDevice
	// The kernel lets any user who can open a tun device node attach to a
	// persistent tap that has neither owner nor group, and with it read and
	// send the VM's traffic.
	if out, err := opener.openTap(w, tap, 1000, 1000); err == nil {
		t.Errorf("uid 1000 attached to tap %s, created without --tap-owner, which should leave it to root:\n%s", tap, out)
	}

	w.down("vm-root")
	w.checkClean()
}

func TestTapQueues(t *testing.T) {
	w := newWorld(t, "tapmq")
	w.takeBaseline()

	ifc := w.up("vm-mq", "--queues", "4").Interfaces[0]
	if flags := w.tunFlags(ifc.HostDevice); flags&unix.IFF_MULTI_QUEUE == 0 {
		t.Errorf("tun_flags of %s are %#x, want IFF_MULTI_QUEUE (%#x)", ifc.HostDevice, flags, unix.IFF_MULTI_QUEUE)
	}
	if ifc.Queues != 4 {
		t.Errorf("result queues %d, want 4", ifc.Queues)
	}
	checkContains(t, "qemu arguments", w.show("vm-mq", "qemu"), "ifname="+ifc.HostDevice, "queues=4", "mq=on")

	single := w.up("vm-sq").Interfaces[0]
	if flags := w.tunFlags(single.HostDevice); flags&unix.IFF_MULTI_QUEUE != 0 {
		t.Errorf("tun_flags of %s are %#x, want no IFF_MULTI_QUEUE without --queues", single.HostDevice, flags)
	}
	if qemu := w.show("vm-sq", "qemu"); strings.Contains(qemu, "queues=") {
		t.Errorf("qemu arguments of a single-queue tap set queues:\n%s", qemu)
	}

	w.down("vm-mq")
	w.down("vm-sq")
	w.checkClean()
}

func TestTapVnetHdr(t *testing.T) {
	w := newWorld(t, "tapvh")
	w.takeBaseline()

	on := w.up("vm-on").Interfaces[0]
	if flags := w.tunFlags(on.HostDevice); flags&unix.IFF_VNET_HDR == 0 {
		t.Errorf("tun_flags of %s are %#x, want IFF_VNET_HDR (%#x) by default", on.HostDevice, flags, unix.IFF_VNET_HDR)
	}
	if !on.VnetHdr {
		t.Error("result vnetHdr false by default, want true")
	}

	off := w.up("vm-off", "--no-vnet-hdr").Interfaces[0]
	if flags := w.tunFlags(off.HostDevice); flags&unix.IFF_VNET_HDR != 0 {
		t.Errorf("tun_flags of %s are %#x, want no IFF_VNET_HDR with --no-vnet-hdr", off.HostDevice, flags)
	}
	if off.VnetHdr {
		t.Error("result vnetHdr true with --no-vnet-hdr, want false")
	}

	w.down("vm-on")
	w.down("vm-off")
	w.checkClean()
}

// TestTapSettingsPerNetwork sets owner, queues and vnet_hdr in a network's
// "kvmnet" object: they apply to that network's tap only, over the
// request's defaults.
func TestTapSettingsPerNetwork(t *testing.T) {
	w := newWorld(t, "tapnet")
	w.writeNet("tuned", `{"cniVersion":"1.0.0","name":"tuned","type":"ptp",
		"kvmnet":{"tapOwner":1000,"queues":2,"vnetHdr":false},
		"ipam":{"type":"host-local","subnet":"10.123.0.0/24","dataDir":"IPAMDIR"}}`)
	w.writeNet("badq", `{"cniVersion":"1.0.0","name":"badq","type":"ptp","kvmnet":{"queues":300},
		"ipam":{"type":"host-local","subnet":"10.124.0.0/24","dataDir":"IPAMDIR"}}`)
	w.takeBaseline()

	res := w.up("vm-net", "--net", "default,tuned")
	plain, tuned := res.Interfaces[0], res.Interfaces[1]
	if got := w.readNSFile("/sys/class/net/" + tuned.HostDevice + "/owner"); got != "1000" {
		t.Errorf("owner of the tuned tap = %s, want 1000", got)
	}
	if got := w.readNSFile("/sys/class/net/" + plain.HostDevice + "/owner"); got != "0" {
		t.Errorf("owner of the default tap = %s, want 0 (root)", got)
	}
	if flags := w.tunFlags(tuned.HostDevice); flags&unix.IFF_MULTI_QUEUE == 0 || flags&unix.IFF_VNET_HDR != 0 {
		t.Errorf("tun_flags of the tuned tap are %#x, want multiqueue without vnet_hdr", flags)
	}
	if flags := w.tunFlags(plain.HostDevice); flags&unix.IFF_MULTI_QUEUE != 0 || flags&unix.IFF_VNET_HDR == 0 {
		t.Errorf("tun_flags of the default tap are %#x, want one queue with vnet_hdr", flags)
	}
	if tuned.Queues != 2 || tuned.VnetHdr {
		t.Errorf("result of the tuned tap: queues %d, vnetHdr %v; want 2 and false", tuned.Queues, tuned.VnetHdr)
	}
	w.down("vm-net")

	out := w.upFails("vm-bad", "--net", "badq")
	checkContains(t, "error of kvmnet.queues 300", out.Stderr, "kvmnet.queues", "300")
	w.checkClean()
}
