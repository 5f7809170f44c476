package render

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/kvmnet/kvmnet"
)

// maxKernelDNS is the number of DNS servers the kernel ip= parameter accepts.
const maxKernelDNS = 2

// KernelArgs returns the guest kernel command-line parameters that
// configure the network of r, separated by single spaces, or "" when there
// is nothing to configure. The syntax is described in the package
// documentation.
func KernelArgs(r *kvmnet.Result, opts Options) (string, error) {
	if r == nil {
		return "", errors.New("result is nil")
	}
	if err := checkGuest(r, opts); err != nil {
		return "", err
	}

	var args []string
	first := true
	for i := range r.Interfaces {
		ifc := &r.Interfaces[i]

		if client, ok := firstAddress(ifc, true); ok {
			if first {
				args = append(args, "ip="+ipParameter(ifc, client, opts.Hostname, kernelDNS(r.DNS)))
				first = false
			} else {
				args = append(args, "kvmnet.ip="+ipParameter(ifc, client, "", nil))
			}
		}

		gw6 := defaultGateway(ifc, 6)
		for _, p := range ifc.Addresses {
			if p.Addr().Is4() {
				continue
			}
			value := ifc.GuestDevice + ":" + p.String()
			if gw6.IsValid() {
				value += ":" + gw6.String()
			}
			args = append(args, "kvmnet.ip6="+value)
		}

		for _, rt := range ifc.Routes {
			if carriedByAddress(ifc, rt) {
				continue
			}
			value := ifc.GuestDevice + ":" + rt.Dst.Masked().String()
			if rt.GW.IsValid() {
				value += ":" + rt.GW.String()
			}
			args = append(args, "kvmnet.route="+value)
		}

		if ifc.MTU != 0 && ifc.MTU != 1500 {
			args = append(args, "kvmnet.mtu="+ifc.GuestDevice+":"+strconv.Itoa(ifc.MTU))
		}
	}
	return strings.Join(args, " "), nil
}

// carriedByAddress reports whether the ip=, kvmnet.ip= or kvmnet.ip6=
// parameter of ifc already sets rt: a default route via the gateway that
// defaultGateway picks, on an interface with an address of its family.
// Every other route needs its own kvmnet.route= parameter.
func carriedByAddress(ifc *kvmnet.Interface, rt kvmnet.Route) bool {
	if rt.Dst.Bits() != 0 || !rt.GW.IsValid() {
		return false
	}
	v4 := rt.Dst.Addr().Is4()
	family := 6
	if v4 {
		family = 4
	}
	if rt.GW != defaultGateway(ifc, family) {
		return false
	}
	_, ok := firstAddress(ifc, v4)
	return ok
}

// firstAddress returns the first address of ifc of the requested family
// (IPv4 when v4 is true).
func firstAddress(ifc *kvmnet.Interface, v4 bool) (netip.Prefix, bool) {
	for _, p := range ifc.Addresses {
		if p.Addr().Is4() == v4 {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// kernelDNS returns the first two IPv4 nameservers, because the ip=
// parameter has two DNS fields and the kernel parses them as IPv4 only.
func kernelDNS(dns kvmnet.DNS) []netip.Addr {
	var servers []netip.Addr
	for _, ns := range dns.Nameservers {
		if ns.Is4() && len(servers) < maxKernelDNS {
			servers = append(servers, ns)
		}
	}
	return servers
}

// ipParameter returns the value of an ip= parameter:
// <client>::<gw>:<netmask>:<hostname>:<device>:off[:<dns0>[:<dns1>]].
// The gateway is the one of ifc's IPv4 default route. Empty DNS fields at
// the end are left out.
func ipParameter(ifc *kvmnet.Interface, client netip.Prefix, hostname string, dns []netip.Addr) string {
	gw := ""
	if addr := defaultGateway(ifc, 4); addr.IsValid() {
		gw = addr.String()
	}
	fields := []string{
		client.Addr().String(),
		"", // server: no boot server (NFS root or TFTP) is involved
		gw,
		netmask4(client.Bits()),
		hostname,
		ifc.GuestDevice,
		"off", // autoconf: static configuration, no DHCP, BOOTP or RARP
	}
	for _, ns := range dns {
		fields = append(fields, ns.String())
	}
	return strings.Join(fields, ":")
}

// netmask4 returns the dotted-quad IPv4 netmask of a prefix length.
func netmask4(bits int) string {
	var mask [4]byte
	for i := range bits {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(mask).String()
}

// WriteKernelArgs writes the parameters of KernelArgs on one line. It
// writes nothing when there is nothing to configure.
func WriteKernelArgs(w io.Writer, r *kvmnet.Result, opts Options) error {
	args, err := KernelArgs(r, opts)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if args != "" {
		buf.WriteString(args)
		buf.WriteByte('\n')
	}
	return flush(w, &buf, "kernel-args")
}
