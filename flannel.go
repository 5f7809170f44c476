package kvmnet

import (
	"fmt"

	"github.com/kvmnet/kvmnet/internal/flannel"
	"github.com/kvmnet/kvmnet/internal/netconf"
)

// renderFlannel reads flannel's subnet.env once and turns a flannel network
// into the bridge network it delegates to. The state record keeps the
// rendered config, so down never reads subnet.env.
func renderFlannel(n *netconf.Network) (*netconf.Network, error) {
	rendered, err := flannel.Render(n.Bytes, netconf.ReadFile)
	if err != nil {
		return nil, fmt.Errorf("network %q (%s): %w", n.Name, n.Source, err)
	}
	out, err := netconf.Parse(rendered, n.Source+" (rendered from flannel)")
	if err != nil {
		return nil, err
	}
	out.Portmap = n.Portmap
	return out, nil
}
