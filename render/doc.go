// Package render turns a kvmnet.Result into what a hypervisor or a guest
// needs: command-line arguments, API configuration, kernel parameters and
// guest network files. Render selects a format by name. Each format also
// has its own Write function, and most have one that returns data instead
// of text (QEMUArgs, Firecracker, KernelArgs, NetworkdFiles, ...).
//
// # Formats
//
//   - json: the Result as indented JSON, with the keys of kvmnet.Result.
//   - qemu: "-netdev tap,..." and "-device virtio-net-pci,..." arguments,
//     one option and its value per line. A tap made without IFF_VNET_HDR
//     gets vnet_hdr=off, because QEMU would turn the flag on.
//   - firecracker: {"network-interfaces": [...], "boot_args": "..."}, the
//     interface entries of Firecracker's configuration file plus the kernel
//     parameters of kernel-args, which the caller appends to its own
//     boot_args.
//   - cloud-hypervisor: "--net tap=<dev>,mac=<mac>,mtu=<mtu>" arguments, one
//     per line.
//   - lkvm: kvmtool "--network mode=tap,tapif=<dev>,guest_mac=<mac>"
//     arguments, one per line.
//   - kernel-args: the guest kernel parameters described below, on one line.
//   - networkd: one systemd-networkd .network file per NIC, each after a
//     "# <file name>" comment line.
//   - cloud-init: network-config version 2 YAML.
//   - resolv.conf: the DNS settings as resolv.conf text, or the comment
//     line "# no DNS settings" when there are none.
//
// The argument formats never put whitespace inside a value, so splitting
// their output on whitespace gives the argument list. Names, paths and DNS
// strings that would need quoting in any format (separators, quotes,
// whitespace, control characters) are rejected with an error that names
// the interface and the value.
//
// # Macvtap descriptors
//
// QEMU and Cloud Hypervisor cannot open a macvtap by name, so a macvtap
// interface (Interface.DevicePath set) is passed to them as open file
// descriptors. Descriptors are numbered from 3 upward in interface order,
// one per queue, and the caller opens DevicePath read-write once for each:
// for a single macvtap at /dev/tap42 with one queue that is "3<>/dev/tap42"
// in a shell, or exec.Cmd.ExtraFiles[0]. QEMUArgs and CloudHypervisorArgs
// return the list. kvmtool opens the device itself (tapif=/dev/tap42).
// Firecracker cannot use a macvtap at all.
//
// # Kernel parameters
//
// The first interface with an IPv4 address gets the kernel's own parameter
//
//	ip=<client>::<gw>:<netmask>:<hostname>:<device>:off:<dns0>:<dns1>
//
// with the gateway of the interface's IPv4 default route (empty when it has
// none), the host name from Options.Hostname (may be empty) and up to two
// IPv4 DNS servers. Empty DNS fields at the end are left out. Every further
// interface with an IPv4 address gets
//
//	kvmnet.ip=<client>::<gw>:<netmask>::<device>:off
//
// in the same syntax, without host name and DNS. Each IPv6 address gets
//
//	kvmnet.ip6=<device>:<address>/<prefix length>[:<gw>]
//
// where the gateway, that of the interface's IPv6 default route, is left
// out with its colon when there is none. Every other route, such as a
// subnet behind a router or an on-link default route, gets
//
//	kvmnet.route=<device>:<destination>/<prefix length>[:<gw>]
//
// where a route without gateway is on-link. An MTU other than 1500 gets
// kvmnet.mtu=<device>:<mtu>. The test guest's init (guest/init) reads all
// of these. A kernel with CONFIG_IP_PNP configures the ip= interface
// itself and, like any kernel, ignores the kvmnet.* parameters and keeps
// them from init's arguments and environment, because their names contain
// a dot. A stock guest therefore needs networkd or cloud-init for a second
// NIC, IPv6, routes other than the default route and the MTU.
//
// NOTE: kernel-args carries only the first IPv4 address of each interface.
// Further IPv4 addresses, more than two DNS servers, IPv6 DNS servers,
// search domains and resolver options need one of the file formats.
package render
