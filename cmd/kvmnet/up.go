package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/internal/firewall"
	"github.com/kvmnet/kvmnet/internal/netconf"
	"github.com/kvmnet/kvmnet/internal/vmid"
	"github.com/kvmnet/kvmnet/render"
)

// builtinSource is the Source of the networks that need no config file.
const builtinSource = "built-in"

// upCommand is a parsed and validated up command line.
type upCommand struct {
	req  kvmnet.UpRequest
	nets netconf.NetList
	out  outputFlags
}

func (c *cli) cmdUp(ctx context.Context, g *globals, args []string) error {
	cmd, err := parseUp(g, args)
	if err != nil {
		return err
	}
	m, err := c.manager(g, true)
	if err != nil {
		return err
	}

	// Check that the format can attach the planned interfaces before
	// anything is created.
	if err := checkPlannedOutput(m, g, cmd); err != nil {
		return err
	}

	res, err := m.Up(ctx, cmd.req)
	if err != nil {
		return err
	}

	// A VM whose output cannot be printed is of no use to the caller, who
	// reads exit status 1 as "nothing was created".
	if err := cmd.out.print(c.stdout, res); err != nil {
		return takeDownAfter(ctx, m, cmd.req.VM, err)
	}
	return nil
}

// parseUp parses the up command line and checks every argument that can be
// checked without the net dirs, so that each of them fails with exit
// status 2.
func parseUp(g *globals, args []string) (*upCommand, error) {
	fs := newFlagSet("up")
	g.register(fs)
	cmd := &upCommand{}
	cmd.out.register(fs)
	var nets, dns, ports multiFlag
	fs.Var(&nets, "net", "networks")
	fs.Var(&ports, "port", "forwarded port")
	fs.Var(&dns, "dns", "nameserver")
	owner := &intFlag{min: 0, max: maxID}
	group := &intFlag{min: 0, max: maxID}
	queues := &intFlag{value: 1, min: 1, max: 256}
	fs.Var(owner, "tap-owner", "tap owner uid")
	fs.Var(group, "tap-group", "tap group gid")
	fs.Var(queues, "queues", "tap queues")
	noVnetHdr := fs.Bool("no-vnet-hdr", false, "no IFF_VNET_HDR")

	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != 1 {
		return nil, usageError{fmt.Errorf("up takes one VM id, got %d arguments", len(pos))}
	}
	if err := vmid.Validate(pos[0]); err != nil {
		return nil, usageError{err}
	}
	if err := cmd.out.validate(); err != nil {
		return nil, err
	}
	cmd.nets, err = netconf.ParseNetList(nets)
	if err != nil {
		return nil, usageError{err}
	}
	if err := checkPorts(ports, cmd.nets); err != nil {
		return nil, err
	}

	cmd.req = kvmnet.UpRequest{
		VM:        pos[0],
		Nets:      nets,
		Ports:     ports,
		TapOwner:  owner.value,
		TapGroup:  group.value,
		Queues:    queues.value,
		NoVnetHdr: *noVnetHdr,
	}
	for _, s := range dns {
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return nil, usageError{fmt.Errorf("invalid --dns %q: not an IP address", s)}
		}
		cmd.req.DNS = append(cmd.req.DNS, addr)
	}
	return cmd, nil
}

// checkPorts parses each --port value and checks that a network it names
// is in the net list, unless the list is "all".
func checkPorts(ports []string, nets netconf.NetList) error {
	if nets.None && len(ports) > 0 {
		return usageError{fmt.Errorf("invalid --port %q: --net none attaches no network to forward to", ports[0])}
	}
	for _, s := range ports {
		spec, err := firewall.ParsePortSpec(s)
		if err != nil {
			return usageError{fmt.Errorf("invalid --port %q: %s", s, portSpecReason(s, err))}
		}
		if spec.Network == "" || nets.All {
			continue
		}
		attached := false
		for _, a := range nets.Attachments {
			attached = attached || a.Network == spec.Network
		}
		if !attached {
			return usageError{fmt.Errorf("invalid --port %q: network %q is not in the --net list; add it there", s, spec.Network)}
		}
	}
	return nil
}

// portSpecReason returns the reason of a firewall.ParsePortSpec error
// without the prefix that repeats the spec, or the whole message when it
// has another form.
func portSpecReason(spec string, err error) string {
	prefix := firewall.ErrInvalid.Error() + ": port spec " + strconv.Quote(spec) + ": "
	msg := err.Error()
	if reason, ok := strings.CutPrefix(msg, prefix); ok {
		return reason
	}
	return msg
}

// checkPlannedOutput renders the interfaces that up will create, as far as
// the names, MACs, queues and device kinds decide, in the chosen format. It
// returns a usage error when the format cannot attach them, for example a
// macvtap or a multiqueue tap with firecracker. When the networks cannot
// be resolved, it leaves the error to Up.
func checkPlannedOutput(m manager, g *globals, cmd *upCommand) error {
	if cmd.out.format == "" {
		return nil
	}
	planned, ok := planResult(m, g, cmd)
	if !ok {
		return nil
	}
	if err := render.Render(io.Discard, cmd.out.format, planned, cmd.out.renderOptions()); err != nil {
		return usageError{fmt.Errorf("%w; nothing was created", err)}
	}
	return nil
}

// planResult returns the Result that up will return, without addresses,
// routes and MTU, which only the kernel and IPAM decide. The device names
// and MACs are derived from the VM id as Up derives them.
func planResult(m manager, g *globals, cmd *upCommand) (*kvmnet.Result, bool) {
	all, err := m.Networks()
	if err != nil {
		return nil, false
	}
	var files []*netconf.Network
	for _, n := range all {
		if n.Source != builtinSource {
			files = append(files, n)
		}
	}
	nets, _, err := netconf.Resolve(cmd.nets, files, all)
	if err != nil {
		return nil, false
	}

	devDir := g.devDir
	if devDir == "" {
		devDir = kvmnet.DefaultDevDir
	}
	req := cmd.req
	res := &kvmnet.Result{VM: req.VM, DNS: kvmnet.DNS{Nameservers: req.DNS}}
	for i, n := range nets {
		ifc := kvmnet.Interface{
			Network:     n.Name,
			Type:        n.Conf.Type,
			HostDevice:  vmid.LinkName(req.VM, i),
			GuestDevice: fmt.Sprintf("eth%d", i),
			MAC:         vmid.MAC(req.VM, i).String(),
			Queues:      req.Queues,
			VnetHdr:     !req.NoVnetHdr,
		}
		// NOTE: this copies Up's choice of device: a macvtap for macvlan
		// networks and a tap for every other type, flannel included.
		if n.Conf.Type == "macvlan" {
			ifc.DevicePath = filepath.Join(devDir, ifc.HostDevice)
		}
		res.Interfaces = append(res.Interfaces, ifc)
	}
	return res, true
}

// takeDownAfter removes the networks of a VM whose up succeeded but whose
// output failed, and returns printErr with what happened to the VM.
func takeDownAfter(ctx context.Context, m manager, id string, printErr error) error {
	// The output failed after the VM came up, so a canceled context must not
	// stop the removal.
	if err := m.Down(context.WithoutCancel(ctx), id); err != nil {
		return errors.Join(printErr, fmt.Errorf("vm %s is up, and taking it down again failed; run kvmnet down %s: %w", id, id, err))
	}
	return fmt.Errorf("%w; vm %s was taken down again", printErr, id)
}
