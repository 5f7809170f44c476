package kvmnet

import (
	"fmt"
	"strings"
)

// Text returns d as resolv.conf(5) text: one nameserver line per server,
// then the search list, then options; "" when d carries no setting.
//
// The resolver keeps only the last of a domain and a search line, so Domain
// is written as a domain line only when Search is empty, and otherwise leads
// the search list. Entries that could not be written safely on one line (a
// zero address, a name with spaces, quotes or control characters) are left
// out, so IPAM results cannot inject resolver lines.
func (d DNS) Text() string {
	var b strings.Builder
	for _, ns := range d.Nameservers {
		if ns.IsValid() && isResolverWord(ns.Zone(), false) {
			fmt.Fprintf(&b, "nameserver %s\n", ns)
		}
	}
	var search []string
	seen := map[string]bool{}
	for _, name := range append([]string{d.Domain}, d.Search...) {
		if name != "" && !seen[name] && isResolverWord(name, false) {
			seen[name] = true
			search = append(search, name)
		}
	}
	switch {
	case len(d.Search) > 0 && len(search) > 0:
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	case len(search) > 0:
		fmt.Fprintf(&b, "domain %s\n", search[0])
	}
	var options []string
	for _, o := range d.Options {
		if o != "" && isResolverWord(o, true) {
			options = append(options, o)
		}
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.String()
}

// isResolverWord reports whether s consists of letters, digits, '-', '_'
// and '.', plus ':' when colon is set, and has no empty label.
func isResolverWord(s string, colon bool) bool {
	if strings.Contains(strings.TrimSuffix(s, "."), "..") || strings.HasPrefix(s, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || colon && c == ':'
		if !ok {
			return false
		}
	}
	return true
}
