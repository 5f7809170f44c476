package render

import (
	"bytes"
	"errors"
	"io"

	"github.com/kvmnet/kvmnet"
)

// ResolvConf returns dns as resolv.conf(5) text, as kvmnet.DNS.Text does:
// unsafe entries are left out, which WriteResolvConf rejects instead.
func ResolvConf(dns kvmnet.DNS) string {
	return dns.Text()
}

// noDNSComment is the whole output of WriteResolvConf for a result without
// DNS settings, so that an empty output never looks like a failure.
const noDNSComment = "# no DNS settings\n"

// WriteResolvConf writes the DNS settings of r as resolv.conf text, or the
// comment line "# no DNS settings" when r has none. It returns an error for
// any entry that ResolvConf would leave out.
func WriteResolvConf(w io.Writer, r *kvmnet.Result) error {
	if r == nil {
		return errors.New("result is nil")
	}
	if err := checkDNS(r.DNS); err != nil {
		return err
	}
	text := ResolvConf(r.DNS)
	if text == "" {
		text = noDNSComment
	}
	var buf bytes.Buffer
	buf.WriteString(text)
	return flush(w, &buf, "resolv.conf")
}
