// Package kvmnet gives virtual machines network access from standard CNI
// network configurations. Up creates the host-side tap or macvtap devices,
// reserves addresses through the CNI IPAM plugins, sets routes, MTU,
// masquerade and DNS, and records everything in a state record; Down removes
// it all again from that record alone.
//
// The library works in the network namespace of the calling thread. Callers
// that manage another namespace run it on a locked thread switched into that
// namespace (see internal/netns.Do).
package kvmnet
