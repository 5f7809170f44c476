// Command kvmnet gives virtual machines network access from CNI network
// configurations. Run "kvmnet help" for usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/render"
)

const usage = `kvmnet gives virtual machines network access from CNI network configurations.

Usage:
  kvmnet [global options] up VMID [--net SPEC]... [--dns IP]... [--json | --format FORMAT]
  kvmnet [global options] down VMID
  kvmnet [global options] list [--json]
  kvmnet [global options] show VMID [--json | --format FORMAT]
  kvmnet [global options] networks [--json]
  kvmnet [global options] gc [--dry-run] [--json]

Global options (also accepted after the command):
  --state-dir DIR   state records (env KVMNET_STATE_DIR; default /var/lib/kvmnet)
  --net-dir DIR     CNI config directory, repeatable (env KVMNET_NET_DIR, colon-separated;
                    default /etc/kvmnet/net.d)
  --cni-path DIRS   colon-separated CNI plugin directories (env CNI_PATH;
                    default /opt/cni/bin:/usr/lib/cni)
  --dev-dir DIR     macvtap device nodes (env KVMNET_DEV_DIR; default /run/kvmnet/dev)
  -v                structured logs on stderr

up options:
  --net SPEC        networks, comma-separated and repeatable: default (when none is given),
                    none, all, NAME, NAME:K=V;K2=V2 (CNI args for IPAM, e.g. IP=172.16.28.9)
  --dns IP          guest nameserver, repeatable; replaces the DNS from IPAM
  --port SPEC       forward a host port to the guest, repeatable:
                    [NET:][HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp], ranges 8000-8009:80-89,
                    IPv6 host addresses in brackets ([::1]:8080:80); without NET the
                    network with the guest's default route
  --tap-owner UID   uid allowed to open the taps (for an unprivileged hypervisor)
  --tap-group GID   gid allowed to open the taps
  --queues N        multiqueue taps with N queues (default 1)
  --no-vnet-hdr     create taps without IFF_VNET_HDR
  --json            print the result as JSON (same as --format json)
  --format FORMAT   print the result as one of: ` + "%s" + `
  --hostname NAME   guest host name for kernel-args

gc options:
  --dry-run         list what gc would remove, remove nothing
  --json            print the removed objects as JSON

Exit status: 0 on success, 1 when the operation failed, 2 for invalid usage.
`

// usageError marks errors in the command line, which exit with status 2.
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return 0
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "kvmnet: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "Run 'kvmnet help' for usage.")
		return 2
	}
	return 1
}

// globals are the options every command accepts.
type globals struct {
	stateDir string
	netDirs  multiFlag
	cniPath  string
	devDir   string
	verbose  bool
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.stateDir, "state-dir", g.stateDir, "state directory")
	fs.Var(&g.netDirs, "net-dir", "CNI config directory (repeatable)")
	fs.StringVar(&g.cniPath, "cni-path", g.cniPath, "CNI plugin directories")
	fs.StringVar(&g.devDir, "dev-dir", g.devDir, "macvtap device node directory")
	fs.BoolVar(&g.verbose, "v", g.verbose, "structured logs on stderr")
}

// parseInterspersed parses flags that may come before and after positional
// arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{stateDir: os.Getenv("KVMNET_STATE_DIR"), cniPath: os.Getenv("CNI_PATH"), devDir: os.Getenv("KVMNET_DEV_DIR")}
	pre := newFlagSet("kvmnet")
	g.register(pre)
	if err := pre.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return nil
		}
		return usageError{err}
	}
	rest := pre.Args()
	if len(rest) == 0 {
		printUsage(stderr)
		return usageError{errors.New("missing command")}
	}
	command, rest := rest[0], rest[1:]
	switch command {
	case "help", "-h", "--help":
		printUsage(stdout)
		return nil
	case "up":
		return cmdUp(ctx, g, rest, stdout, stderr)
	case "down":
		return cmdDown(ctx, g, rest, stderr)
	case "list":
		return cmdList(g, rest, stdout, stderr)
	case "show":
		return cmdShow(g, rest, stdout, stderr)
	case "networks":
		return cmdNetworks(g, rest, stdout, stderr)
	case "gc":
		return cmdGC(ctx, g, rest, stdout, stderr)
	}
	return usageError{fmt.Errorf("unknown command %q; use up, down, list, show, networks or gc", command)}
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, usage, strings.Join(render.Formats(), ", "))
}

func (g *globals) manager(stderr io.Writer) (*kvmnet.Manager, error) {
	opts := kvmnet.Options{StateDir: g.stateDir, DevDir: g.devDir}
	opts.NetDirs = append(opts.NetDirs, g.netDirs...)
	if len(opts.NetDirs) == 0 {
		if env := os.Getenv("KVMNET_NET_DIR"); env != "" {
			opts.NetDirs = filepath.SplitList(env)
		}
	}
	if g.cniPath != "" {
		opts.CNIPath = filepath.SplitList(g.cniPath)
	}
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return kvmnet.New(opts)
}

