package kvmnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"

	"github.com/kvmnet/kvmnet/internal/cniresult"
	"github.com/kvmnet/kvmnet/internal/failpoint"
	"github.com/kvmnet/kvmnet/internal/ipam"
	"github.com/kvmnet/kvmnet/internal/link"
	"github.com/kvmnet/kvmnet/internal/netconf"
	"github.com/kvmnet/kvmnet/internal/state"
	"github.com/kvmnet/kvmnet/internal/vmid"
)

// DefaultMTU is the MTU of taps and bridges whose network sets none.
const DefaultMTU = 1500

// ErrAlreadyUp is returned by Up for a VM id whose networks are up.
var ErrAlreadyUp = errors.New("vm is already up")

// resolved is one attachment after resolution: the network and its args.
type resolved struct {
	net  *netconf.Network
	args [][2]string
}

// resolve turns the request into networks, validating everything that can
// be validated without the kernel.
func (m *Manager) resolve(req UpRequest) ([]resolved, error) {
	if err := validateRequest(&req); err != nil {
		return nil, err
	}
	list, err := netconf.ParseNetList(req.Nets)
	if err != nil {
		return nil, err
	}
	files, all, err := netconf.Load(m.opts.NetDirs, m.ipamDataDir())
	if err != nil {
		return nil, err
	}
	nets, atts, err := netconf.Resolve(list, files, all)
	if err != nil {
		return nil, err
	}
	out := make([]resolved, 0, len(nets))
	for i, n := range nets {
		if n.Conf.Type == "flannel" {
			rendered, err := renderFlannel(n)
			if err != nil {
				return nil, err
			}
			n = rendered
		}
		out = append(out, resolved{net: n, args: atts[i].Args})
	}
	if err := checkDefaultRoutes(out); err != nil {
		return nil, err
	}
	// A missing plugin found only at IPAM ADD would leave a record whose
	// DEL can never run.
	for _, a := range out {
		if _, err := invoke.FindInPath(a.net.Conf.IPAM.Type, m.opts.CNIPath); err != nil {
			return nil, fmt.Errorf("network %q: IPAM plugin %q not found in CNI path %s; install it or set --cni-path",
				a.net.Name, a.net.Conf.IPAM.Type, strings.Join(m.opts.CNIPath, ":"))
		}
	}
	return out, nil
}

// checkDefaultRoutes rejects more than one default route per address family
// across the networks of one VM, naming both sources.
func checkDefaultRoutes(atts []resolved) error {
	seen := map[int]string{}
	for _, a := range atts {
		for family, sources := range a.net.DefaultRouteSources() {
			for _, src := range sources {
				if prev, ok := seen[family]; ok {
					return fmt.Errorf("two default routes for IPv%d: %s and %s; keep one", family, prev, src)
				}
				seen[family] = src
			}
		}
	}
	return nil
}

