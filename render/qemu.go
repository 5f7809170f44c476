package render

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kvmnet/kvmnet"
)

// firstPassedFD is the first descriptor number after stdin, stdout and
// stderr. exec.Cmd.ExtraFiles entry i becomes descriptor 3+i in the child.
const firstPassedFD = 3

// defaultQemuDevice is the QEMU NIC model used when Options.QemuDevice is
// empty.
const defaultQemuDevice = "virtio-net-pci"

// PassedFile is a character device that the caller opens read-write and
// hands to the hypervisor at descriptor FD, for example with the shell
// redirection 3<>/dev/tap42 or through exec.Cmd.ExtraFiles.
type PassedFile struct {
	// FD is the descriptor number the hypervisor arguments refer to.
	FD int
	// Path is the macvtap character device, such as /dev/tap42.
	Path string
}

// fdAllocator hands out descriptor numbers from 3 upward, in interface
// order, one per queue of each macvtap.
type fdAllocator struct {
	next  int
	files []PassedFile
}

func newFDAllocator() *fdAllocator {
	return &fdAllocator{next: firstPassedFD}
}

// open records that path is opened count times and returns the descriptor
// numbers. A macvtap gives one queue per open of its device.
func (a *fdAllocator) open(path string, count int) []int {
	fds := make([]int, count)
	for i := range fds {
		fds[i] = a.next
		a.files = append(a.files, PassedFile{FD: a.next, Path: path})
		a.next++
	}
	return fds
}

// joinInts formats numbers separated by sep.
func joinInts(numbers []int, sep string) string {
	parts := make([]string, len(numbers))
	for i, n := range numbers {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, sep)
}

// checkQemuDevice returns an error unless model is a device model name that
// needs no quoting in a -device option.
func checkQemuDevice(model string) error {
	if model == "" {
		return errors.New("QEMU device model is empty")
	}
	for i := range len(model) {
		if !isNameByte(model[i]) {
			return fmt.Errorf("invalid QEMU device model %q: only letters, digits, '-', '_' and '.' are allowed", model)
		}
	}
	return nil
}

// QEMUArgs returns the QEMU arguments that attach every interface of r, as
// alternating option and value: "-netdev", "tap,...", "-device", "...".
//
// Interface N gets the netdev id netN. A tap is opened by name
// (ifname=, script=no, downscript=no). A macvtap, which QEMU cannot open by
// name, is passed as descriptors: fd= for one queue, fds= for several. The
// returned files list which device to open at which descriptor, from 3
// upward in interface order, one descriptor per queue. A multiqueue NIC
// gets queues=K on a tap netdev and mq=on on the device, plus
// vectors=2K+2 on PCI models. A tap whose Interface.VnetHdr is false gets
// vnet_hdr=off. host_mtu is set when the MTU is neither 0 nor 1500. Every
// netdev gets vhost=on when Options.VhostNet is set.
func QEMUArgs(r *kvmnet.Result, opts Options) (args []string, files []PassedFile, err error) {
	if r == nil {
		return nil, nil, errors.New("result is nil")
	}
	model := opts.QemuDevice
	if model == "" {
		model = defaultQemuDevice
	}
	if err := checkQemuDevice(model); err != nil {
		return nil, nil, err
	}

	fds := newFDAllocator()
	for i := range r.Interfaces {
		netdev, device, err := qemuInterface(&r.Interfaces[i], i, model, opts.VhostNet, fds)
		if err != nil {
			return nil, nil, fmt.Errorf("interface %d: %w", i, err)
		}
		args = append(args, "-netdev", netdev, "-device", device)
	}
	return args, fds.files, nil
}

// qemuInterface returns the -netdev and -device values of one interface.
func qemuInterface(ifc *kvmnet.Interface, index int, model string, vhost bool, fds *fdAllocator) (netdev, device string, err error) {
	mac, err := parseMAC(ifc.MAC)
	if err != nil {
		return "", "", err
	}
	queues, err := queueCount(ifc.Queues)
	if err != nil {
		return "", "", err
	}
	if err := checkMTU(ifc.MTU); err != nil {
		return "", "", err
	}
	id := "net" + strconv.Itoa(index)

	// QEMU (7.2) rejects ifname=, script=, downscript= and queues= next to
	// fd= or fds=, so a macvtap netdev carries only its descriptors.
	netdevOpts := []string{"tap", "id=" + id}
	switch {
	case ifc.DevicePath != "":
		if err := checkDevicePath(ifc.DevicePath); err != nil {
			return "", "", err
		}
		numbers := fds.open(ifc.DevicePath, queues)
		if queues == 1 {
			netdevOpts = append(netdevOpts, "fd="+strconv.Itoa(numbers[0]))
		} else {
			netdevOpts = append(netdevOpts, "fds="+joinInts(numbers, ":"))
		}
	default:
		if err := checkLinkName("host device name", ifc.HostDevice); err != nil {
			return "", "", err
		}
		netdevOpts = append(netdevOpts, "ifname="+ifc.HostDevice, "script=no", "downscript=no")
		if queues > 1 {
			netdevOpts = append(netdevOpts, "queues="+strconv.Itoa(queues))
		}
		// QEMU (7.2) turns IFF_VNET_HDR on when it opens a tap, also one
		// created without it, unless the netdev says vnet_hdr=off.
		if !ifc.VnetHdr {
			netdevOpts = append(netdevOpts, "vnet_hdr=off")
		}
	}
	if vhost {
		netdevOpts = append(netdevOpts, "vhost=on")
	}

	deviceOpts := []string{model, "netdev=" + id, "mac=" + mac.String()}
	if queues > 1 {
		deviceOpts = append(deviceOpts, "mq=on")
		// vectors is an MSI-X property. QEMU (7.2) rejects it on
		// virtio-net-device (MMIO) and other models without PCI.
		if strings.HasSuffix(model, "-pci") {
			deviceOpts = append(deviceOpts, "vectors="+strconv.Itoa(2*queues+2))
		}
	}
	if ifc.MTU != 0 && ifc.MTU != 1500 {
		deviceOpts = append(deviceOpts, "host_mtu="+strconv.Itoa(ifc.MTU))
	}
	return strings.Join(netdevOpts, ","), strings.Join(deviceOpts, ","), nil
}

// WriteQEMU writes the QEMU arguments of QEMUArgs, one option and its value
// per line ("-netdev tap,id=net0,..."). No value contains whitespace, so
// splitting the output on whitespace gives the argument list. The caller
// must open the files QEMUArgs returns; see the package documentation.
func WriteQEMU(w io.Writer, r *kvmnet.Result, opts Options) error {
	args, _, err := QEMUArgs(r, opts)
	if err != nil {
		return err
	}
	return writeOptionLines(w, args, "qemu")
}