// outputFlags are --json, --format and the render options.
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
	if o.format != "" && !contains(render.Formats(), o.format) {
		return usageError{fmt.Errorf("unknown format %q; use one of %s", o.format, strings.Join(render.Formats(), ", "))}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (o *outputFlags) print(w io.Writer, res *kvmnet.Result) error {
	if o.format == "" {
		return printHuman(w, res)
	}
	_, vhost := os.Stat("/dev/vhost-net")
	return render.Render(w, o.format, res, render.Options{VhostNet: vhost == nil, Hostname: o.hostname})
}

func cmdUp(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("up")
	g.register(fs)
	var out outputFlags
	out.register(fs)
	var nets, dns, ports multiFlag
	fs.Var(&nets, "net", "networks")
	fs.Var(&ports, "port", "forwarded port")
	fs.Var(&dns, "dns", "nameserver")
	owner := fs.Int("tap-owner", 0, "tap owner uid")
	group := fs.Int("tap-group", 0, "tap group gid")
	queues := fs.Int("queues", 1, "tap queues")
	noVnetHdr := fs.Bool("no-vnet-hdr", false, "no IFF_VNET_HDR")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{fmt.Errorf("up takes one VM id, got %d arguments", len(pos))}
	}
	if err := out.validate(); err != nil {
		return err
	}
	req := kvmnet.UpRequest{VM: pos[0], Nets: nets, Ports: ports, TapOwner: *owner, TapGroup: *group, Queues: *queues, NoVnetHdr: *noVnetHdr}
	if *owner < 0 || *group < 0 {
		return usageError{fmt.Errorf("invalid --tap-owner %d or --tap-group %d: use a uid/gid >= 0", *owner, *group)}
	}
	for _, s := range dns {
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return usageError{fmt.Errorf("invalid --dns %q: not an IP address", s)}
		}
		req.DNS = append(req.DNS, addr)
	}
	m, err := g.manager(stderr)
	if err != nil {
		return err
	}
	res, err := m.Up(ctx, req)
	if err != nil {
		return err
	}
	return out.print(stdout, res)
}

func oneID(g *globals, name string, args []string, extra func(*flag.FlagSet)) (string, error) {
	fs := newFlagSet(name)
	g.register(fs)
	if extra != nil {
		extra(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usageError{fmt.Errorf("%s takes one VM id, got %d arguments", name, len(pos))}
	}
	return pos[0], nil
}

func cmdDown(ctx context.Context, g *globals, args []string, stderr io.Writer) error {
	id, err := oneID(g, "down", args, nil)
	if err != nil {
		return err
	}
	m, err := g.manager(stderr)
	if err != nil {
		return err
	}
	return m.Down(ctx, id)
}

func cmdShow(g *globals, args []string, stdout, stderr io.Writer) error {
	var out outputFlags
	id, err := oneID(g, "show", args, out.register)
	if err != nil {
		return err
	}
	if err := out.validate(); err != nil {
		return err
	}
	m, err := g.manager(stderr)
	if err != nil {
		return err
	}
	res, err := m.Show(id)
	if err != nil {
		return err
	}
	return out.print(stdout, res)
}

func cmdList(g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("list")
	g.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{fmt.Errorf("list takes no arguments, got %q", pos)}
	}
	m, err := g.manager(stderr)
	if err != nil {
		return err
	}
	vms, err := m.List()
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, vms)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VM\tPHASE\tNETWORKS\tDEVICES\tADDRESSES")
	for _, v := range vms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.VM, v.Phase, strings.Join(v.Networks, ","), strings.Join(v.Devices, ","), strings.Join(v.Addresses, ","))
	}
	return tw.Flush()
}

func cmdNetworks(g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("networks")
	g.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	m, err := g.manager(stderr)
	if err != nil {
		return err
	}
	nets, err := m.Networks()
	if err != nil {
		return err
	}
	type row struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		Source string `json:"source"`
	}
	rows := []row{}
	for _, n := range nets {
		rows = append(rows, row{n.Name, n.Conf.Type, n.Source})
	}
	if *asJSON {
		return writeJSON(stdout, rows)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tSOURCE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Type, r.Source)
	}
	return tw.Flush()
}

func cmdGC(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gc")
	g.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	dryRun := fs.Bool("dry-run", false, "list only")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{fmt.Errorf("gc takes no arguments, got %q", pos)}
	}
	m, err := g.manager(stderr)
	if err != nil {
		return err
	}
	items, gcErr := m.GC(ctx, *dryRun)
	if *asJSON {
		if err := writeJSON(stdout, items); err != nil {
			return errors.Join(gcErr, err)
		}
		return gcErr
	}
	for _, it := range items {
		fmt.Fprintln(stdout, it.String())
	}
	if len(items) == 0 && gcErr == nil {
		fmt.Fprintln(stdout, "nothing to remove")
	}
	return gcErr
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

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
	if len(res.DNS.Nameservers) > 0 {
		var ns []string
		for _, a := range res.DNS.Nameservers {
			ns = append(ns, a.String())
		}
		fmt.Fprintf(w, "dns %s (from %s)\n", strings.Join(ns, " "), res.DNS.Source)
	}
	return nil
}