// Up brings up every network of req.VM and returns what the hypervisor and
// the guest need. On failure it removes what it created, in reverse order,
// and releases the IPAM reservations.
func (m *Manager) Up(ctx context.Context, req UpRequest) (res *Result, err error) {
	// Resolve and validate before touching anything.
	atts, err := m.resolve(req)
	if err != nil {
		return nil, err
	}
	ports, err := parsePorts(req.Ports, atts)
	if err != nil {
		return nil, err
	}
	if err := checkMasters(atts); err != nil {
		return nil, err
	}

	// Serialize with other up/down calls for this VM id.
	lock, err := m.store.LockVM(req.VM)
	if err != nil {
		return nil, err
	}
	defer m.releaseVMLock(lock, req.VM)
	if err := m.finishStale(ctx, req.VM); err != nil {
		return nil, err
	}

	// Plan and persist before any kernel call, so a crash at any later
	// point leaves a record that down and gc can complete.
	rec := &state.Record{VM: req.VM, Phase: state.PhaseCreating, Created: time.Now().UTC(), CNIPath: m.opts.CNIPath}
	for i, a := range atts {
		rec.Attachments = append(rec.Attachments, state.Attachment{
			Index:      i,
			Network:    a.net.Name,
			Type:       a.net.Conf.Type,
			Config:     a.net.Bytes,
			IPAMType:   a.net.Conf.IPAM.Type,
			IfName:     fmt.Sprintf("eth%d", i),
			Args:       a.args,
			HostDevice: vmid.LinkName(req.VM, i),
			MAC:        vmid.MAC(req.VM, i).String(),
			Bridge:     bridgeName(a.net),
		})
	}
	if err := m.store.Save(rec); err != nil {
		return nil, err
	}
	defer func() {
		if err == nil {
			return
		}
		if undoErr := m.teardown(context.WithoutCancel(ctx), rec); undoErr != nil {
			err = errors.Join(err, fmt.Errorf("undo of vm %s incomplete, run kvmnet down %s: %w", req.VM, req.VM, undoErr))
		}
	}()
	if err := m.step(failpoint.UpRecordSaved, -1, "vm", req.VM); err != nil {
		return nil, fmt.Errorf("up vm %s: %w", req.VM, err)
	}

	h, err := link.New()
	if err != nil {
		return nil, err
	}
	defer h.Close()

	// Apply, attachment by attachment.
	res = &Result{VM: req.VM}
	var dnsSet []attachmentDNS
	for i := range rec.Attachments {
		if err := stopped(ctx); err != nil {
			return nil, fmt.Errorf("up vm %s: %w", req.VM, err)
		}
		ifc, dns, err := m.attach(ctx, h, rec, i, atts[i].net, req)
		if err != nil {
			return nil, fmt.Errorf("up vm %s, network %q: %w", req.VM, atts[i].net.Name, err)
		}
		res.Interfaces = append(res.Interfaces, ifc)
		dnsSet = append(dnsSet, attachmentDNS{network: atts[i].net.Name, dns: dns})
	}
	if err := checkResultDefaultRoutes(res); err != nil {
		return nil, fmt.Errorf("up vm %s: %w", req.VM, err)
	}

	if err := stopped(ctx); err != nil {
		return nil, fmt.Errorf("up vm %s: %w", req.VM, err)
	}

	// Firewall: masquerade and the VM's other entries, in one batch. The
	// record is marked first, so that down removes the entries of a batch
	// that was sent but not recorded.
	rec.FirewallPlanned = true
	if err := m.store.Save(rec); err != nil {
		return nil, err
	}
	if err := m.step(failpoint.UpFirewallPlanned, -1, "vm", req.VM); err != nil {
		return nil, fmt.Errorf("up vm %s: %w", req.VM, err)
	}
	if err := m.applyFirewall(rec, atts, ports, res); err != nil {
		return nil, fmt.Errorf("up vm %s: firewall: %w", req.VM, err)
	}
	if err := m.step(failpoint.UpFirewallApplied, -1, "vm", req.VM); err != nil {
		return nil, fmt.Errorf("up vm %s: %w", req.VM, err)
	}

	// DNS and commit.
	if err := stopped(ctx); err != nil {
		return nil, fmt.Errorf("up vm %s: %w", req.VM, err)
	}
	res.DNS = chooseDNS(dnsSet, req.DNS)
	raw, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("up vm %s: encode result: %w", req.VM, err)
	}
	rec.Result = raw
	rec.Phase = state.PhaseUp
	if err := m.store.Save(rec); err != nil {
		return nil, err
	}
	if err := m.step(failpoint.UpCommitted, -1, "vm", req.VM); err != nil {
		return nil, fmt.Errorf("up vm %s: %w", req.VM, err)
	}
	m.log.Info("vm up", "vm", req.VM, "interfaces", len(res.Interfaces))
	return res, nil
}

// stopped returns an error once ctx is done, so that an up the caller
// canceled (the CLI cancels on SIGINT and SIGTERM) undoes its work
// instead of finishing it. Only IPAM ADD watches ctx by itself.
func stopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stopped: %w", context.Cause(ctx))
	}
	return nil
}

// finishStale completes the teardown of a record left by a killed up or
// down. A VM that is up is an error.
func (m *Manager) finishStale(ctx context.Context, id string) error {
	rec, err := m.store.Load(id)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if rec.Phase == state.PhaseUp {
		return fmt.Errorf("vm %s: %w; run kvmnet down %s first", id, ErrAlreadyUp, id)
	}
	m.log.Info("completing teardown of an interrupted run", "vm", id, "phase", rec.Phase)
	if err := m.teardown(ctx, rec); err != nil {
		return fmt.Errorf("vm %s has an incomplete earlier run that could not be removed: %w", id, err)
	}
	return nil
}

