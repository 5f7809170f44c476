// Command kvmnet gives virtual machines network access from CNI network
// configurations. Run "kvmnet help" for usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/render"
)

const usage = `kvmnet gives virtual machines network access from CNI network configurations.

Usage:
  kvmnet [global options] up VMID [--net SPEC]... [--dns IP]... [--port SPEC]...
         [--tap-owner UID] [--tap-group GID] [--queues N] [--no-vnet-hdr]
         [--json | --format FORMAT [--hostname NAME]]
  kvmnet [global options] down VMID
  kvmnet [global options] list [--json]
  kvmnet [global options] show VMID [--json | --format FORMAT [--hostname NAME]]
  kvmnet [global options] networks [--json]
  kvmnet [global options] gc [--dry-run] [--json]
  kvmnet version

Global options (also accepted after the command):
  --state-dir DIR   state records (env KVMNET_STATE_DIR;
                    default /var/lib/kvmnet)
  --net-dir DIR     CNI config directory, repeatable (env KVMNET_NET_DIR,
                    colon-separated; default /etc/kvmnet/net.d). A directory
                    given here or in the env must exist.
  --cni-path DIRS   colon-separated CNI plugin directories (env CNI_PATH;
                    default /opt/cni/bin:/usr/lib/cni)
  --dev-dir DIR     macvtap device nodes (env KVMNET_DEV_DIR;
                    default /run/kvmnet/dev)
  -v                structured logs on stderr
  --version         print the version and exit

up options:
  --net SPEC        networks, comma-separated and repeatable: default (when none
                    is given), none, all, NAME, NAME:K=V;K2=V2 (CNI args for
                    IPAM, e.g. IP=172.16.28.9)
  --dns IP          guest nameserver, repeatable; replaces the DNS from IPAM
  --port SPEC       forward a host port to the guest, repeatable:
                    [NET:][HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp], ranges
                    8000-8009:80-89, IPv6 host addresses in brackets
                    ([::1]:8080:80); without NET the network with the guest's
                    default route
  --tap-owner UID   uid allowed to open the taps, for an unprivileged hypervisor
  --tap-group GID   gid allowed to open the taps
  --queues N        multiqueue taps with N queues, 1 to 256 (default 1)
  --no-vnet-hdr     create taps without IFF_VNET_HDR

Output options of up and show:
  --json            print the result as JSON (same as --format json)
  --format FORMAT   print the result as one of:
%s
  --hostname NAME   guest host name in the ip= parameter of kernel-args and
                    firecracker; not stored, so give it to show as well

gc options:
  --dry-run         list what gc would remove, remove nothing
  --json            print the removed objects as JSON

Exit status: 0 on success, 1 when the operation failed, 2 for invalid usage.
`

// formatListIndent lines up the format names under the --format help text.
const formatListIndent = "                    "

// usageError marks errors in the command line, which exit with status 2.
type usageError struct{ error }

// cli is one run of the command: where it writes and how it reaches the
// library.
type cli struct {
	stdout, stderr io.Writer
	// openManager returns the manager for opts: kvmnet.New outside tests.
	openManager func(opts kvmnet.Options) (manager, error)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args with the real library and returns the
// exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr, openManager: openKvmnet}
	return c.run(ctx, args)
}

func (c *cli) run(ctx context.Context, args []string) int {
	err := c.dispatch(ctx, args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(c.stdout)
		return 0
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(c.stderr, "kvmnet: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(c.stderr, "Run 'kvmnet help' for usage.")
		return 2
	}
	return 1
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	g := &globals{stateDir: os.Getenv("KVMNET_STATE_DIR"), cniPath: os.Getenv("CNI_PATH"), devDir: os.Getenv("KVMNET_DEV_DIR")}
	pre := newFlagSet("kvmnet")
	g.register(pre)
	showVersion := pre.Bool("version", false, "print the version")
	if err := pre.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(c.stdout)
			return nil
		}
		return flagError(err)
	}
	if *showVersion {
		printVersion(c.stdout)
		return nil
	}
	rest := pre.Args()
	if len(rest) == 0 {
		printUsage(c.stderr)
		return usageError{errors.New("missing command")}
	}

	command, rest := rest[0], rest[1:]
	switch command {
	case "help", "-h", "--help":
		printUsage(c.stdout)
		return nil
	case "version":
		if len(rest) != 0 {
			return usageError{fmt.Errorf("version takes no arguments, got %q", rest)}
		}
		printVersion(c.stdout)
		return nil
	case "up":
		return c.cmdUp(ctx, g, rest)
	case "down":
		return c.cmdDown(ctx, g, rest)
	case "list":
		return c.cmdList(g, rest)
	case "show":
		return c.cmdShow(g, rest)
	case "networks":
		return c.cmdNetworks(g, rest)
	case "gc":
		return c.cmdGC(ctx, g, rest)
	}
	return usageError{fmt.Errorf("unknown command %q; use up, down, list, show, networks, gc or version", command)}
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, usage, wrapWords(render.Formats(), formatListIndent, 80))
}

// wrapWords joins words with ", " into lines that start with indent and
// end before width bytes, unless a single word is longer.
func wrapWords(words []string, indent string, width int) string {
	var lines []string
	line := indent
	for i, word := range words {
		if i < len(words)-1 {
			word += ","
		}
		if line != indent && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += word
	}
	return strings.Join(append(lines, line), "\n")
}

// moduleVersion returns the version of the kvmnet module that the binary
// was built from, or "devel" when the build recorded none, as in a build
// from a work tree without version control information.
func moduleVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Version == "" || info.Main.Version == "(devel)" {
		return "devel"
	}
	return info.Main.Version
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "kvmnet %s\n", moduleVersion())
}
