//go:build linux

package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Handle is a netlink handle in the calling thread's network namespace.
type Handle struct {
	nl *netlink.Handle
}

// New opens a netlink handle in the calling thread's network namespace.
func New() (*Handle, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	return &Handle{nl: h}, nil
}

// Close releases the handle.
func (h *Handle) Close() { h.nl.Close() }

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// Get returns the link called name, or nil when there is none.
func (h *Handle) Get(name string) (netlink.Link, error) {
	l, err := h.nl.LinkByName(name)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up link %s: %w", name, err)
	}
	return l, nil
}

type ifreq struct {
	name  [unix.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

// CreateTap creates a persistent tap. It fails with ErrForeign when a link
// of that name exists already.
func (h *Handle) CreateTap(t Tap) error {
	if existing, err := h.Get(t.Name); err != nil {
		return err
	} else if existing != nil {
		return fmt.Errorf("create tap %s: %w (alias %q)", t.Name, ErrForeign, existing.Attrs().Alias)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("create tap %s: open /dev/net/tun: %w", t.Name, err)
	}
	defer unix.Close(fd)
	var req ifreq
	copy(req.name[:unix.IFNAMSIZ-1], t.Name)
	req.flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_TUN_EXCL
	if t.VnetHdr {
		req.flags |= unix.IFF_VNET_HDR
	}
	if t.Queues > 1 {
		req.flags |= unix.IFF_MULTI_QUEUE
	}
	if err := ioctl(fd, unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); err != nil {
		return fmt.Errorf("create tap %s: %w", t.Name, err)
	}
	if t.Owner >= 0 {
		if err := ioctl(fd, unix.TUNSETOWNER, uintptr(t.Owner)); err != nil {
			return fmt.Errorf("set owner %d of tap %s: %w", t.Owner, t.Name, err)
		}
	}
	if t.Group >= 0 {
		if err := ioctl(fd, unix.TUNSETGROUP, uintptr(t.Group)); err != nil {
			return fmt.Errorf("set group %d of tap %s: %w", t.Group, t.Name, err)
		}
	}
	// The owner alias goes on while the tap still dies with this fd, so a
	// process killed at any point never leaves a tap without its mark.
	if err := h.configure(t.Name, t.Alias, t.MTU, nil); err != nil {
		return err
	}
	if err := ioctl(fd, unix.TUNSETPERSIST, 1); err != nil {
		return fmt.Errorf("make tap %s persistent: %w", t.Name, err)
	}
	// From here on the tap outlives this process; the caller's undo removes it.
	return nil
}

func ioctl(fd int, request, arg uintptr) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), request, arg)
	if errno != 0 {
		return errno
	}
	return nil
}

// configure sets alias, MTU and MAC of a new link, in that order, before it
// goes up.
func (h *Handle) configure(name, alias string, mtu int, mac net.HardwareAddr) error {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up new link %s: %w", name, err)
	}
	if alias != "" {
		if err := h.nl.LinkSetAlias(l, alias); err != nil {
			return fmt.Errorf("set alias of %s: %w", name, err)
		}
	}
	if mtu > 0 && l.Attrs().MTU != mtu {
		if err := h.nl.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("set mtu %d on %s: %w", mtu, name, err)
		}
	}
	if mac != nil {
		if err := h.nl.LinkSetHardwareAddr(l, mac); err != nil {
			return fmt.Errorf("set mac %s on %s: %w", mac, name, err)
		}
	}
	return nil
}

// SetUp brings a link up.
func (h *Handle) SetUp(name string) error {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up link %s: %w", name, err)
	}
	if err := h.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("set link %s up: %w", name, err)
	}
	return nil
}

// MTU returns the MTU of a link.
func (h *Handle) MTU(name string) (int, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("look up link %s: %w", name, err)
	}
	return l.Attrs().MTU, nil
}

