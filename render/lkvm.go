package render

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kvmnet/kvmnet"
)

// LKVMArgs returns the kvmtool (lkvm run) arguments that attach every
// interface of r, as alternating "--network" and value:
// mode=tap,tapif=<device>,guest_mac=<mac>, plus vhost=1 when
// Options.VhostNet is set. The behavior described here is that of
// virtio/net.c in kvmtool.
//
// For a macvtap, tapif= names the character device (/dev/tap42), because
// kvmtool opens a tapif value that starts with '/' as a macvtap device and
// any other value as a tap by name. kvmtool runs no ifup script by default
// (script=none) and leaves a named tap unconfigured. It has no MTU option,
// so the guest takes its MTU from the kernel arguments.
//
// kvmtool opens a tap without IFF_MULTI_QUEUE, which the kernel rejects for
// a tap created with several queues. That case returns an error wrapping
// errors.ErrUnsupported. A multiqueue macvtap is attached through one of
// its queues.
func LKVMArgs(r *kvmnet.Result, opts Options) ([]string, error) {
	if r == nil {
		return nil, errors.New("result is nil")
	}
	var args []string
	for i := range r.Interfaces {
		value, err := lkvmNetwork(&r.Interfaces[i], opts.VhostNet)
		if err != nil {
			return nil, fmt.Errorf("interface %d: %w", i, err)
		}
		args = append(args, "--network", value)
	}
	return args, nil
}

func lkvmNetwork(ifc *kvmnet.Interface, vhost bool) (string, error) {
	mac, err := parseMAC(ifc.MAC)
	if err != nil {
		return "", err
	}
	queues, err := queueCount(ifc.Queues)
	if err != nil {
		return "", err
	}

	var device string
	if ifc.DevicePath != "" {
		if err := checkDevicePath(ifc.DevicePath); err != nil {
			return "", err
		}
		device = ifc.DevicePath
	} else {
		if err := checkLinkName("host device name", ifc.HostDevice); err != nil {
			return "", err
		}
		if queues > 1 {
			return "", fmt.Errorf("tap %q has %d queues but kvmtool opens taps without multiqueue support, so request a single queue: %w", ifc.HostDevice, queues, errors.ErrUnsupported)
		}
		device = ifc.HostDevice
	}

	fields := []string{"mode=tap", "tapif=" + device, "guest_mac=" + mac.String()}
	if vhost {
		fields = append(fields, "vhost=1")
	}
	return strings.Join(fields, ","), nil
}

// WriteLKVM writes the arguments of LKVMArgs, one "--network value" pair
// per line. No value contains whitespace.
func WriteLKVM(w io.Writer, r *kvmnet.Result, opts Options) error {
	args, err := LKVMArgs(r, opts)
	if err != nil {
		return err
	}
	return writeOptionLines(w, args, "lkvm")
}
