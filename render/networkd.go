package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kvmnet/kvmnet"
)

// networkdFile is one generated .network file.
type networkdFile struct {
	name    string
	content string
}

// NetworkdFileName returns the name of the .network file for a guest
// device: 10-kvmnet-<device>.network.
func NetworkdFileName(guestDevice string) string {
	return "10-kvmnet-" + guestDevice + ".network"
}

// NetworkdFiles returns one systemd-networkd .network file per interface of
// r, keyed by file name (see NetworkdFileName), for the guest's
// /etc/systemd/network.
//
// Each file matches the NIC by MAC address and sets MTUBytes= (when the MTU
// is known), the addresses, the default gateways as Gateway= and every
// other route as a [Route] section. The DNS servers and the search list go
// into the file of the interface with the IPv4 default route (else the IPv6
// one, else the first interface), as DNS= and Domains=. They reach
// /etc/resolv.conf only through systemd-resolved. The resolver options of
// r have no networkd setting and are left out; use the resolv.conf format
// for them.
func NetworkdFiles(r *kvmnet.Result, opts Options) (map[string]string, error) {
	files, err := networkdFiles(r, opts)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(files))
	for _, f := range files {
		m[f.name] = f.content
	}
	return m, nil
}

// networkdFiles returns the files of NetworkdFiles in interface order.
func networkdFiles(r *kvmnet.Result, opts Options) ([]networkdFile, error) {
	if r == nil {
		return nil, errors.New("result is nil")
	}
	if err := checkGuest(r, opts); err != nil {
		return nil, err
	}

	dnsIndex := dnsInterface(r)
	files := make([]networkdFile, 0, len(r.Interfaces))
	for i := range r.Interfaces {
		ifc := &r.Interfaces[i]
		var dns *kvmnet.DNS
		if i == dnsIndex {
			dns = &r.DNS
		}
		files = append(files, networkdFile{
			name:    NetworkdFileName(ifc.GuestDevice),
			content: networkdUnit(ifc, dns),
		})
	}
	return files, nil
}

// networkdUnit returns the .network file of one interface. dns is nil
// unless the interface carries the DNS settings.
func networkdUnit(ifc *kvmnet.Interface, dns *kvmnet.DNS) string {
	var b strings.Builder
	mac, _ := parseMAC(ifc.MAC) // checked by checkGuest
	fmt.Fprintf(&b, "[Match]\nMACAddress=%s\n", mac)

	if ifc.MTU != 0 {
		fmt.Fprintf(&b, "\n[Link]\nMTUBytes=%d\n", ifc.MTU)
	}

	var network strings.Builder
	for _, p := range ifc.Addresses {
		fmt.Fprintf(&network, "Address=%s\n", p)
	}
	for _, rt := range ifc.Routes {
		if rt.Dst.Bits() == 0 && rt.GW.IsValid() {
			fmt.Fprintf(&network, "Gateway=%s\n", rt.GW)
		}
	}
	if dns != nil {
		for _, ns := range dns.Nameservers {
			fmt.Fprintf(&network, "DNS=%s\n", ns)
		}
		if domains := searchDomains(*dns); len(domains) > 0 {
			fmt.Fprintf(&network, "Domains=%s\n", strings.Join(domains, " "))
		}
	}
	if network.Len() > 0 {
		fmt.Fprintf(&b, "\n[Network]\n%s", network.String())
	}

	for _, rt := range ifc.Routes {
		if rt.Dst.Bits() == 0 && rt.GW.IsValid() {
			continue // written as Gateway= above
		}
		fmt.Fprintf(&b, "\n[Route]\nDestination=%s\n", rt.Dst.Masked())
		if rt.GW.IsValid() {
			fmt.Fprintf(&b, "Gateway=%s\n", rt.GW)
		}
	}
	return b.String()
}

// WriteNetworkd writes the files of NetworkdFiles in interface order, each
// after a comment line with its file name ("# 10-kvmnet-eth0.network") and
// separated by a blank line.
func WriteNetworkd(w io.Writer, r *kvmnet.Result, opts Options) error {
	files, err := networkdFiles(r, opts)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for i, f := range files {
		if i > 0 {
			buf.WriteByte('\n')
		}
		fmt.Fprintf(&buf, "# %s\n%s", f.name, f.content)
	}
	return flush(w, &buf, "networkd")
}