// checkMasters checks the master link of every macvlan network and an
// existing bridge of every bridge network before any device exists: their
// MTU must allow the network's.
func checkMasters(atts []resolved) error {
	var h *link.Handle
	for _, a := range atts {
		if a.net.Conf.Type == "bridge" && a.net.Conf.MTU > 0 {
			if h == nil {
				var err error
				if h, err = link.New(); err != nil {
					return err
				}
				defer h.Close()
			}
			name := bridgeName(a.net)
			br, err := h.Get(name)
			if err != nil {
				return err
			}
			// The kernel lowers a bridge's MTU to its smallest port's, so a
			// larger tap MTU would not hold once another port joins.
			if br != nil && a.net.Conf.MTU > br.Attrs().MTU {
				return fmt.Errorf("network %q: mtu %d is larger than the mtu %d of the existing bridge %s; lower it or raise the bridge's", a.net.Name, a.net.Conf.MTU, br.Attrs().MTU, name)
			}
			continue
		}
		if a.net.Conf.Type != "macvlan" {
			continue
		}
		if h == nil {
			var err error
			if h, err = link.New(); err != nil {
				return err
			}
			defer h.Close()
		}
		masterMTU, err := h.MTU(a.net.Conf.Master)
		if err != nil {
			return fmt.Errorf("network %q: macvlan master: %w", a.net.Name, err)
		}
		if mtu := a.net.Conf.MTU; mtu > masterMTU {
			return fmt.Errorf("network %q: mtu %d is larger than the mtu %d of master %s; lower it or raise the master's", a.net.Name, mtu, masterMTU, a.net.Conf.Master)
		}
	}
	return nil
}

// tapSettings applies the tap settings of the network's "kvmnet" object
// over those of the request, and turns unset owners into the ids the kernel
// takes: -1 for none, and root as owner when neither is given, because a
// persistent tap with neither owner nor group can be opened by any user who
// can open /dev/net/tun. The kernel checks both when both are set, so a
// group alone stays alone.
func tapSettings(req UpRequest, n *netconf.Network) UpRequest {
	o := n.Conf.Kvmnet
	if o.TapOwner != nil {
		req.TapOwner = *o.TapOwner
	}
	if o.TapGroup != nil {
		req.TapGroup = *o.TapGroup
	}
	if o.Queues > 0 {
		req.Queues = o.Queues
	}
	if o.VnetHdr != nil {
		req.NoVnetHdr = !*o.VnetHdr
	}
	if req.TapOwner <= 0 {
		req.TapOwner = -1
	}
	if req.TapGroup <= 0 {
		req.TapGroup = -1
	}
	if req.TapOwner < 0 && req.TapGroup < 0 {
		req.TapOwner = 0
	}
	return req
}

func bridgeName(n *netconf.Network) string {
	if n.Conf.Type != "bridge" {
		return ""
	}
	if n.Conf.Bridge == "" {
		return "cni0"
	}
	return n.Conf.Bridge
}

type attachmentDNS struct {
	network string
	dns     cniresult.DNS
}

