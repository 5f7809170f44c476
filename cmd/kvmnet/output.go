package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/render"
)

// outputFlags are --json, --format and the render options of up and show.
type outputFlags struct {
	json     bool
	format   string
	hostname string
}

func (o *outputFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.json, "json", false, "print JSON")
	fs.StringVar(&o.format, "format", "", "output format")
	fs.StringVar(&o.hostname, "hostname", "", "guest host name for kernel-args")
}

func (o *outputFlags) validate() error {
	if o.json && o.format != "" && o.format != "json" {
		return usageError{fmt.Errorf("--json and --format %s conflict; give one", o.format)}
	}
	if o.json {
		o.format = "json"
	}
	if o.format != "" && !slices.Contains(render.Formats(), o.format) {
		return usageError{fmt.Errorf("unknown format %q; use one of %s", o.format, strings.Join(render.Formats(), ", "))}
	}
	if err := o.renderOptions().Validate(); err != nil {
		return usageError{fmt.Errorf("--hostname: %w", err)}
	}
	return nil
}

// renderOptions returns the render options of the flags. vhost=on is
// emitted only when /dev/vhost-net exists, because QEMU aborts without it.
func (o *outputFlags) renderOptions() render.Options {
	_, err := os.Stat("/dev/vhost-net")
	return render.Options{VhostNet: err == nil, Hostname: o.hostname}
}

func (o *outputFlags) print(w io.Writer, res *kvmnet.Result) error {
	if o.format == "" {
		return printHuman(w, res)
	}
	return render.Render(w, o.format, res, o.renderOptions())
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printHuman writes res as a table of interfaces, a table of forwarded
// ports when there are any, and the DNS servers.
func printHuman(w io.Writer, res *kvmnet.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "vm %s\n", res.VM)
	fmt.Fprintln(tw, "GUEST\tNETWORK\tTYPE\tHOST DEVICE\tMAC\tMTU\tADDRESSES\tGATEWAYS\tROUTES")
	for _, ifc := range res.Interfaces {
		var addrs, gws, routes []string
		for _, a := range ifc.Addresses {
			addrs = append(addrs, a.String())
		}
		for _, gw := range ifc.Gateways {
			gws = append(gws, gw.String())
		}
		for _, r := range ifc.Routes {
			routes = append(routes, r.Dst.String()+" via "+r.GW.String())
		}
		dev := ifc.HostDevice
		if ifc.DevicePath != "" {
			dev += " (" + ifc.DevicePath + ")"
		}
		if ifc.Bridge != "" {
			dev += " on " + ifc.Bridge
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", ifc.GuestDevice, ifc.Network, ifc.Type, dev, ifc.MAC, ifc.MTU,
			strings.Join(addrs, ","), strings.Join(gws, ","), strings.Join(routes, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printPorts(w, res); err != nil {
		return err
	}
	if len(res.DNS.Nameservers) > 0 {
		var ns []string
		for _, a := range res.DNS.Nameservers {
			ns = append(ns, a.String())
		}
		fmt.Fprintf(w, "dns %s (from %s)\n", strings.Join(ns, " "), res.DNS.Source)
	}
	return nil
}

// printPorts writes one line per forwarded port range of res, after a blank
// line, or nothing when res forwards no port. A host address of "*" means
// every host address of the guest address's family.
func printPorts(w io.Writer, res *kvmnet.Result) error {
	var rows []string
	for _, ifc := range res.Interfaces {
		for _, p := range ifc.Ports {
			host := hostPort(p.HostIP, p.HostPort, p.HostPortEnd)
			guestEnd := int(p.GuestPort) + int(p.HostPortEnd) - int(p.HostPort)
			guest := hostPort(p.GuestIP, p.GuestPort, uint16(guestEnd))
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\n", host, guest, p.Proto, ifc.GuestDevice, ifc.Network))
		}
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST PORT\tGUEST PORT\tPROTO\tGUEST\tNETWORK")
	for _, row := range rows {
		fmt.Fprint(tw, row)
	}
	return tw.Flush()
}

// hostPort formats an address and a port or port range as 10.0.0.1:80,
// [fd00::1]:8000-8009 or, for the zero address, *:80.
func hostPort(addr netip.Addr, first, last uint16) string {
	ports := strconv.Itoa(int(first))
	if last > first {
		ports += "-" + strconv.Itoa(int(last))
	}
	switch {
	case !addr.IsValid():
		return "*:" + ports
	case addr.Is6():
		return "[" + addr.String() + "]:" + ports
	default:
		return addr.String() + ":" + ports
	}
}
