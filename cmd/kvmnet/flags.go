package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kvmnet/kvmnet"
)

// maxID is the largest uid or gid that --tap-owner and --tap-group accept:
// uid_t is 32 bits wide and (uid_t)-1 means "no change" to the kernel.
const maxID = 1<<32 - 2

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

// intFlag is an integer option that accepts only values from min to max,
// so that the parse error names the range.
type intFlag struct {
	value    int
	min, max int
}

func (f *intFlag) String() string { return strconv.Itoa(f.value) }

func (f *intFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min || n > f.max {
		return fmt.Errorf("want a whole number from %d to %d", f.min, f.max)
	}
	f.value = n
	return nil
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.stateDir, "state-dir", g.stateDir, "state directory")
	fs.Var(&g.netDirs, "net-dir", "CNI config directory (repeatable)")
	fs.StringVar(&g.cniPath, "cni-path", g.cniPath, "CNI plugin directories")
	fs.StringVar(&g.devDir, "dev-dir", g.devDir, "macvtap device node directory")
	fs.BoolVar(&g.verbose, "v", g.verbose, "structured logs on stderr")
}

// netDirSource returns the net dirs the user named, with the option or
// variable they came from, or no dirs when the default applies.
func (g *globals) netDirSource() (dirs []string, source string) {
	if len(g.netDirs) > 0 {
		return g.netDirs, "--net-dir"
	}
	if env := os.Getenv("KVMNET_NET_DIR"); env != "" {
		return filepath.SplitList(env), "KVMNET_NET_DIR"
	}
	return nil, ""
}

// checkNetDirs returns a usage error for a net dir that the user named and
// that is empty, missing or not a directory, because a misspelled dir would
// otherwise only show up as an unknown network. The default dir may be
// missing.
func (g *globals) checkNetDirs() error {
	dirs, source := g.netDirSource()
	for _, dir := range dirs {
		if dir == "" {
			return usageError{fmt.Errorf("invalid %s: empty directory name", source)}
		}
		info, err := os.Stat(dir)
		if errors.Is(err, os.ErrNotExist) {
			return usageError{fmt.Errorf("net dir %s (from %s) not found; create it or correct the path", dir, source)}
		}
		if err != nil {
			return fmt.Errorf("check net dir %s (from %s): %w", dir, source, err)
		}
		if !info.IsDir() {
			return usageError{fmt.Errorf("net dir %s (from %s) is not a directory", dir, source)}
		}
	}
	return nil
}

// options returns the library options of the global flags.
func (g *globals) options(stderr io.Writer) kvmnet.Options {
	opts := kvmnet.Options{StateDir: g.stateDir, DevDir: g.devDir}
	opts.NetDirs, _ = g.netDirSource()
	if g.cniPath != "" {
		opts.CNIPath = filepath.SplitList(g.cniPath)
	}
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return opts
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
			return nil, flagError(err)
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

// flagError turns an error of the flag package into a usage error that
// spells options as the help text does (--name, and -v for one letter).
// The flag package has no error types, so its messages are matched by
// their fixed prefixes. A message that matches none is kept as it is.
func flagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return usageError{fmt.Errorf("unknown option %s", dashed(name))}
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return usageError{fmt.Errorf("missing value for %s", dashed(name))}
	}
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if value, name, reason, ok := splitValueError(rest, " for flag -"); ok {
			return usageError{fmt.Errorf("invalid %s %q: %s", dashed(name), value, reason)}
		}
	}
	if rest, ok := strings.CutPrefix(msg, "invalid boolean value "); ok {
		if value, name, _, ok := splitValueError(rest, " for -"); ok {
			return usageError{fmt.Errorf("invalid %s %q: want true or false", dashed(name), value)}
		}
	}
	return usageError{err}
}

// splitValueError splits `"VALUE"<sep>NAME: REASON` from a flag package
// message into its parts.
func splitValueError(s, sep string) (value, name, reason string, ok bool) {
	quoted, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", "", false
	}
	value, err = strconv.Unquote(quoted)
	if err != nil {
		return "", "", "", false
	}
	rest, ok := strings.CutPrefix(s[len(quoted):], sep)
	if !ok {
		return "", "", "", false
	}
	name, reason, ok = strings.Cut(rest, ": ")
	return value, name, reason, ok
}

// dashed returns the option name as the help text spells it.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}