// attach creates the device of attachment i, reserves its addresses and
// sets the host side up.
func (m *Manager) attach(ctx context.Context, h *link.Handle, rec *state.Record, i int, n *netconf.Network, req UpRequest) (Interface, cniresult.DNS, error) {
	req = tapSettings(req, n)
	a := &rec.Attachments[i]
	alias := link.VMAlias(rec.VM)
	mtu := n.Conf.MTU
	ifc := Interface{
		Network:     n.Name,
		Type:        n.Conf.Type,
		HostDevice:  a.HostDevice,
		GuestDevice: a.IfName,
		MAC:         a.MAC,
		Bridge:      a.Bridge,
		Queues:      max(req.Queues, 1),
	}

	// Device.
	switch n.Conf.Type {
	case "macvlan":
		masterMTU, err := h.MTU(n.Conf.Master)
		if err != nil {
			return ifc, cniresult.DNS{}, fmt.Errorf("macvlan master: %w", err)
		}
		if mtu == 0 {
			mtu = masterMTU
		} else if mtu > masterMTU {
			return ifc, cniresult.DNS{}, fmt.Errorf("mtu %d is larger than the mtu %d of master %s; lower it or raise the master's", mtu, masterMTU, n.Conf.Master)
		}
		mac, _ := parseMAC(a.MAC)
		if err := h.CreateMacvtap(link.Macvtap{Name: a.HostDevice, Master: n.Conf.Master, Mode: n.Conf.Mode, MTU: mtu, MAC: mac, Alias: alias, Queues: req.Queues}); err != nil {
			return ifc, cniresult.DNS{}, err
		}
		// passthru keeps the master's MAC: the guest must use the macvtap's real one.
		actual, err := h.HardwareAddr(a.HostDevice)
		if err != nil {
			return ifc, cniresult.DNS{}, err
		}
		ifc.MAC = actual.String()
		// The device number is recorded with the path, so that teardown
		// removes the node only if it is still this macvtap's.
		rdev, err := h.MacvtapRdev(a.HostDevice)
		if err != nil {
			return ifc, cniresult.DNS{}, err
		}
		ifc.DevicePath = filepath.Join(m.devDir(), a.HostDevice)
		a.DevicePath, a.DeviceNumber = ifc.DevicePath, rdev
		if err := m.store.Save(rec); err != nil {
			return ifc, cniresult.DNS{}, err
		}
		if err := h.MacvtapDevice(a.HostDevice, ifc.DevicePath, rdev, req.TapOwner, req.TapGroup); err != nil {
			return ifc, cniresult.DNS{}, err
		}
		if err := link.WriteSysctl("/proc/sys/net/ipv4/conf/"+a.HostDevice+"/proxy_arp", "1"); err != nil {
			return ifc, cniresult.DNS{}, err
		}
	default:
		if mtu == 0 && a.Bridge != "" {
			// A tap on an existing bridge takes the bridge's MTU.
			if br, err := h.Get(a.Bridge); err != nil {
				return ifc, cniresult.DNS{}, err
			} else if br != nil {
				mtu = br.Attrs().MTU
			}
		}
		if mtu == 0 {
			mtu = DefaultMTU
		}
		ifc.VnetHdr = !req.NoVnetHdr
		tap := link.Tap{Name: a.HostDevice, MTU: mtu, Alias: alias, Owner: req.TapOwner, Group: req.TapGroup, Queues: req.Queues, VnetHdr: ifc.VnetHdr}
		if err := h.CreateTap(tap); err != nil {
			return ifc, cniresult.DNS{}, err
		}
	}
	ifc.MTU = mtu
	if err := m.step(failpoint.UpDeviceCreated, i, "vm", rec.VM, "net", a.Network, "dev", a.HostDevice); err != nil {
		return ifc, cniresult.DNS{}, err
	}

	// Bridge.
	if a.Bridge != "" {
		if err := m.withShared(func() error {
			if err := m.ensureBridge(h, a.Bridge, mtu); err != nil {
				return err
			}
			if err := m.step(failpoint.UpBridgeEnsured, i, "vm", rec.VM, "net", a.Network, "dev", a.HostDevice); err != nil {
				return err
			}
			return h.SetMaster(a.HostDevice, a.Bridge)
		}); err != nil {
			return ifc, cniresult.DNS{}, err
		}
		if err := m.step(failpoint.UpEnslaved, i, "vm", rec.VM, "net", a.Network, "dev", a.HostDevice); err != nil {
			return ifc, cniresult.DNS{}, err
		}
	}

	// IPAM: from here on the reservation is owed a DEL.
	a.IPAMStarted = true
	if err := m.store.Save(rec); err != nil {
		return ifc, cniresult.DNS{}, err
	}
	if err := m.step(failpoint.UpIPAMStartedSaved, i, "vm", rec.VM, "net", a.Network, "dev", a.HostDevice); err != nil {
		return ifc, cniresult.DNS{}, err
	}
	raw, ipamRes, err := m.ipamAdd(ctx, m.ipamRequest(rec, a))
	if err != nil {
		return ifc, cniresult.DNS{}, err
	}
	if err := m.step(failpoint.UpIPAMAdded, i, "vm", rec.VM, "net", a.Network, "dev", a.HostDevice); err != nil {
		return ifc, cniresult.DNS{}, err
	}
	a.IPAMResult = raw
	if err := m.store.Save(rec); err != nil {
		return ifc, cniresult.DNS{}, err
	}
	if err := m.step(failpoint.UpIPAMResultSaved, i, "vm", rec.VM, "net", a.Network, "dev", a.HostDevice); err != nil {
		return ifc, cniresult.DNS{}, err
	}
	if err := m.withShared(func() error { return m.claimAddresses(rec.VM, a.Network, ipamRes) }); err != nil {
		return ifc, cniresult.DNS{}, err
	}
	fillAddressing(&ifc, ipamRes, n)

	// Host addresses and routes; the kernel adds routes only to a link that is up.
	if err := h.SetUp(a.HostDevice); err != nil {
		return ifc, cniresult.DNS{}, err
	}
	if err := m.step(failpoint.UpLinkUp, i, "vm", rec.VM, "net", a.Network, "dev", a.HostDevice); err != nil {
		return ifc, cniresult.DNS{}, err
	}
	if err := m.hostSide(h, a, n, ipamRes); err != nil {
		return ifc, cniresult.DNS{}, err
	}
	return ifc, ipamRes.DNS, nil
}

