// Package flannel renders a CNI network config of type flannel as the config
// of the network it delegates to, which is a bridge network with host-local
// IPAM by default.
//
// It does what the CNI flannel plugin (github.com/flannel-io/cni-plugin) does
// on ADD, without running it: read the subnet.env file that flanneld writes,
// then fill in the delegate's type, MTU, masquerade, gateway, address ranges
// and routes. The caller saves the rendered config and uses it for teardown,
// so teardown works after subnet.env is gone.
//
// The entry point is
//
//	Render(conf []byte, readFile func(path string) ([]byte, error)) ([]byte, error)
//
// which takes the network config as JSON and a function that reads the
// subnet file (os.ReadFile in production), and returns the rendered network
// config as JSON. ParseConfig, ParseSubnetEnv and RenderDelegate are the
// three steps of Render, for callers that validate the config before reading
// subnet.env or that have parsed subnet.env already.
//
// For a flannel plugin inside a .conflist, pass the plugin's object with the
// list's "name" and "cniVersion" added, as libcni does before it runs a plugin.
//
// The package does no I/O of its own. Its functions return an error for
// malformed input rather than panic, which the fuzz targets FuzzParseSubnetEnv
// and FuzzRender check.
package flannel
