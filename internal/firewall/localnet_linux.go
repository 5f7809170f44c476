package firewall

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/google/nftables"
	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Forwards reached from the host's loopback address need one change on the
// device toward the guest: the tap, or the bridge it is enslaved to. Once
// conntrack undoes the NAT, the guest's replies come back through that
// device with the loopback address as destination. The kernel drops them
// unless the device has:
//
//   - IPv4: the sysctl net.ipv4.conf.<dev>.route_localnet=1. Without it,
//     routing drops 127.0.0.0/8 on a non-loopback device.
//   - IPv6: the route `local ::1 dev <dev> table local`. The route lookup
//     for a loopback destination only takes routes of the input device, so
//     without it the reply counts as Ip6InNoRoutes and is dropped.
//     Packets from the wire to ::1 never get that far, because ipv6_rcv
//     drops them before any hook. The route lets in only NATed replies.
//
// Per family, localnetN_users holds one element per guest address that
// relies on a device, and localnetN_changed the devices where kvmnet made
// the change. The last Remove of a device's users undoes the change.

// localnetKey is one device and family.
type localnetKey struct {
	device string
	ipv6   bool
}

func localnetSets(ipv6 bool) (users, changed string) {
	if ipv6 {
		return setLocalnet6Users, setLocalnet6Change
	}
	return setLocalnet4Users, setLocalnet4Change
}

// queueLocalnet records the loopback changes of the plan in the receipt,
// queues a localnetN_changed element for each device that kvmnet changes,
// and returns those devices. Add changes them after the batch.
func (f *Firewall) queueLocalnet(p *plan, st *state, receipt *Receipt) ([]localnetKey, error) {
	var toEnable []localnetKey
	done := map[localnetKey]bool{}
	for _, use := range p.localnet {
		k := localnetKey{device: use.device, ipv6: use.guest.Is6()}
		if done[k] {
			continue
		}
		done[k] = true
		enabled := st.markers[k]
		if !enabled {
			var err error
			if enabled, err = f.localnetEnabled(k); err != nil {
				return nil, err
			}
			if !enabled {
				_, changed := localnetSets(k.ipv6)
				elem := nftables.SetElement{Key: ifname(k.device)}
				if err := f.conn.SetAddElements(f.layout.sets[changed], []nftables.SetElement{elem}); err != nil {
					return nil, fmt.Errorf("queue element of set %s: %w", changed, err)
				}
				toEnable = append(toEnable, k)
			}
		}
		if k.ipv6 {
			receipt.Routes = append(receipt.Routes, RouteChange{Device: k.device, Route: loopbackRouteText(k.device), Existed: enabled})
		} else {
			name, _ := localnetSysctl(k.device)
			previous := "0"
			if enabled {
				previous = "1"
			}
			receipt.Sysctls = append(receipt.Sysctls, SysctlChange{Name: name, Device: k.device, Previous: previous, Value: "1"})
		}
	}
	return toEnable, nil
}

// localnetKeys returns the devices whose loopback change the VM relies on,
// from the plan and from the receipt.
func localnetKeys(p *plan, r Receipt) []localnetKey {
	var keys []localnetKey
	for _, use := range p.localnet {
		keys = append(keys, localnetKey{device: use.device, ipv6: use.guest.Is6()})
	}
	for _, s := range r.Sysctls {
		if strings.HasSuffix(s.Name, ".route_localnet") {
			keys = append(keys, localnetKey{device: s.Device})
		}
	}
	for _, route := range r.Routes {
		keys = append(keys, localnetKey{device: route.Device, ipv6: true})
	}
	return keys
}

func needsThread(keys []localnetKey) bool {
	return slices.ContainsFunc(keys, func(k localnetKey) bool { return !k.ipv6 })
}

