package render

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kvmnet/kvmnet"
)

// CloudHypervisorArgs returns the Cloud Hypervisor arguments that attach
// every interface of r, as alternating "--net" and value.
//
// A tap is named with tap=, which makes Cloud Hypervisor open the existing
// device and leave its addresses alone (net_util/src/open_tap.rs). ip= and
// mask= apply only to taps it creates itself, so they are never emitted.
//
// A macvtap is passed as descriptors, fd=[3,4,...], one per queue, with the
// same numbering as QEMUArgs. The returned files list which device to open
// at which descriptor.
//
// num_queues counts receive and transmit queues together, so a NIC with K
// queue pairs gets num_queues=2K. It is left out for K=1, which is Cloud
// Hypervisor's default. mtu= is set whenever the MTU is known. Cloud
// Hypervisor has no vhost-net backend, so Options.VhostNet is ignored.
func CloudHypervisorArgs(r *kvmnet.Result, opts Options) (args []string, files []PassedFile, err error) {
	if r == nil {
		return nil, nil, errors.New("result is nil")
	}
	fds := newFDAllocator()
	for i := range r.Interfaces {
		value, err := cloudHypervisorNet(&r.Interfaces[i], fds)
		if err != nil {
			return nil, nil, fmt.Errorf("interface %d: %w", i, err)
		}
		args = append(args, "--net", value)
	}
	return args, fds.files, nil
}

func cloudHypervisorNet(ifc *kvmnet.Interface, fds *fdAllocator) (string, error) {
	mac, err := parseMAC(ifc.MAC)
	if err != nil {
		return "", err
	}
	queues, err := queueCount(ifc.Queues)
	if err != nil {
		return "", err
	}
	if err := checkMTU(ifc.MTU); err != nil {
		return "", err
	}

	var fields []string
	if ifc.DevicePath != "" {
		if err := checkDevicePath(ifc.DevicePath); err != nil {
			return "", err
		}
		fields = append(fields, "fd=["+joinInts(fds.open(ifc.DevicePath, queues), ",")+"]")
	} else {
		if err := checkLinkName("host device name", ifc.HostDevice); err != nil {
			return "", err
		}
		fields = append(fields, "tap="+ifc.HostDevice)
	}
	fields = append(fields, "mac="+mac.String())
	if ifc.MTU != 0 {
		fields = append(fields, "mtu="+strconv.Itoa(ifc.MTU))
	}
	if queues > 1 {
		fields = append(fields, "num_queues="+strconv.Itoa(2*queues))
	}
	return strings.Join(fields, ","), nil
}

// WriteCloudHypervisor writes the arguments of CloudHypervisorArgs, one
// "--net value" pair per line. No value contains whitespace.
func WriteCloudHypervisor(w io.Writer, r *kvmnet.Result, opts Options) error {
	args, _, err := CloudHypervisorArgs(r, opts)
	if err != nil {
		return err
	}
	return writeOptionLines(w, args, "cloud-hypervisor")
}
