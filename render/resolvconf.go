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
