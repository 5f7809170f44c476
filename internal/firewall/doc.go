// Package firewall keeps kvmnet's nftables rules: masquerade, forwarded
// ports (DNAT), isolation and anti-spoofing for the attachments of VMs. It
// talks to the kernel over netlink (google/nftables, and single-element
// lookups of its own) in the network namespace of the thread that calls
// New, and never runs the nft program.
//
// # Ruleset layout
//
// Everything at the IP level lives in the table inet kvmnet. Its chains and
// rules are static; per-VM state is elements of its sets and maps, each
// with the VM id as comment:
//
//	guest4, guest6            guest address : first . last address of its subnet
//	masquerade4, masquerade6  guest addresses whose traffic is masqueraded
//	isolated4, isolated6      guest addresses of isolated attachments
//	dnat4_any, dnat6_any      proto . host port : guest address . guest port
//	dnat4_addr, dnat6_addr    host address . proto . host port : guest address . guest port
//	localnet4_users, ..6..    device . guest address, for forwards reached from loopback
//
// Six sets have no owner. subnet4 and subnet6 hold one interval element
// per guest subnet, first . first to last . last, so that `saddr . daddr
// @subnet4` matches two addresses of one subnet; the data counts the guest
// addresses in it. dnat_addr_count counts the forwards on specific host
// addresses per family, protocol and port. localnet4_changed and
// localnet6_changed hold the devices where kvmnet made the loopback change
// described below. The empty set layout_1 marks the layout: a table without
// it (from another kvmnet version, or made by hand) is rejected with
// ErrLayout instead of being half understood.
//
// The chains:
//
//   - prerouting (nat, -100) and output (nat, -100): packets to a local
//     address (fib daddr type local) whose address, protocol and port are in
//     a DNAT map go to the guest. Output covers connections from the host
//     itself, to 127.0.0.1 and ::1 included. Debian's nft 1.0.6 rejects the
//     name dstnat on an output hook, so that priority is a number.
//   - postrouting (nat, 100): masquerades DNATed connections from
//     127.0.0.0/8 or ::1, and hairpin connections whose client is in the
//     guest's own subnet (the guest itself included), so that replies come
//     back through the host. Then it masquerades (CNI ipMasq) guest traffic
//     that leaves the guest's subnet and is not multicast or broadcast.
//   - forward (filter, 0): accepts established and DNATed connections and
//     traffic inside one subnet (bridge netfilter passes bridged traffic
//     through this hook in a new namespace), then drops traffic from
//     isolated guests, new connections to isolated guests, and traffic
//     between guests of different networks.
//
// Anti-spoofing cannot live in the inet table: inet hooks never see ARP, and
// they see bridged frames with the bridge, not the tap, as input device.
// Each anti-spoofed device therefore gets a table netdev
// kvmnet-guard-<device> with one ingress chain on the device, whose rules
// carry the VM id as comment. They drop:
//
//   - frames whose source MAC is not the guest's;
//   - ethertypes other than ARP, IPv4 and IPv6, VLAN tags included;
//   - ARP whose sender MAC or IP is not the guest's, except sender 0.0.0.0
//     (address probes);
//   - IPv4 from other addresses, except DHCP requests from 0.0.0.0;
//   - IPv6 from addresses that are neither the guest's nor link-local,
//     except duplicate address detection and MLD reports from ::;
//   - router advertisements and redirects;
//   - neighbor advertisements for targets that are neither the guest's
//     addresses nor link-local.
//
// Any fe80::/10 source passes, because the MAC is already checked and
// guests pick their own link-local addresses. Each device has a table of
// its own, because the kernel validates every base chain of a table when a
// batch adds a rule with a verdict to it. With one shared table, Add grew
// with the number of VMs.
//
// Add, Remove and RemoveOwner each change all of this in one atomic batch.
// Add creates the inet table with its sets and chains in the same batch as
// the first VM's elements. When the last VM is removed, the inet table stays
// with empty sets, so the ruleset is the same as after the first
// Add and Remove; PruneIfUnused deletes it.
//
// # Sysctls and routes
//
// A forward reached from the host's loopback address needs the device
// toward the guest (the tap, or the bridge it is enslaved to) to accept the
// guest's replies, which come back with the loopback address as destination
// once conntrack undoes the NAT:
//
//   - IPv4: net.ipv4.conf.<device>.route_localnet=1.
//   - IPv6 has no such sysctl; the route lookup for ::1 takes only routes of
//     the input device. kvmnet adds the route `local ::1 dev <device> table
//     local` (metric 1024, behind the kernel's own route on lo). Packets
//     from the wire to ::1 are dropped before any hook (RFC 4291 2.5.3), so
//     the route lets in only replies that conntrack rewrote.
//
// Add makes the change only when the device lacks it, records it in the
// Receipt and in localnetN_changed, and the Remove that takes away the
// device's last localnetN_users element undoes it. route_localnet is set
// through /proc/sys, which shows the namespace of the calling thread, so Add
// and Remove must run on a thread in the firewall's namespace; they check
// that they do.
//
// # Other tables
//
// The package changes no table but its own. Forwarding itself
// (net.ipv4.ip_forward and net.ipv6.conf.all.forwarding) is the caller's
// business. A drop policy in another table's forward chain applies to
// guest traffic as well, and the operator must allow it there.
//
// # Ownership, conflicts and cost
//
// Elements keyed by a guest address belong to whoever added them last: an
// address comes from IPAM and never belongs to two live VMs, so Add replaces
// another VM's element as stale, and Remove and RemoveOwner delete only
// elements whose comment is their VM id. Elements keyed by a host port are
// claims: another VM's claim makes Add fail with a *ConflictError before
// anything changes. Conflicts are per address family; a forward on every
// host address conflicts with any forward of the same port and protocol,
// and a forward on a specific address with one on the same address or on
// every address. A port range claims each of its ports.
//
// Add reads only the elements it is about to write, with one
// NFT_MSG_GETSETELEM request per key, so its own cost does not depend on the
// number of VMs. It also reads subnet4 and subnet6, which grow with the
// number of networks only. The exceptions: a forward on every host address
// of a port that dnat_addr_count shows forwarded on a specific address reads
// the DNAT maps of specific addresses to find the owner, and Remove reads
// the localnetN_users sets, so it grows with the number of VMs that have
// forwards. Owners and RemoveOwner read every set. The kernel also finds a
// table by name in a list, so the messages that fill a new guard table get
// slightly slower with every guard table that exists. BenchmarkAddInterleaved
// measured Add at 1000 VMs 1.05 to 1.24 times as slow as at one VM (2-core
// VM shared with other builds, kernel 6.18).
//
// Batches from different processes must not interleave a read and a write:
// callers serialize Add, Remove and RemoveOwner (kvmnet holds its state
// lock). A batch that creates the inet table does so exclusively, and Add
// retries once when another process created it first.
//
// # Limitations
//
//   - NOTE: a macvtap guest's frames take the macvtap's transmit path
//     (dev_queue_xmit), which an ingress hook does not see, so anti-spoofing
//     most likely has no effect on macvtap attachments. No test covers
//     macvtap.
//   - Subnets decide who may talk to whom: guests of one network in
//     different subnets of one family count as different networks. Guest
//     addresses must be unique in the namespace, and the subnets of
//     different networks must not overlap (the kernel rejects the second
//     subnet4 element).
//   - Neighbor discovery options (source and target link-layer address)
//     are not inspected; a guest can only announce its own addresses, but
//     with another MAC.
package firewall