// CreateMacvtap creates a macvtap on its master link.
func (h *Handle) CreateMacvtap(m Macvtap) error {
	if existing, err := h.Get(m.Name); err != nil {
		return err
	} else if existing != nil {
		return fmt.Errorf("create macvtap %s: %w (alias %q)", m.Name, ErrForeign, existing.Attrs().Alias)
	}
	master, err := h.nl.LinkByName(m.Master)
	if err != nil {
		return fmt.Errorf("create macvtap %s: master link %s: %w", m.Name, m.Master, err)
	}
	mode := map[string]netlink.MacvlanMode{
		"": netlink.MACVLAN_MODE_BRIDGE, "bridge": netlink.MACVLAN_MODE_BRIDGE,
		"private": netlink.MACVLAN_MODE_PRIVATE, "vepa": netlink.MACVLAN_MODE_VEPA,
		"passthru": netlink.MACVLAN_MODE_PASSTHRU,
	}[m.Mode]
	attrs := netlink.NewLinkAttrs()
	attrs.Name = m.Name
	attrs.ParentIndex = master.Attrs().Index
	attrs.MTU = m.MTU
	if m.Mode != "passthru" {
		attrs.HardwareAddr = m.MAC
	}
	if m.Queues > 1 {
		attrs.NumTxQueues = m.Queues
		attrs.NumRxQueues = m.Queues
	}
	mv := &netlink.Macvtap{Macvlan: netlink.Macvlan{LinkAttrs: attrs, Mode: mode}}
	if err := h.nl.LinkAdd(mv); err != nil {
		return fmt.Errorf("create macvtap %s on %s: %w", m.Name, m.Master, err)
	}
	return h.configure(m.Name, m.Alias, 0, nil)
}

// HardwareAddr returns the MAC of a link.
func (h *Handle) HardwareAddr(name string) (net.HardwareAddr, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("look up link %s: %w", name, err)
	}
	return l.Attrs().HardwareAddr, nil
}

// MacvtapDevice creates a character device node at path for the macvtap
// name, with the device number dev from MacvtapRdev. A node in kvmnet's own
// directory cannot clash with the /dev/tapN of a macvtap in another
// namespace with the same index.
func (h *Handle) MacvtapDevice(name, path string, dev uint64, uid, gid int) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create device dir for %s: %w", name, err)
	}
	// Other users must not be able to swap the node for a link while kvmnet
	// sets its owner and mode.
	if info, err := os.Stat(dir); err != nil {
		return fmt.Errorf("check device dir %s: %w", dir, err)
	} else if info.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("device dir %s is writable by other users (mode %s); use a directory only root can write, such as /run/kvmnet/dev", dir, info.Mode())
	}
	var existing unix.Stat_t
	if err := unix.Lstat(path, &existing); err == nil {
		// The name depends on the VM id only, so a node of another
		// namespace's macvtap can sit here; it is never replaced.
		if existing.Mode&unix.S_IFMT != unix.S_IFCHR || existing.Rdev != dev {
			return fmt.Errorf("create device node %s for macvtap %s: the path is taken by another device or file; use another --dev-dir per network namespace", path, name)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("replace device node %s: %w", path, err)
		}
	}
	// A group alone needs group access to the node; an owner needs none.
	mode := uint32(0o600)
	if gid >= 0 {
		mode = 0o660
	}
	if err := unix.Mknod(path, unix.S_IFCHR|mode, int(dev)); err != nil {
		return fmt.Errorf("create device node %s for macvtap %s: %w", path, name, err)
	}
	if err := os.Chmod(path, os.FileMode(mode)); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("set owner of %s: %w", path, err)
		}
	}
	return nil
}

// MacvtapRdev returns the character device number of the macvtap name.
func (h *Handle) MacvtapRdev(name string) (uint64, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("look up macvtap %s: %w", name, err)
	}
	// The minor number comes from the macvtap driver's own allocator, not
	// the ifindex. sysfs has both numbers when it is mounted for this
	// namespace, as ip netns exec does.
	sysPath := fmt.Sprintf("/sys/class/net/%s/macvtap/tap%d/dev", name, l.Attrs().Index)
	data, err := os.ReadFile(sysPath)
	if err != nil {
		return 0, fmt.Errorf("read device number of macvtap %s: %w (sysfs must be mounted for this network namespace)", name, err)
	}
	majorText, minorText, ok := strings.Cut(strings.TrimSpace(string(data)), ":")
	major, errMajor := strconv.ParseUint(majorText, 10, 32)
	minor, errMinor := strconv.ParseUint(minorText, 10, 32)
	if !ok || errMajor != nil || errMinor != nil {
		return 0, fmt.Errorf("read device number of macvtap %s: unexpected %q in %s", name, data, sysPath)
	}
	return unix.Mkdev(uint32(major), uint32(minor)), nil
}

