// Package ipam calls a network's CNI IPAM plugin (host-local, static, dhcp,
// ...) the way a CNI plugin delegates to it, through libcni's invoke package,
// so that reservations are shared with every other CNI user on the host.
package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"

	"github.com/kvmnet/kvmnet/internal/cniresult"
)

// Request names one reservation: the network config, the VM id as CNI
// container id and the guest interface name.
type Request struct {
	// Config is the network's plugin config; its ipam section selects the plugin.
	Config []byte
	// PluginType is the IPAM plugin name from the config.
	PluginType string
	// ContainerID is the VM id.
	ContainerID string
	// IfName is the guest interface name, eth0 for the first attachment.
	IfName string
	// Args are CNI args such as IP=172.16.28.9.
	Args [][2]string
	// NetNS is passed as CNI_NETNS. IPAM plugins do not enter it.
	NetNS string
	// Path is the list of directories searched for the plugin.
	Path []string
	// Timeout bounds one plugin call; DefaultTimeout when zero. A plugin
	// still running then is killed.
	Timeout time.Duration
}

// ErrTimeout is wrapped by the error of a plugin call that ran out of time.
var ErrTimeout = errors.New("timed out")

// DefaultTimeout bounds a plugin call whose Request sets no Timeout.
const DefaultTimeout = 30 * time.Second

// withTimeout returns ctx bounded by the request's timeout.
func (r Request) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return context.WithTimeout(ctx, timeout)
}

// timedOut adds the timeout to err when the call ran out of time.
func (r Request) timedOut(callCtx context.Context, err error) error {
	if errors.Is(callCtx.Err(), context.DeadlineExceeded) {
		timeout := r.Timeout
		if timeout <= 0 {
			timeout = DefaultTimeout
		}
		return fmt.Errorf("%w after %s, plugin killed: %w", ErrTimeout, timeout, err)
	}
	return err
}

// pluginArgs adds CNI_NETNS_OVERRIDE to the environment: a VM has no network
// namespace of its own, and plugins built with libcni 1.2 or later reject a
// CNI_NETNS equal to their own namespace unless the override is set.
type pluginArgs struct{ *invoke.Args }

func (a pluginArgs) AsEnv() []string {
	return append(a.Args.AsEnv(), "CNI_NETNS_OVERRIDE=1")
}

func (r Request) args(command string) invoke.CNIArgs {
	args := &invoke.Args{
		Command:     command,
		ContainerID: r.ContainerID,
		NetNS:       r.NetNS,
		IfName:      r.IfName,
		Path:        strings.Join(r.Path, ":"),
	}
	if len(r.Args) > 0 {
		args.PluginArgs = append([][2]string{{"IgnoreUnknown", "1"}}, r.Args...)
	}
	return pluginArgs{args}
}

func (r Request) plugin() (string, error) {
	path, err := invoke.FindInPath(r.PluginType, r.Path)
	if err != nil {
		return "", fmt.Errorf("IPAM plugin %q not found in CNI path %s; install it or set --cni-path",
			r.PluginType, strings.Join(r.Path, ":"))
	}
	return path, nil
}

// Add reserves addresses and returns the raw plugin output and its parsed
// form. When the output cannot be used, Add releases the reservation again.
func Add(ctx context.Context, r Request) (json.RawMessage, cniresult.Result, error) {
	plugin, err := r.plugin()
	if err != nil {
		return nil, cniresult.Result{}, err
	}
	callCtx, cancel := r.withTimeout(ctx)
	res, err := invoke.ExecPluginWithResult(callCtx, plugin, r.Config, r.args("ADD"), &pluginExec{})
	cancel()
	if err != nil {
		return nil, cniresult.Result{}, fmt.Errorf("IPAM plugin %s ADD for %s: %w", r.PluginType, r.ContainerID, r.timedOut(callCtx, err))
	}
	parsed, err := cniresult.FromTypes(res)
	if err == nil {
		err = parsed.Validate()
	}
	var raw []byte
	if err == nil {
		raw, err = json.Marshal(res)
	}
	if err != nil {
		delErr := Del(ctx, r)
		if delErr != nil {
			return nil, cniresult.Result{}, fmt.Errorf("IPAM plugin %s ADD for %s returned an unusable result: %w (releasing it also failed: %v)", r.PluginType, r.ContainerID, err, delErr)
		}
		return nil, cniresult.Result{}, fmt.Errorf("IPAM plugin %s ADD for %s returned an unusable result, released it: %w", r.PluginType, r.ContainerID, err)
	}
	return raw, parsed, nil
}

// Del releases the reservation. Plugins treat releasing what is not held as
// success, so Del can run any number of times.
func Del(ctx context.Context, r Request) error {
	plugin, err := r.plugin()
	if err != nil {
		return err
	}
	callCtx, cancel := r.withTimeout(ctx)
	defer cancel()
	if err := invoke.ExecPluginWithoutResult(callCtx, plugin, r.Config, r.args("DEL"), &pluginExec{}); err != nil {
		return fmt.Errorf("IPAM plugin %s DEL for %s: %w", r.PluginType, r.ContainerID, r.timedOut(callCtx, err))
	}
	return nil
}
