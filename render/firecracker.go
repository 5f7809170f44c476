package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/kvmnet/kvmnet"
)

// FirecrackerConfig is the network part of a Firecracker VM: the entries of
// the "network-interfaces" list of its configuration file (the bodies of
// PUT /network-interfaces/{iface_id}) and the kernel arguments the guest
// needs. BootArgs must be appended to the VM's own boot_args, because
// Firecracker has no API field for the guest's IP configuration or MTU.
type FirecrackerConfig struct {
	NetworkInterfaces []FirecrackerInterface `json:"network-interfaces"`
	BootArgs          string                 `json:"boot_args"`
}

// FirecrackerInterface is one entry of Firecracker's network-interfaces.
type FirecrackerInterface struct {
	// IfaceID is the guest device name, such as eth0.
	IfaceID string `json:"iface_id"`
	// HostDevName is the tap that Firecracker opens by name.
	HostDevName string `json:"host_dev_name"`
	GuestMAC    string `json:"guest_mac"`
}

// Firecracker returns the Firecracker network configuration of r.
//
// Firecracker opens a tap through /dev/net/tun by name with one queue pair
// and without IFF_MULTI_QUEUE (Tap::open_named in its
// src/vmm/src/devices/virtio/net/tap.rs). It therefore cannot attach a
// macvtap, and the kernel rejects its open of a tap created with several
// queues (EINVAL from tun_set_iff). Both cases return an error wrapping
// errors.ErrUnsupported.
func Firecracker(r *kvmnet.Result, opts Options) (*FirecrackerConfig, error) {
	if r == nil {
		return nil, errors.New("result is nil")
	}
	cfg := &FirecrackerConfig{
		NetworkInterfaces: make([]FirecrackerInterface, 0, len(r.Interfaces)),
	}
	for i := range r.Interfaces {
		entry, err := firecrackerInterface(&r.Interfaces[i])
		if err != nil {
			return nil, fmt.Errorf("interface %d: %w", i, err)
		}
		cfg.NetworkInterfaces = append(cfg.NetworkInterfaces, entry)
	}

	bootArgs, err := KernelArgs(r, opts)
	if err != nil {
		return nil, err
	}
	cfg.BootArgs = bootArgs
	return cfg, nil
}

func firecrackerInterface(ifc *kvmnet.Interface) (FirecrackerInterface, error) {
	if ifc.DevicePath != "" {
		return FirecrackerInterface{}, fmt.Errorf("macvtap %q: firecracker opens only tap devices by name, so use a ptp or bridge network: %w", ifc.DevicePath, errors.ErrUnsupported)
	}
	queues, err := queueCount(ifc.Queues)
	if err != nil {
		return FirecrackerInterface{}, err
	}
	if queues > 1 {
		return FirecrackerInterface{}, fmt.Errorf("tap %q has %d queues but firecracker uses one queue pair, so request a single queue: %w", ifc.HostDevice, queues, errors.ErrUnsupported)
	}
	if err := checkLinkName("host device name", ifc.HostDevice); err != nil {
		return FirecrackerInterface{}, err
	}
	if err := checkLinkName("guest device name", ifc.GuestDevice); err != nil {
		return FirecrackerInterface{}, err
	}
	mac, err := parseMAC(ifc.MAC)
	if err != nil {
		return FirecrackerInterface{}, err
	}
	return FirecrackerInterface{
		IfaceID:     ifc.GuestDevice,
		HostDevName: ifc.HostDevice,
		GuestMAC:    mac.String(),
	}, nil
}

// WriteFirecracker writes the configuration of Firecracker as indented JSON:
//
//	{"network-interfaces": [{"iface_id": "eth0", "host_dev_name": "...",
//	  "guest_mac": "..."}], "boot_args": "ip=..."}
func WriteFirecracker(w io.Writer, r *kvmnet.Result, opts Options) error {
	cfg, err := Firecracker(r, opts)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("encode firecracker configuration: %w", err)
	}
	var buf bytes.Buffer
	buf.Write(data)
	buf.WriteByte('\n')
	return flush(w, &buf, "firecracker")
}