// ipamAdd runs IPAM ADD, and after a failure releases the reservation and
// tries once more. A reservation that this VM id still holds makes
// host-local reject the ADD as a duplicate. That happens when a plugin
// outlived a killed up and finished its ADD after down or gc released the
// VM. No record owns such a reservation, and the caller holds the VM's
// lock, so releasing it cannot take an address from a live VM.
func (m *Manager) ipamAdd(ctx context.Context, req ipam.Request) (json.RawMessage, cniresult.Result, error) {
	raw, res, err := ipam.Add(ctx, req)
	if err == nil || ctx.Err() != nil {
		return raw, res, err
	}
	if delErr := ipam.Del(ctx, req); delErr != nil {
		return nil, cniresult.Result{}, err
	}
	m.log.Info("IPAM ADD failed; released the vm's reservations and retrying once", "vm", req.ContainerID, "err", err)
	return ipam.Add(ctx, req)
}

// ipamRequest builds the IPAM request of attachment a. Plugins are searched
// in the CNI path of the up that wrote the record first, so that down finds
// the same plugin (and CNI versions) as up, then in the current one.
func (m *Manager) ipamRequest(rec *state.Record, a *state.Attachment) ipam.Request {
	path := slices.Clone(rec.CNIPath)
	for _, dir := range m.opts.CNIPath {
		if !slices.Contains(path, dir) {
			path = append(path, dir)
		}
	}
	return ipam.Request{
		Config:      a.Config,
		PluginType:  a.IPAMType,
		ContainerID: rec.VM,
		IfName:      a.IfName,
		Args:        a.Args,
		NetNS:       "/proc/self/ns/net",
		Path:        path,
	}
}

// withShared runs fn under the lock for objects shared between VMs.
func (m *Manager) withShared(fn func() error) error {
	lock, err := m.store.LockShared()
	if err != nil {
		return err
	}
	defer lock.Unlock()
	return fn()
}

// fillAddressing copies addresses, gateways and guest routes into ifc. A
// route without a gateway goes through the interface's gateway of its family.
func fillAddressing(ifc *Interface, r cniresult.Result, n *netconf.Network) {
	ifc.Addresses = []netip.Prefix{}
	ifc.Gateways = []netip.Addr{}
	ifc.Routes = []Route{}
	gateways := map[bool]netip.Addr{}
	for _, a := range r.Addresses {
		ifc.Addresses = append(ifc.Addresses, a.Prefix)
		if _, ok := gateways[a.Prefix.Addr().Is4()]; !ok {
			gateways[a.Prefix.Addr().Is4()] = a.Gateway
			ifc.Gateways = append(ifc.Gateways, a.Gateway)
		}
	}
	for _, rt := range r.Routes {
		gw := rt.GW
		if !gw.IsValid() {
			gw = gateways[rt.Dst.Addr().Is4()]
		}
		ifc.Routes = append(ifc.Routes, Route{Dst: rt.Dst, GW: gw})
	}
	if n.Conf.IsDefaultGateway {
		if gw, ok := gateways[true]; ok {
			ifc.Routes = append(ifc.Routes, Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), GW: gw})
		}
	}
}

