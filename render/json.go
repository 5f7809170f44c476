package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/kvmnet/kvmnet"
)

// WriteJSON writes r as indented JSON with the keys of kvmnet.Result, ending
// in a newline. Lists that the Result leaves nil are written as [] rather
// than null, so that consumers can iterate without a check.
func WriteJSON(w io.Writer, r *kvmnet.Result) error {
	if r == nil {
		return errors.New("result is nil")
	}

	out := *r
	out.Interfaces = make([]kvmnet.Interface, len(r.Interfaces))
	for i, ifc := range r.Interfaces {
		if ifc.Addresses == nil {
			ifc.Addresses = []netip.Prefix{}
		}
		if ifc.Gateways == nil {
			ifc.Gateways = []netip.Addr{}
		}
		if ifc.Routes == nil {
			ifc.Routes = []kvmnet.Route{}
		}
		out.Interfaces[i] = ifc
	}

	data, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result as JSON: %w", err)
	}
	var buf bytes.Buffer
	buf.Write(data)
	buf.WriteByte('\n')
	return flush(w, &buf, "json")
}
