package ipam

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// MaxPluginOutput bounds what kvmnet reads of a plugin's stdout and stderr,
// in bytes. A CNI result takes a few KiB, so a plugin that writes more is
// broken.
const MaxPluginOutput = 1 << 20

// errTooLarge is returned by limitedBuffer once the bound is passed.
var errTooLarge = errors.New("output larger than the limit")

// limitedBuffer keeps at most max bytes and fails the write after that, so
// a plugin that writes without end cannot exhaust kvmnet's memory.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
	// exceeded is set once a write would have passed max.
	exceeded bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.max {
		b.exceeded = true
		return 0, errTooLarge
	}
	return b.buf.Write(p)
}

// pluginExec runs IPAM plugins for libcni's invoke package like its RawExec,
// but with bounded output. The plugin binary runs directly, with no shell,
// and only from the CNI path (FindInPath).
type pluginExec struct {
	version.PluginDecoder
}

func (*pluginExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (*pluginExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	stdout := &limitedBuffer{max: MaxPluginOutput}
	stderr := &limitedBuffer{max: MaxPluginOutput}
	cmd := exec.CommandContext(ctx, pluginPath)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	if stdout.exceeded || stderr.exceeded {
		return nil, fmt.Errorf("plugin %s wrote more than %d bytes; kvmnet reads at most that much", pluginPath, MaxPluginOutput)
	}
	if err != nil {
		return nil, pluginError(err, stdout.buf.Bytes(), stderr.buf.Bytes())
	}
	return stdout.buf.Bytes(), nil
}

// pluginError turns a failed plugin run into the CNI error the plugin
// printed, or a message with its stderr, as libcni does.
func pluginError(err error, stdout, stderr []byte) error {
	var cniErr types.Error
	switch {
	case len(stdout) == 0 && len(stderr) == 0:
		cniErr.Msg = fmt.Sprintf("plugin failed with no error message: %v", err)
	case len(stdout) == 0:
		cniErr.Msg = fmt.Sprintf("plugin failed: %q", stderr)
	default:
		if perr := json.Unmarshal(stdout, &cniErr); perr != nil {
			cniErr = types.Error{Msg: fmt.Sprintf("plugin failed and its error message %q is not CNI JSON: %v", stdout, perr)}
		}
	}
	return &cniErr
}
