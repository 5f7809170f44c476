package kvmnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/kvmnet/kvmnet/internal/firewall"
	"github.com/kvmnet/kvmnet/internal/netconf"
	"github.com/kvmnet/kvmnet/internal/state"
	"github.com/kvmnet/kvmnet/internal/vmid"
)

// firewallState is the record's part for the firewall: the VM as added and
// the firewall's receipt.
type firewallState struct {
	VM      firewall.VM      `json:"vm"`
	Receipt firewall.Receipt `json:"receipt"`
}

// parsePorts parses the forwarded ports of a request and of the networks'
// portMappings, and checks that each named network is one of the VM's.
func parsePorts(specs []string, atts []resolved) ([]firewall.PortSpec, error) {
	var out []firewall.PortSpec
	names := map[string]bool{}
	for _, a := range atts {
		names[a.net.Name] = true
		for _, pm := range a.net.PortMappings() {
			spec, err := portMappingSpec(a.net, pm)
			if err != nil {
				return nil, err
			}
			out = append(out, spec)
		}
	}
	for _, s := range specs {
		spec, err := firewall.ParsePortSpec(s)
		if err != nil {
			return nil, err
		}
		if spec.Network != "" && !names[spec.Network] {
			return nil, fmt.Errorf("port %q names network %q, which the VM is not attached to", s, spec.Network)
		}
		out = append(out, spec)
	}
	return out, nil
}

func portMappingSpec(n *netconf.Network, pm netconf.PortMapping) (firewall.PortSpec, error) {
	spec := firewall.PortSpec{Network: n.Name}
	if pm.HostPort < 1 || pm.HostPort > 65535 || pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
		return spec, fmt.Errorf("network %q: invalid portMapping %d:%d: ports must be 1 to 65535", n.Name, pm.HostPort, pm.ContainerPort)
	}
	spec.HostPort = uint16(pm.HostPort)
	spec.HostPortEnd = spec.HostPort
	spec.GuestPort = uint16(pm.ContainerPort)
	spec.Proto = pm.Protocol
	if spec.Proto == "" {
		spec.Proto = "tcp"
	}
	if spec.Proto != "tcp" && spec.Proto != "udp" {
		return spec, fmt.Errorf("network %q: invalid portMapping protocol %q: use tcp or udp", n.Name, pm.Protocol)
	}
	if pm.HostIP != "" {
		ip, err := netip.ParseAddr(pm.HostIP)
		if err != nil {
			return spec, fmt.Errorf("network %q: invalid portMapping hostIP %q", n.Name, pm.HostIP)
		}
		spec.HostIP = ip
	}
	return spec, nil
}

// placePorts assigns each port to its attachment: the named network, else
// the one with the guest's default route, and fills in the guest address.
func placePorts(ports []firewall.PortSpec, res *Result, vm *firewall.VM) error {
	for _, p := range ports {
		index := -1
		for i, ifc := range res.Interfaces {
			if p.Network != "" && ifc.Network == p.Network {
				index = i
			}
		}
		if p.Network == "" {
			family := 4
			if p.HostIP.IsValid() && !p.HostIP.Is4() {
				family = 6
			}
			if !hasFamily(res, family == 4) {
				return fmt.Errorf("port %s: the guest has no IPv%d address on any network", p.PortForward, family)
			}
			if ifc := res.DefaultRoute(family); ifc != nil {
				for i := range res.Interfaces {
					if &res.Interfaces[i] == ifc {
						index = i
					}
				}
			}
			if index < 0 {
				return fmt.Errorf("port %s: no network carries the guest's IPv%d default route; put the network name in front, e.g. --port NET:%s", p.PortForward, family, p.PortForward)
			}
		}
		wantV4 := !p.HostIP.IsValid() || p.HostIP.Is4()
		for _, a := range res.Interfaces[index].Addresses {
			if a.Addr().Is4() == wantV4 {
				p.GuestIP = a.Addr()
				break
			}
		}
		if !p.GuestIP.IsValid() {
			return fmt.Errorf("port %s: the guest has no address of that family on network %q", p.PortForward, res.Interfaces[index].Network)
		}
		vm.Attachments[index].Ports = append(vm.Attachments[index].Ports, p.PortForward)
		end := p.HostPortEnd
		if end == 0 {
			end = p.HostPort
		}
		res.Interfaces[index].Ports = append(res.Interfaces[index].Ports, Port{
			Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, HostPortEnd: end, GuestIP: p.GuestIP, GuestPort: p.GuestPort,
		})
	}
	return nil
}