// queueLocalnetRelease queues the deletion of the localnetN_changed element
// of each device in keys that no localnetN_users element outside deleting
// refers to, and returns those devices. It reads the whole users sets, so
// its cost grows with the number of VMs that have forwards.
func (f *Firewall) queueLocalnetRelease(keys []localnetKey, deleting map[string]bool) ([]localnetKey, error) {
	var release []localnetKey
	for _, ipv6 := range []bool{false, true} {
		var devices []string
		for _, k := range keys {
			if k.ipv6 == ipv6 {
				devices = append(devices, k.device)
			}
		}
		if len(devices) == 0 {
			continue
		}
		users, changed := localnetSets(ipv6)
		inUse, err := f.elementKeys(users, func(key []byte) bool { return !deleting[users+string(key)] })
		if err != nil {
			return nil, err
		}
		marked, err := f.elementKeys(changed, nil)
		if err != nil {
			return nil, err
		}
		slices.Sort(devices)
		for _, device := range slices.Compact(devices) {
			name := string(ifname(device))
			if inUse[name] || !marked[name] {
				continue
			}
			elem := nftables.SetElement{Key: []byte(name)}
			if err := f.conn.SetDeleteElements(f.layout.sets[changed], []nftables.SetElement{elem}); err != nil {
				return nil, fmt.Errorf("queue deletion from set %s: %w", changed, err)
			}
			release = append(release, localnetKey{device: device, ipv6: ipv6})
		}
	}
	return release, nil
}

// elementKeys returns the ifname prefixes (first 16 bytes) of the keys of a
// set's elements that keep accepts, or of all when keep is nil.
func (f *Firewall) elementKeys(set string, keep func([]byte) bool) (map[string]bool, error) {
	elems, err := f.conn.GetSetElements(f.layout.sets[set])
	if err != nil {
		return nil, fmt.Errorf("list elements of set %s: %w", set, err)
	}
	out := map[string]bool{}
	for _, e := range elems {
		if len(e.Key) >= 16 && (keep == nil || keep(e.Key)) {
			out[string(e.Key[:16])] = true
		}
	}
	return out, nil
}

// localnetEnabled reports whether the device already has the change.
func (f *Firewall) localnetEnabled(k localnetKey) (bool, error) {
	if !k.ipv6 {
		value, err := readLocalnet(k.device)
		return value != "0", err
	}
	route, err := f.loopbackRoute(k.device)
	if err != nil {
		return false, err
	}
	routes, err := f.routes.RouteListFiltered(unix.AF_INET6, route, vnl.RT_FILTER_TABLE|vnl.RT_FILTER_OIF|vnl.RT_FILTER_DST|vnl.RT_FILTER_TYPE)
	if err != nil {
		return false, fmt.Errorf("list routes of device %s: %w", k.device, err)
	}
	return len(routes) > 0, nil
}

func (f *Firewall) enableLocalnet(k localnetKey) error {
	if !k.ipv6 {
		return writeLocalnet(k.device, "1")
	}
	route, err := f.loopbackRoute(k.device)
	if err != nil {
		return err
	}
	if err := f.routes.RouteAdd(route); err != nil {
		return fmt.Errorf("add route %s: %w", loopbackRouteText(k.device), err)
	}
	return nil
}

// disableLocalnet undoes enableLocalnet. A device that is gone has nothing
// to undo.
func (f *Firewall) disableLocalnet(k localnetKey) error {
	if !k.ipv6 {
		if err := writeLocalnet(k.device, "0"); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
		return nil
	}
	route, err := f.loopbackRoute(k.device)
	var notFound vnl.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := f.routes.RouteDel(route); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete route %s: %w", loopbackRouteText(k.device), err)
	}
	return nil
}

func (f *Firewall) disableAll(keys []localnetKey) error {
	var errs []error
	for _, k := range keys {
		errs = append(errs, f.disableLocalnet(k))
	}
	return errors.Join(errs...)
}

// loopbackRoute returns the route `local ::1 dev <device> table local`.
func (f *Firewall) loopbackRoute(device string) (*vnl.Route, error) {
	link, err := f.routes.LinkByName(device)
	if err != nil {
		return nil, fmt.Errorf("look up device %s: %w", device, err)
	}
	return &vnl.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
		Table:     unix.RT_TABLE_LOCAL,
		Type:      unix.RTN_LOCAL,
		Scope:     unix.RT_SCOPE_HOST,
		Family:    unix.AF_INET6,
		// Behind the kernel's own ::1 route on lo (metric 0), so that
		// locally generated traffic keeps using that one.
		Priority: 1024,
	}, nil
}

func loopbackRouteText(device string) string {
	return "local ::1 dev " + device + " table local"
}
