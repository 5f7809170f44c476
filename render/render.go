package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kvmnet/kvmnet"
)

// ErrUnknownFormat is returned by Render for a format name that Formats
// does not list.
var ErrUnknownFormat = errors.New("unknown output format")

// Options are the settings a Result alone does not carry. The zero value is
// valid.
type Options struct {
	// VhostNet adds vhost=on to every QEMU tap netdev and vhost=1 to every
	// kvmtool NIC. Set it only when /dev/vhost-net exists: QEMU aborts at
	// start-up when vhost=on is given and the device is missing.
	VhostNet bool
	// QemuDevice is the QEMU NIC device model. Empty means virtio-net-pci.
	// Use virtio-net-device for -machine microvm without PCI. The MSI-X
	// vectors property is emitted only for models whose name ends in -pci.
	QemuDevice string
	// Hostname is the guest host name written into the kernel ip= parameter.
	// Optional.
	Hostname string
}

// Validate returns an error for an option value that every format would
// reject: a host name with other bytes than letters, digits, '-' and '.' or
// longer than 64 bytes, or a QEMU device model that needs quoting. Callers
// use it to check options before they create what they render.
func (o Options) Validate() error {
	if err := checkHostname(o.Hostname); err != nil {
		return err
	}
	if o.QemuDevice != "" {
		return checkQemuDevice(o.QemuDevice)
	}
	return nil
}

// format is one entry of the table that Render and Formats share.
type format struct {
	name  string
	write func(w io.Writer, r *kvmnet.Result, opts Options) error
}

// formats returns the output formats in the order Formats lists them.
func formats() []format {
	return []format{
		{"json", func(w io.Writer, r *kvmnet.Result, _ Options) error { return WriteJSON(w, r) }},
		{"qemu", WriteQEMU},
		{"firecracker", WriteFirecracker},
		{"cloud-hypervisor", WriteCloudHypervisor},
		{"lkvm", WriteLKVM},
		{"kernel-args", WriteKernelArgs},
		{"networkd", WriteNetworkd},
		{"cloud-init", WriteCloudInit},
		{"resolv.conf", func(w io.Writer, r *kvmnet.Result, _ Options) error { return WriteResolvConf(w, r) }},
	}
}

// Formats returns the names of the output formats Render accepts.
func Formats() []string {
	table := formats()
	names := make([]string, len(table))
	for i, f := range table {
		names[i] = f.name
	}
	return names
}

// Render writes r to w in the named format. Nothing is written when an
// error is returned, because the output is built in memory first. An
// unknown format gives an error wrapping ErrUnknownFormat that lists the
// valid names. A hypervisor that cannot attach one of r's devices gives an
// error wrapping errors.ErrUnsupported.
func Render(w io.Writer, name string, r *kvmnet.Result, opts Options) error {
	var selected *format
	table := formats()
	for i := range table {
		if table[i].name == name {
			selected = &table[i]
			break
		}
	}
	if selected == nil {
		return fmt.Errorf("%w %q: valid formats are %s", ErrUnknownFormat, name, strings.Join(Formats(), ", "))
	}
	if r == nil {
		return fmt.Errorf("render %s: result is nil", name)
	}

	if err := selected.write(w, r, opts); err != nil {
		return fmt.Errorf("render %s for vm %q: %w", name, r.VM, err)
	}
	return nil
}

// flush writes the completed output in one call, so that a failed render
// leaves nothing half-written behind.
func flush(w io.Writer, buf *bytes.Buffer, format string) error {
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write %s output: %w", format, err)
	}
	return nil
}

// writeOptionLines writes args, which alternate between an option and its
// value, as one "option value" pair per line.
func writeOptionLines(w io.Writer, args []string, format string) error {
	var buf bytes.Buffer
	for i := 0; i+1 < len(args); i += 2 {
		buf.WriteString(args[i])
		buf.WriteByte(' ')
		buf.WriteString(args[i+1])
		buf.WriteByte('\n')
	}
	return flush(w, &buf, format)
}