// EnsureBridge creates the bridge name with the given MTU unless it exists.
// It reports whether it created it. A non-bridge link of that name is an error.
func (h *Handle) EnsureBridge(name string, mtu int) (bool, error) {
	l, err := h.Get(name)
	if err != nil {
		return false, err
	}
	if l != nil {
		if l.Type() != "bridge" {
			return false, fmt.Errorf("bridge %s: a link of that name exists with type %s; rename it or set \"bridge\" in the network config", name, l.Type())
		}
		return false, h.SetUp(name)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = mtu
	if err := h.nl.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		return false, fmt.Errorf("create bridge %s: %w", name, err)
	}
	if err := h.configure(name, BridgeAlias, mtu, nil); err != nil {
		return true, err
	}
	return true, h.SetUp(name)
}

// SetMaster enslaves link name to bridge.
func (h *Handle) SetMaster(name, bridge string) error {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up link %s: %w", name, err)
	}
	br, err := h.nl.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("look up bridge %s: %w", bridge, err)
	}
	if br.Type() != "bridge" {
		return fmt.Errorf("enslave %s to %s: %s is a %s link, not a bridge", name, bridge, bridge, br.Type())
	}
	if err := h.nl.LinkSetMaster(l, br); err != nil {
		return fmt.Errorf("enslave %s to bridge %s: %w", name, bridge, err)
	}
	return nil
}

// AddAddr puts an address on a device. An identical address there is fine.
// On a shared device (a bridge), another address of the same subnet is an
// error naming both.
func (h *Handle) AddAddr(dev string, a Addr, shared bool) error {
	l, err := h.nl.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("look up link %s: %w", dev, err)
	}
	family := unix.AF_INET6
	if a.Prefix.Addr().Is4() {
		family = unix.AF_INET
	}
	existing, err := h.addrList(l, family)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", dev, err)
	}
	for _, e := range existing {
		p, ok := toPrefix(e.IPNet)
		if !ok {
			continue
		}
		if p == a.Prefix {
			return nil
		}
		if shared && p.Overlaps(a.Prefix) && !p.Addr().IsLinkLocalUnicast() {
			return fmt.Errorf("%s already has address %s, which differs from the gateway %s of this network; "+
				"use one gateway per bridge or another bridge name", dev, p, a.Prefix)
		}
	}
	addr := &netlink.Addr{IPNet: toIPNet(a.Prefix)}
	if a.NoPrefixRoute {
		addr.Flags |= unix.IFA_F_NOPREFIXROUTE
	}
	if !a.Prefix.Addr().Is4() {
		addr.Flags |= unix.IFA_F_NODAD
	}
	if err := h.nl.AddrAdd(l, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s: %w", a.Prefix, dev, err)
	}
	return nil
}

// AddRoute adds an on-link route to dst through dev.
func (h *Handle) AddRoute(dev string, dst netip.Prefix) error {
	l, err := h.nl.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("look up link %s: %w", dev, err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: toIPNet(dst), Scope: netlink.SCOPE_LINK}
	if err := h.nl.RouteAdd(r); errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add route %s dev %s: a route to %s exists already; another device uses this address", dst, dev, dst)
	} else if err != nil {
		return fmt.Errorf("add route %s dev %s: %w", dst, dev, err)
	}
	return nil
}