// hostSide puts the gateway addresses and guest routes on the host.
func (m *Manager) hostSide(h *link.Handle, a *state.Attachment, n *netconf.Network, r cniresult.Result) error {
	for _, addr := range r.Addresses {
		gw := netip.PrefixFrom(addr.Gateway, addr.Prefix.Bits())
		if addr.Gateway == addr.Prefix.Addr() {
			return fmt.Errorf("IPAM gave the guest %s, which is the gateway address; exclude the gateway from the range", addr.Prefix)
		}
		if !addr.Prefix.Contains(addr.Gateway) {
			return fmt.Errorf("gateway %s is outside the guest subnet %s", addr.Gateway, addr.Prefix.Masked())
		}
		switch n.Conf.Type {
		case "ptp":
			if err := h.AddAddr(a.HostDevice, link.Addr{Prefix: gw, NoPrefixRoute: true}, false); err != nil {
				return err
			}
			// The guest sees its whole subnet on-link, but its neighbours sit
			// behind other taps: the host answers their ARP requests.
			// NOTE: IPv6 neighbours on other taps are not proxied (no proxy_ndp).
			if addr.Prefix.Addr().Is4() {
				if err := link.WriteSysctl("/proc/sys/net/ipv4/conf/"+a.HostDevice+"/proxy_arp", "1"); err != nil {
					return err
				}
			}
			if err := m.step(failpoint.UpAddressAdded, a.Index, "net", a.Network, "dev", a.HostDevice, "addr", addr.Prefix); err != nil {
				return err
			}
			if err := h.AddRoute(a.HostDevice, netip.PrefixFrom(addr.Prefix.Addr(), addr.Prefix.Addr().BitLen())); err != nil {
				return err
			}
			if err := m.step(failpoint.UpRouteAdded, a.Index, "net", a.Network, "dev", a.HostDevice, "addr", addr.Prefix); err != nil {
				return err
			}
		case "bridge":
			if n.Conf.IsGateway || n.Conf.IsDefaultGateway {
				if err := m.withShared(func() error { return m.addBridgeGateway(h, a.Bridge, gw) }); err != nil {
					return err
				}
				if err := m.step(failpoint.UpAddressAdded, a.Index, "net", a.Network, "dev", a.HostDevice, "addr", addr.Prefix); err != nil {
					return err
				}
			}
		}
		if n.Conf.Type != "macvlan" {
			if err := m.enableForwarding(!addr.Prefix.Addr().Is4()); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkResultDefaultRoutes rejects guest default routes in more than one
// interface per family, which IPAM results can add beyond the configs.
func checkResultDefaultRoutes(res *Result) error {
	seen := map[bool]string{}
	for _, ifc := range res.Interfaces {
		for _, rt := range ifc.Routes {
			if rt.Dst.Bits() != 0 {
				continue
			}
			v4 := rt.Dst.Addr().Is4()
			src := fmt.Sprintf("network %q route %s via %s", ifc.Network, rt.Dst, rt.GW)
			if prev, ok := seen[v4]; ok {
				return fmt.Errorf("two default routes: %s and %s; keep one", prev, src)
			}
			seen[v4] = src
		}
	}
	return nil
}

// chooseDNS takes the DNS of the first network that has any, and reports
// the others. Nameservers given by the caller replace it.
func chooseDNS(all []attachmentDNS, override []netip.Addr) DNS {
	var d DNS
	for _, a := range all {
		if a.dns.Empty() {
			continue
		}
		if d.Source == "" {
			d = DNS{Nameservers: a.dns.Nameservers, Domain: a.dns.Domain, Search: a.dns.Search, Options: a.dns.Options, Source: a.network}
			continue
		}
		d.Ignored = append(d.Ignored, a.network)
	}
	if len(override) > 0 {
		if d.Source != "" {
			d.Ignored = append(d.Ignored, d.Source)
		}
		d = DNS{Nameservers: slices.Clone(override), Source: "--dns", Ignored: d.Ignored}
	}
	d.ResolvConf = d.Text()
	return d
}

// removeDevNode removes the macvtap device node at path. Only a character
// device inside the dev dir is removed: a record names the path, and a
// record must never make kvmnet delete an arbitrary file.
func (m *Manager) removeDevNode(vm, path string, rdev uint64) error {
	if path == "" {
		return nil
	}
	if filepath.Dir(path) != filepath.Clean(m.devDir()) {
		m.log.Warn("device node of the record is outside the dev dir, left in place", "vm", vm, "dev", path, "devDir", m.devDir())
		return nil
	}
	info, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove device node %s: %w", path, err)
	}
	if info.Mode()&os.ModeCharDevice == 0 || info.Mode()&os.ModeDevice == 0 {
		m.log.Warn("device node path of the record is not a character device, left in place", "vm", vm, "dev", path)
		return nil
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && rdev != 0 && st.Rdev != rdev {
		m.log.Warn("device node belongs to another macvtap, left in place", "vm", vm, "dev", path)
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove device node %s: %w", path, err)
	}
	return nil
}

// step logs a finished step of up or down at debug level (shown with -v) and
// runs its failpoint, which only test builds have. attrs are slog pairs
// naming the objects of the step.
func (m *Manager) step(name string, index int, attrs ...any) error {
	if index >= 0 {
		attrs = append(attrs, "index", index)
	}
	m.log.Debug(name, attrs...)
	return failpoint.Inject(name, index)
}
