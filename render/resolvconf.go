package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kvmnet/kvmnet"
)

// ResolvConf returns dns as resolv.conf(5) text: one nameserver line per
// server, then the search list, then options. It returns "" when dns
// carries no nameserver, domain, search domain or option.
//
// The resolver keeps only the last of a domain and a search line, so a
// Domain is written as a domain line only when Search is empty. Otherwise it
// leads the search list. Resolvers use at most three nameservers (MAXNS in
// glibc and musl) and ignore further lines.
//
// Entries that could not be written safely on one line (a zero address, a
// domain or option with spaces, quotes or control characters) are left out.
// WriteResolvConf rejects them instead.
func ResolvConf(dns kvmnet.DNS) string {
	var b strings.Builder
	for _, ns := range dns.Nameservers {
		if ns.IsValid() && checkZone(ns) == nil {
			fmt.Fprintf(&b, "nameserver %s\n", ns)
		}
	}

	var valid kvmnet.DNS
	if dns.Domain != "" && checkDomain(dns.Domain) == nil {
		valid.Domain = dns.Domain
	}
	for _, d := range dns.Search {
		if checkDomain(d) == nil {
			valid.Search = append(valid.Search, d)
		}
	}
	switch {
	case len(valid.Search) > 0:
		fmt.Fprintf(&b, "search %s\n", strings.Join(searchDomains(valid), " "))
	case valid.Domain != "":
		fmt.Fprintf(&b, "domain %s\n", valid.Domain)
	}

	var options []string
	for _, o := range dns.Options {
		if checkResolverOption(o) == nil {
			options = append(options, o)
		}
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.String()
}

// WriteResolvConf writes the DNS settings of r as resolv.conf text. It
// writes nothing when r has no DNS settings, and returns an error for any
// entry that ResolvConf would leave out.
func WriteResolvConf(w io.Writer, r *kvmnet.Result) error {
	if r == nil {
		return errors.New("result is nil")
	}
	if err := checkDNS(r.DNS); err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(ResolvConf(r.DNS))
	return flush(w, &buf, "resolv.conf")
}
