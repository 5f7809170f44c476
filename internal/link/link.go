// Package link creates and removes the host-side devices of kvmnet over
// netlink: persistent taps, macvtaps, bridges, their addresses and routes.
// It works in the network namespace of the calling thread. Every link it
// creates carries an alias that names its owner, so that removal and gc only
// ever touch kvmnet's own links.
package link

import (
	"errors"
	"net"
	"net/netip"
	"strings"
)

// AliasPrefix starts the alias of every link kvmnet creates.
const AliasPrefix = "kvmnet "

// ErrForeign is returned when a link with the requested name exists and does
// not belong to the caller.
var ErrForeign = errors.New("link exists and is not owned by kvmnet")

// ErrUnsupported is returned on systems without Linux netlink.
var ErrUnsupported = errors.New("kvmnet needs Linux")

// VMAlias is the alias of a link owned by VM id.
func VMAlias(id string) string { return AliasPrefix + "vm=" + id }

// BridgeAlias is the alias of a bridge kvmnet created.
const BridgeAlias = AliasPrefix + "bridge"

// OwnerOf returns the VM id in a link alias, or "".
func OwnerOf(alias string) string {
	id, ok := strings.CutPrefix(alias, AliasPrefix+"vm=")
	if !ok {
		return ""
	}
	return id
}

// Tap describes a persistent tap to create.
type Tap struct {
	Name  string
	MTU   int
	Alias string
	// Owner and Group are the uid and gid allowed to open the tap; -1 for none.
	Owner, Group int
	// Queues > 1 creates a multiqueue tap.
	Queues  int
	VnetHdr bool
}

// Macvtap describes a macvtap to create.
type Macvtap struct {
	Name   string
	Master string
	Mode   string
	MTU    int
	MAC    net.HardwareAddr
	Alias  string
	Queues int
}

// Addr is an address to put on a device.
type Addr struct {
	Prefix netip.Prefix
	// NoPrefixRoute suppresses the kernel's route to the prefix.
	NoPrefixRoute bool
}
