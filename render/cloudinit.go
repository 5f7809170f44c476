package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/kvmnet/kvmnet"
)

// CloudInit returns r as a cloud-init network configuration, version 2
// (the netplan subset), for the network-config file of a NoCloud data
// source.
//
// Every interface is an entry of "ethernets" keyed by its guest device
// name, matched by MAC address and renamed to that name with set-name. It
// lists the MTU (when known), the addresses and the routes: to/via, or
// to with scope link for a route without gateway. The DNS servers and the
// search list go under nameservers of the same interface that networkd
// uses for them. The resolver options have no version 2 setting and are
// left out.
//
// Every string is a double-quoted YAML scalar, so that a value such as
// "no", "null" or "0x1f" stays a string. The inputs are validated before,
// so no value needs more than Go's strconv.Quote escapes, which are also
// valid YAML escapes.
func CloudInit(r *kvmnet.Result, opts Options) (string, error) {
	if r == nil {
		return "", errors.New("result is nil")
	}
	if err := checkGuest(r, opts); err != nil {
		return "", err
	}

	var b bytes.Buffer
	b.WriteString("network:\n  version: 2\n")
	if len(r.Interfaces) == 0 {
		b.WriteString("  ethernets: {}\n")
		return b.String(), nil
	}

	b.WriteString("  ethernets:\n")
	dnsIndex := dnsInterface(r)
	for i := range r.Interfaces {
		var dns *kvmnet.DNS
		if i == dnsIndex {
			dns = &r.DNS
		}
		writeCloudInitEthernet(&b, &r.Interfaces[i], dns)
	}
	return b.String(), nil
}

// writeCloudInitEthernet writes the entry of one interface under
// "ethernets". dns is nil unless the interface carries the DNS settings.
func writeCloudInitEthernet(b *bytes.Buffer, ifc *kvmnet.Interface, dns *kvmnet.DNS) {
	mac, _ := parseMAC(ifc.MAC) // checked by checkGuest

	fmt.Fprintf(b, "    %s:\n", yamlString(ifc.GuestDevice))
	fmt.Fprintf(b, "      match:\n        macaddress: %s\n", yamlString(mac.String()))
	fmt.Fprintf(b, "      set-name: %s\n", yamlString(ifc.GuestDevice))
	if ifc.MTU != 0 {
		fmt.Fprintf(b, "      mtu: %d\n", ifc.MTU)
	}

	if len(ifc.Addresses) > 0 {
		b.WriteString("      addresses:\n")
		for _, p := range ifc.Addresses {
			fmt.Fprintf(b, "        - %s\n", yamlString(p.String()))
		}
	}

	if len(ifc.Routes) > 0 {
		b.WriteString("      routes:\n")
		for _, rt := range ifc.Routes {
			fmt.Fprintf(b, "        - to: %s\n", yamlString(rt.Dst.Masked().String()))
			if rt.GW.IsValid() {
				fmt.Fprintf(b, "          via: %s\n", yamlString(rt.GW.String()))
			} else {
				b.WriteString("          scope: \"link\"\n")
			}
		}
	}

	if dns == nil {
		return
	}
	search := searchDomains(*dns)
	if len(dns.Nameservers) == 0 && len(search) == 0 {
		return
	}
	b.WriteString("      nameservers:\n")
	if len(dns.Nameservers) > 0 {
		b.WriteString("        addresses:\n")
		for _, ns := range dns.Nameservers {
			fmt.Fprintf(b, "          - %s\n", yamlString(ns.String()))
		}
	}
	if len(search) > 0 {
		b.WriteString("        search:\n")
		for _, d := range search {
			fmt.Fprintf(b, "          - %s\n", yamlString(d))
		}
	}
}

// yamlString returns s as a double-quoted YAML scalar.
func yamlString(s string) string {
	return strconv.Quote(s)
}

// WriteCloudInit writes the network configuration of CloudInit.
func WriteCloudInit(w io.Writer, r *kvmnet.Result, opts Options) error {
	config, err := CloudInit(r, opts)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(config)
	return flush(w, &buf, "cloud-init")
}