// DeleteOwned removes link name if its alias is alias. A missing link is
// fine; a link owned by someone else is left alone and reported.
func (h *Handle) DeleteOwned(name, alias string) error {
	l, err := h.Get(name)
	if err != nil || l == nil {
		return err
	}
	if l.Attrs().Alias != alias {
		return fmt.Errorf("remove link %s: %w (alias %q, expected %q); left in place", name, ErrForeign, l.Attrs().Alias, alias)
	}
	if err := h.nl.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("remove link %s: %w", name, err)
	}
	return nil
}

// DeleteBridgeIfUnused removes a bridge that kvmnet created once no link is
// enslaved to it. It reports whether it removed it.
func (h *Handle) DeleteBridgeIfUnused(name string) (bool, error) {
	br, err := h.Get(name)
	if err != nil || br == nil {
		return false, err
	}
	if br.Type() != "bridge" || br.Attrs().Alias != BridgeAlias {
		return false, nil
	}
	if used, err := h.HasSlaves(name); err != nil || used {
		return false, err
	}
	if err := h.nl.LinkDel(br); err != nil && !isNotFound(err) {
		return false, fmt.Errorf("remove bridge %s: %w", name, err)
	}
	return true, nil
}

// Owned lists the links whose alias starts with AliasPrefix, by name.
func (h *Handle) Owned() (map[string]string, error) {
	links, err := h.linkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := map[string]string{}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, AliasPrefix) {
			out[l.Attrs().Name] = l.Attrs().Alias
		}
	}
	return out, nil
}

// WriteSysctl writes value to a file under /proc/sys unless it has it already.
func WriteSysctl(path, value string) error {
	current, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(current)) == value {
		return nil
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", path, value, err)
	}
	return nil
}

func toIPNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if !p.Addr().Is4() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

func toPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// HasAddr reports whether dev has the address p.
func (h *Handle) HasAddr(dev string, p netip.Prefix) (bool, error) {
	l, err := h.nl.LinkByName(dev)
	if err != nil {
		return false, fmt.Errorf("look up link %s: %w", dev, err)
	}
	addrs, err := h.addrList(l, unix.AF_UNSPEC)
	if err != nil {
		return false, fmt.Errorf("list addresses of %s: %w", dev, err)
	}
	for _, a := range addrs {
		if got, ok := toPrefix(a.IPNet); ok && got == p {
			return true, nil
		}
	}
	return false, nil
}

// DelAddr removes address p from dev. A missing device or address is fine.
func (h *Handle) DelAddr(dev string, p netip.Prefix) error {
	l, err := h.Get(dev)
	if err != nil || l == nil {
		return err
	}
	err = h.nl.AddrDel(l, &netlink.Addr{IPNet: toIPNet(p)})
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove address %s from %s: %w", p, dev, err)
	}
	return nil
}

// HasSlaves reports whether any link is enslaved to the bridge name.
func (h *Handle) HasSlaves(name string) (bool, error) {
	slaves, err := h.Slaves(name)
	return len(slaves) > 0, err
}

// Slaves returns the names of the links enslaved to the bridge name, none
// when it does not exist.
func (h *Handle) Slaves(name string) ([]string, error) {
	br, err := h.Get(name)
	if err != nil || br == nil {
		return nil, err
	}
	links, err := h.linkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var names []string
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			names = append(names, l.Attrs().Name)
		}
	}
	return names, nil
}

// dumpRetries bounds the retries of a netlink dump that the kernel
// interrupted because the links or addresses changed meanwhile.
const dumpRetries = 10

func (h *Handle) linkList() ([]netlink.Link, error) {
	for i := 0; ; i++ {
		links, err := h.nl.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == dumpRetries {
			return links, err
		}
	}
}

func (h *Handle) addrList(l netlink.Link, family int) ([]netlink.Addr, error) {
	for i := 0; ; i++ {
		addrs, err := h.nl.AddrList(l, family)
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == dumpRetries {
			return addrs, err
		}
	}
}

// SetAlias sets the alias of link name.
func (h *Handle) SetAlias(name, alias string) error {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up link %s: %w", name, err)
	}
	if err := h.nl.LinkSetAlias(l, alias); err != nil {
		return fmt.Errorf("set alias of %s: %w", name, err)
	}
	return nil
}
