package kvmnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/kvmnet/kvmnet/internal/netconf"
	"github.com/kvmnet/kvmnet/internal/state"
	"github.com/kvmnet/kvmnet/internal/vmid"
)

// Defaults for Options.
const (
	DefaultStateDir = "/var/lib/kvmnet"
	DefaultNetDir   = "/etc/kvmnet/net.d"
	DefaultDevDir   = "/run/kvmnet/dev"
)

// DefaultCNIPath is used when neither Options.CNIPath nor $CNI_PATH is set.
var DefaultCNIPath = []string{"/opt/cni/bin", "/usr/lib/cni"}

// Options configure a Manager.
type Options struct {
	// StateDir holds the state records. Default DefaultStateDir.
	StateDir string
	// NetDirs are searched for .conf and .conflist files. Default DefaultNetDir.
	NetDirs []string
	// CNIPath lists the directories searched for CNI plugins. Default
	// $CNI_PATH, else DefaultCNIPath.
	CNIPath []string
	// DevDir holds the character device nodes of macvtaps, readable by the
	// tap owner, so that a hypervisor opens them by path. Default DefaultDevDir.
	DevDir string
	// Logger receives decisions and ignored failures. Default: discard.
	Logger *slog.Logger
}

// Manager brings the networks of VMs up and down. Its methods are safe for
// concurrent use, also across processes sharing one state dir.
type Manager struct {
	opts  Options
	store *state.Store
	log   *slog.Logger
}

// New returns a Manager. It creates the state dir if needed.
func New(opts Options) (*Manager, error) {
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if len(opts.NetDirs) == 0 {
		opts.NetDirs = []string{DefaultNetDir}
	}
	if opts.DevDir == "" {
		opts.DevDir = DefaultDevDir
	}
	if len(opts.CNIPath) == 0 {
		if env := os.Getenv("CNI_PATH"); env != "" {
			opts.CNIPath = filepath.SplitList(env)
		} else {
			opts.CNIPath = DefaultCNIPath
		}
	}
	for _, dir := range opts.CNIPath {
		if !filepath.IsAbs(dir) {
			return nil, fmt.Errorf("invalid CNI path entry %q: must be an absolute directory", dir)
		}
	}
	// Records keep paths, so relative ones are resolved once, here.
	for _, dir := range append([]*string{&opts.StateDir, &opts.DevDir}, pointers(opts.NetDirs)...) {
		abs, err := filepath.Abs(*dir)
		if err != nil {
			return nil, fmt.Errorf("resolve directory %q: %w", *dir, err)
		}
		*dir = abs
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	store, err := state.Open(opts.StateDir)
	if err != nil {
		return nil, err
	}
	return &Manager{opts: opts, store: store, log: opts.Logger}, nil
}

// ipamDataDir holds the host-local reservations of the built-in networks.
func (m *Manager) ipamDataDir() string { return filepath.Join(m.opts.StateDir, "ipam") }

// devDir holds the macvtap device nodes.
func (m *Manager) devDir() string { return m.opts.DevDir }

// Networks returns every configured network: files in the net dirs, in
// order, then the built-ins no file overrides.
func (m *Manager) Networks() ([]*netconf.Network, error) {
	_, all, err := netconf.Load(m.opts.NetDirs, m.ipamDataDir())
	return all, err
}

// UpRequest describes the networks of one VM.
type UpRequest struct {
	// VM is the VM id: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 200 bytes.
	VM string
	// Nets are --net values in rkt's syntax; empty means "default".
	Nets []string
	// DNS replaces the nameservers from IPAM when set.
	DNS []netip.Addr
	// TapOwner and TapGroup are the uid and gid that may open the taps, so
	// an unprivileged hypervisor can use them. By default only root can.
	TapOwner, TapGroup int
	// Queues > 1 creates multiqueue taps with that many queues.
	Queues int
	// NoVnetHdr creates taps without IFF_VNET_HDR.
	NoVnetHdr bool
	// Ports are forwarded ports, "[NET:][HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp]"
	// or ranges "8000-8009:80-89". Without NET the port goes to the network
	// that carries the guest's default route.
	Ports []string
}

// Summary is one line of List.
type Summary struct {
	VM        string   `json:"vm"`
	Phase     string   `json:"phase"`
	Networks  []string `json:"networks"`
	Devices   []string `json:"devices"`
	Addresses []string `json:"addresses"`
}

// List returns a summary of every VM with a state record.
func (m *Manager) List() ([]Summary, error) {
	ids, err := m.store.List()
	if err != nil {
		return nil, err
	}
	out := []Summary{}
	for _, id := range ids {
		rec, err := m.store.Load(id)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			out = append(out, Summary{VM: id, Phase: "corrupt: " + err.Error()})
			continue
		}
		s := Summary{VM: id, Phase: rec.Phase, Networks: []string{}, Devices: []string{}, Addresses: []string{}}
		for _, a := range rec.Attachments {
			s.Networks = append(s.Networks, a.Network)
			s.Devices = append(s.Devices, a.HostDevice)
		}
		if res, err := decodeResult(rec); err == nil && res != nil {
			for _, ifc := range res.Interfaces {
				for _, p := range ifc.Addresses {
					s.Addresses = append(s.Addresses, p.String())
				}
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// Show returns the result of a VM that is up.
func (m *Manager) Show(id string) (*Result, error) {
	rec, err := m.store.Load(id)
	if err != nil {
		return nil, err
	}
	if rec.Phase != state.PhaseUp {
		return nil, fmt.Errorf("vm %s is not up (phase %s); run kvmnet down %s to clean up", id, rec.Phase, id)
	}
	return decodeResult(rec)
}

func decodeResult(rec *state.Record) (*Result, error) {
	if len(rec.Result) == 0 {
		return nil, nil
	}
	var res Result
	if err := json.Unmarshal(rec.Result, &res); err != nil {
		return nil, fmt.Errorf("decode result of vm %s: %w", rec.VM, err)
	}
	return &res, nil
}

// validateRequest checks everything about req that needs no kernel call.
func validateRequest(req *UpRequest) error {
	if err := vmid.Validate(req.VM); err != nil {
		return err
	}
	for name, id := range map[string]int{"tap owner": req.TapOwner, "tap group": req.TapGroup} {
		if id > 4294967294 {
			return fmt.Errorf("invalid %s %d: uids and gids are 0 to 4294967294", name, id)
		}
	}
	if req.Queues < 0 || req.Queues > 256 {
		return fmt.Errorf("invalid queue count %d: use 1 to 256", req.Queues)
	}
	for _, a := range req.DNS {
		if !a.IsValid() {
			return fmt.Errorf("invalid DNS server address")
		}
	}
	return nil
}

// pointers returns a pointer to each element of list.
func pointers(list []string) []*string {
	out := make([]*string, len(list))
	for i := range list {
		out[i] = &list[i]
	}
	return out
}