// applyFirewall adds the VM's firewall entries (masquerade, forwarded ports,
// isolation, anti-spoofing) in one batch.
func (m *Manager) applyFirewall(rec *state.Record, atts []resolved, ports []firewall.PortSpec, res *Result) error {
	vm := firewall.VM{ID: vmid.Tag(rec.VM)}
	for i, a := range atts {
		ifc := res.Interfaces[i]
		mac, err := parseMAC(ifc.MAC)
		if err != nil {
			return err
		}
		// A macvtap's frames bypass the host's IP layer, and its ingress hook
		// sees the frames sent to the guest, not from it.
		// NOTE: anti-spoofing and isolation for macvtaps would need an egress
		// hook on the master; they are not installed.
		routed := a.net.Conf.Type != "macvlan"
		vm.Attachments = append(vm.Attachments, firewall.Attachment{
			Network:        a.net.Name,
			HostDevice:     ifc.HostDevice,
			Bridge:         ifc.Bridge,
			MAC:            mac,
			Addrs:          append([]netip.Prefix(nil), ifc.Addresses...),
			Gateways:       append([]netip.Addr(nil), ifc.Gateways...),
			Masquerade:     a.net.Conf.IPMasq,
			MasqueradeIPv6: a.net.Conf.IPMasq && a.net.Conf.Kvmnet.MasqueradeIPv6,
			AntiSpoof:      routed && a.net.AntiSpoof(),
			Isolated:       routed && !a.net.Conf.IPMasq && len(ifc.Routes) == 0,
		})
	}
	if err := placePorts(ports, res, &vm); err != nil {
		return err
	}
	fs := firewallState{VM: vm}
	if err := m.saveFirewallState(rec, fs); err != nil {
		return err
	}
	fw, err := firewall.New()
	if err != nil {
		return err
	}
	defer fw.Close()
	// Under the shared lock, so that no other VM's down deletes the tables
	// between the check for owners and this batch.
	var receipt firewall.Receipt
	if err := m.withShared(func() (err error) { receipt, err = fw.Add(vm); return err }); err != nil {
		return err
	}
	fs.Receipt = receipt
	return m.saveFirewallState(rec, fs)
}

func (m *Manager) saveFirewallState(rec *state.Record, fs firewallState) error {
	raw, err := json.Marshal(fs)
	if err != nil {
		return fmt.Errorf("encode firewall state: %w", err)
	}
	rec.Firewall = raw
	rec.FirewallPlanned = true
	return m.store.Save(rec)
}

// removeFirewall removes the VM's firewall entries. Without a usable
// firewall state it removes every entry owned by the VM.
func (m *Manager) removeFirewall(rec *state.Record) error {
	fw, err := firewall.New()
	if err != nil {
		return err
	}
	defer fw.Close()
	var fs firewallState
	return m.withShared(func() error {
		if len(rec.Firewall) == 0 || json.Unmarshal(rec.Firewall, &fs) != nil || fs.VM.ID != vmid.Tag(rec.VM) {
			err = fw.RemoveOwner(vmid.Tag(rec.VM))
		} else {
			err = fw.Remove(fs.VM, fs.Receipt)
			if errors.Is(err, firewall.ErrInvalid) {
				// Entries that Add would reject cannot be removed by value,
				// so they go by owner and a bad record cannot block down.
				m.log.Warn("firewall state of the record is invalid; removing entries by owner", "vm", rec.VM, "err", err)
				err = fw.RemoveOwner(vmid.Tag(rec.VM))
			}
		}
		if err != nil {
			return err
		}
		_, err = fw.PruneIfUnused()
		return err
	})
}

// tagFirewall presents the firewall to gc by VM id: entries carry
// vmid.Tag, which differs from the id for ids over 128 bytes.
type tagFirewall struct {
	m     *Manager
	fw    *firewall.Firewall
	byTag map[string]string
}

func (t *tagFirewall) Owners() ([]string, error) {
	// Under the shared lock: a concurrent down may delete the tables
	// between two set reads.
	var tags []string
	err := t.m.withShared(func() (err error) {
		tags, err = t.fw.Owners()
		return err
	})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(tags))
	for _, tag := range tags {
		if id, ok := t.byTag[tag]; ok {
			tag = id
		}
		ids = append(ids, tag)
	}
	return ids, nil
}

func (t *tagFirewall) RemoveOwner(id string) error { return t.fw.RemoveOwner(vmid.Tag(id)) }

func (t *tagFirewall) Close() error { return t.fw.Close() }

// newGCFirewall opens the firewall for gc.
func (m *Manager) newGCFirewall() (gcFirewall, error) {
	fw, err := firewall.New()
	if err != nil {
		return nil, err
	}
	ids, err := m.store.List()
	if err != nil {
		fw.Close()
		return nil, err
	}
	byTag := map[string]string{}
	for _, id := range ids {
		byTag[vmid.Tag(id)] = id
	}
	return &tagFirewall{m: m, fw: fw, byTag: byTag}, nil
}

// hasFamily reports whether any interface of res has an IPv4 (v4) or IPv6
// address.
func hasFamily(res *Result, v4 bool) bool {
	for _, ifc := range res.Interfaces {
		for _, a := range ifc.Addresses {
			if a.Addr().Is4() == v4 {
				return true
			}
		}
	}
	return false
}
