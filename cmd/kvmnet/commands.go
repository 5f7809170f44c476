package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/internal/netconf"
	"github.com/kvmnet/kvmnet/internal/vmid"
)

// manager is the part of *kvmnet.Manager that the commands use, so that
// tests can run them against a fake.
type manager interface {
	Up(ctx context.Context, req kvmnet.UpRequest) (*kvmnet.Result, error)
	Down(ctx context.Context, id string) error
	Show(id string) (*kvmnet.Result, error)
	List() ([]kvmnet.Summary, error)
	Networks() ([]*netconf.Network, error)
	GC(ctx context.Context, dryRun bool) ([]kvmnet.GCItem, error)
}

func openKvmnet(opts kvmnet.Options) (manager, error) {
	m, err := kvmnet.New(opts)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// manager opens the library with the global options. Commands that read
// the net dirs pass readsNetDirs, which checks the dirs the user named.
func (c *cli) manager(g *globals, readsNetDirs bool) (manager, error) {
	if readsNetDirs {
		if err := g.checkNetDirs(); err != nil {
			return nil, err
		}
	}
	return c.openManager(g.options(c.stderr))
}

// oneID parses the flags of a command that takes one VM id and validates
// the id.
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
	if err := vmid.Validate(pos[0]); err != nil {
		return "", usageError{err}
	}
	return pos[0], nil
}

func (c *cli) cmdDown(ctx context.Context, g *globals, args []string) error {
	id, err := oneID(g, "down", args, nil)
	if err != nil {
		return err
	}
	// down works from the state record alone, so a net dir that is gone
	// must not stop it.
	m, err := c.manager(g, false)
	if err != nil {
		return err
	}
	return m.Down(ctx, id)
}

func (c *cli) cmdShow(g *globals, args []string) error {
	var out outputFlags
	id, err := oneID(g, "show", args, out.register)
	if err != nil {
		return err
	}
	if err := out.validate(); err != nil {
		return err
	}
	m, err := c.manager(g, false)
	if err != nil {
		return err
	}
	res, err := m.Show(id)
	if err != nil {
		return err
	}
	return out.print(c.stdout, res)
}

// cmdList prints one line per VM. With no VM it prints only the header, so
// that scripts can parse the output the same way in every case.
func (c *cli) cmdList(g *globals, args []string) error {
	fs := newFlagSet("list")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseNoArgs(fs, g, args); err != nil {
		return err
	}

	m, err := c.manager(g, false)
	if err != nil {
		return err
	}
	vms, err := m.List()
	if err != nil {
		return err
	}

	if *asJSON {
		if vms == nil {
			vms = []kvmnet.Summary{}
		}
		return writeJSON(c.stdout, vms)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VM\tPHASE\tNETWORKS\tDEVICES\tADDRESSES")
	for _, v := range vms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.VM, v.Phase, strings.Join(v.Networks, ","), strings.Join(v.Devices, ","), strings.Join(v.Addresses, ","))
	}
	return tw.Flush()
}

// networkRow is one network in the output of the networks command.
type networkRow struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Source string `json:"source"`
	// Error is the reason the network's config file cannot be used.
	Error string `json:"error,omitempty"`
}

func (c *cli) cmdNetworks(g *globals, args []string) error {
	fs := newFlagSet("networks")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseNoArgs(fs, g, args); err != nil {
		return err
	}

	m, err := c.manager(g, true)
	if err != nil {
		return err
	}
	nets, err := m.Networks()
	if err != nil {
		return err
	}

	rows := []networkRow{}
	invalid := 0
	for _, n := range nets {
		r := networkRow{Name: n.Name, Type: n.Conf.Type, Source: n.Source}
		if n.Err != nil {
			r.Error = n.Err.Error()
			invalid++
		}
		rows = append(rows, r)
	}

	if *asJSON {
		if err := writeJSON(c.stdout, rows); err != nil {
			return err
		}
	} else if err := printNetworks(c.stdout, rows, invalid > 0); err != nil {
		return err
	}
	// A bad file fails only the VMs that use its network, so networks
	// reports it and exits 1 for scripts that check the configs.
	if invalid > 0 {
		return fmt.Errorf("%d of %d network configs are invalid; fix or remove their files", invalid, len(rows))
	}
	return nil
}

// printNetworks writes the networks as a table. The ERROR column is there
// only when a network has an error.
func printNetworks(w io.Writer, rows []networkRow, withErrors bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if withErrors {
		fmt.Fprintln(tw, "NAME\tTYPE\tSOURCE\tERROR")
	} else {
		fmt.Fprintln(tw, "NAME\tTYPE\tSOURCE")
	}
	for _, r := range rows {
		typ := r.Type
		if typ == "" {
			typ = "-"
		}
		if withErrors {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, typ, r.Source, r.Error)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, typ, r.Source)
		}
	}
	return tw.Flush()
}

func (c *cli) cmdGC(ctx context.Context, g *globals, args []string) error {
	fs := newFlagSet("gc")
	asJSON := fs.Bool("json", false, "print JSON")
	dryRun := fs.Bool("dry-run", false, "list only")
	if err := parseNoArgs(fs, g, args); err != nil {
		return err
	}
	m, err := c.manager(g, true)
	if err != nil {
		return err
	}
	items, gcErr := m.GC(ctx, *dryRun)
	if *asJSON {
		if err := writeJSON(c.stdout, items); err != nil {
			return errors.Join(gcErr, err)
		}
		return gcErr
	}
	for _, it := range items {
		fmt.Fprintln(c.stdout, it.String())
	}
	if len(items) == 0 && gcErr == nil {
		fmt.Fprintln(c.stdout, "nothing to remove")
	}
	return gcErr
}

// parseNoArgs parses the flags of a command that takes no positional
// arguments, with the global options registered too.
func parseNoArgs(fs *flag.FlagSet, g *globals, args []string) error {
	g.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q", fs.Name(), pos)}
	}
	return nil
}
