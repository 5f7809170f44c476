package firewall

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// layout is the static part of the ruleset: the inet table with its sets
// and base chains.
type layout struct {
	inet *nftables.Table
	sets map[string]*nftables.Set
}

func newLayout() *layout {
	l := &layout{
		inet: &nftables.Table{Name: tableName, Family: nftables.TableFamilyINet},
		sets: map[string]*nftables.Set{},
	}
	ip4, ip6 := nftables.TypeIPAddr, nftables.TypeIP6Addr
	proto, port := nftables.TypeInetProto, nftables.TypeInetService
	plain := func(name string, key nftables.SetDatatype) {
		l.sets[name] = &nftables.Set{Table: l.inet, Name: name, KeyType: key}
	}
	interval := func(name string, key, data nftables.SetDatatype) {
		l.sets[name] = &nftables.Set{Table: l.inet, Name: name, KeyType: key, DataType: data, IsMap: true, Interval: true, Concatenation: true}
	}
	dataMap := func(name string, key, data nftables.SetDatatype) {
		l.sets[name] = &nftables.Set{Table: l.inet, Name: name, KeyType: key, DataType: data, IsMap: true}
	}
	dataMap(setGuest4, ip4, concatType(ip4, ip4))
	dataMap(setGuest6, ip6, concatType(ip6, ip6))
	interval(setSubnet4, concatType(ip4, ip4), nftables.TypeMark)
	interval(setSubnet6, concatType(ip6, ip6), nftables.TypeMark)
	plain(setMasquerade4, ip4)
	plain(setMasquerade6, ip6)
	plain(setIsolated4, ip4)
	plain(setIsolated6, ip6)
	dataMap(mapDNAT4Any, concatType(proto, port), concatType(ip4, port))
	dataMap(mapDNAT4Addr, concatType(ip4, proto, port), concatType(ip4, port))
	dataMap(mapDNAT6Any, concatType(proto, port), concatType(ip6, port))
	dataMap(mapDNAT6Addr, concatType(ip6, proto, port), concatType(ip6, port))
	dataMap(mapDNATAddrCount, concatType(nftables.TypeNFProto, proto, port), nftables.TypeMark)
	plain(setLocalnet4Users, concatType(nftables.TypeIFName, ip4))
	plain(setLocalnet4Change, nftables.TypeIFName)
	plain(setLocalnet6Users, concatType(nftables.TypeIFName, ip6))
	plain(setLocalnet6Change, nftables.TypeIFName)
	plain(setLayout, nftables.TypeMark)
	// nft prints an ifname key as a string only when the set says it is
	// in host byte order, as nft's own sets do.
	l.sets[setLocalnet4Change].KeyByteOrder = binaryutil.NativeEndian
	l.sets[setLocalnet6Change].KeyByteOrder = binaryutil.NativeEndian
	return l
}

func concatType(types ...nftables.SetDatatype) nftables.SetDatatype {
	if len(types) == 1 {
		return types[0]
	}
	// ConcatSetType fails only for more than 5 fields.
	t, _ := nftables.ConcatSetType(types...)
	return t
}

// setOrder is the order in which the sets are created, and listed by nft.
var setOrder = []string{
	setGuest4, setGuest6, setSubnet4, setSubnet6,
	setMasquerade4, setMasquerade6, setIsolated4, setIsolated6,
	mapDNAT4Any, mapDNAT4Addr, mapDNAT6Any, mapDNAT6Addr,
	mapDNATAddrCount, setLocalnet4Users, setLocalnet4Change, setLocalnet6Users, setLocalnet6Change,
	setLayout,
}

// queueInet queues the inet table with its sets, chains and rules. The
// table is created with NLM_F_EXCL, so a batch that races with another
// process creating it fails with EEXIST instead of adding the rules twice.
func (l *layout) queueInet(c *nftables.Conn) error {
	c.CreateTable(l.inet)
	for _, name := range setOrder {
		if err := c.AddSet(l.sets[name], nil); err != nil {
			return fmt.Errorf("queue set %s: %w", name, err)
		}
	}

	accept := nftables.ChainPolicyAccept
	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio int32) *nftables.Chain {
		return c.AddChain(&nftables.Chain{
			Name: name, Table: l.inet, Type: typ, Hooknum: hook,
			Priority: nftables.ChainPriorityRef(nftables.ChainPriority(prio)), Policy: &accept,
		})
	}
	// Debian's nft 1.0.6 rejects the name dstnat on an output hook, so the
	// output chain's priority -100 is listed as a number.
	pre := chain(chainPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, -100)
	out := chain(chainOutput, nftables.ChainTypeNAT, nftables.ChainHookOutput, -100)
	post := chain(chainPostrouting, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, 100)
	fwd := chain(chainForward, nftables.ChainTypeFilter, nftables.ChainHookForward, 0)

	for _, ch := range []*nftables.Chain{pre, out} {
		for _, exprs := range l.dnatRules() {
			c.AddRule(&nftables.Rule{Table: l.inet, Chain: ch, Exprs: exprs})
		}
	}
	for _, exprs := range l.postroutingRules() {
		c.AddRule(&nftables.Rule{Table: l.inet, Chain: post, Exprs: exprs})
	}
	for _, exprs := range l.forwardRules() {
		c.AddRule(&nftables.Rule{Table: l.inet, Chain: fwd, Exprs: exprs})
	}
	return nil
}

// Header offsets of the fields the rules read.
const (
	ip4Saddr = 12
	ip4Daddr = 16
	ip6Saddr = 8
	ip6Daddr = 24
	thDport  = 2
)

// dnatRules are the rules of the prerouting and output chains: packets to a
// local address whose address, protocol and port are in a DNAT map are sent
// to the guest address and port of the map's data. Maps of specific host
// addresses come before the maps of every host address.
func (l *layout) dnatRules() [][]expr.Any {
	dnat := func(family byte, protoReg uint32) *expr.NAT {
		return &expr.NAT{
			Type: expr.NATTypeDestNAT, Family: uint32(family),
			RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: protoReg, RegProtoMax: protoReg, Specified: true,
		}
	}
	keyAny := one(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg(0)}, loadTransport(thDport, 2, reg(4)))
	return [][]expr.Any{
		rule(matchNfproto(nfprotoIPv4), matchFibDaddrLocal(),
			one(loadNetwork(ip4Daddr, 4, reg(0)), &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg(4)}, loadTransport(thDport, 2, reg(8))),
			one(lookupMap(l.sets[mapDNAT4Addr]), dnat(nfprotoIPv4, reg(4)))),
		rule(matchNfproto(nfprotoIPv4), matchFibDaddrLocal(), keyAny,
			one(lookupMap(l.sets[mapDNAT4Any]), dnat(nfprotoIPv4, reg(4)))),
		rule(matchNfproto(nfprotoIPv6), matchFibDaddrLocal(),
			one(loadNetwork(ip6Daddr, 16, reg(0)), &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg(16)}, loadTransport(thDport, 2, reg(20))),
			one(lookupMap(l.sets[mapDNAT6Addr]), dnat(nfprotoIPv6, reg(16)))),
		rule(matchNfproto(nfprotoIPv6), matchFibDaddrLocal(), keyAny,
			one(lookupMap(l.sets[mapDNAT6Any]), dnat(nfprotoIPv6, reg(16)))),
	}
}

// postroutingRules source-NAT forwarded connections that need it and
// masquerade guest traffic that leaves the guest's subnet.
func (l *layout) postroutingRules() [][]expr.Any {
	masq := one(&expr.Masq{})
	ret := one(verdict(expr.VerdictReturn))
	loopback6 := make([]byte, 16)
	loopback6[15] = 1
	pair4 := func(first, second uint32) []expr.Any {
		return one(loadNetwork(first, 4, reg(0)), loadNetwork(second, 4, reg(4)))
	}
	pair6 := func(first, second uint32) []expr.Any {
		return one(loadNetwork(first, 16, reg(0)), loadNetwork(second, 16, reg(16)))
	}
	return [][]expr.Any{
		// Forwards reached from 127.0.0.0/8 or ::1 on this host: the guest
		// must see a source it can answer, and replies must come back here.
		rule(matchCtDNAT(), matchNfproto(nfprotoIPv4),
			matchPayload(loadNetwork(ip4Saddr, 4, 1), expr.CmpOpEq, []byte{127, 0, 0, 0}, prefixMask(4, 8)),
			one(loadNetwork(ip4Daddr, 4, 1), lookup(l.sets[setGuest4], 1, false)), masq),
		rule(matchCtDNAT(), matchNfproto(nfprotoIPv6),
			matchPayload(loadNetwork(ip6Saddr, 16, 1), expr.CmpOpEq, loopback6, nil),
			one(loadNetwork(ip6Daddr, 16, 1), lookup(l.sets[setGuest6], 1, false)), masq),
		// Hairpin: a client in the guest's own subnet (the guest itself
		// included) would get the reply straight from the guest.
		rule(matchCtDNAT(), matchNfproto(nfprotoIPv4), pair4(ip4Daddr, ip4Saddr), one(lookup(l.sets[setSubnet4], 1, false)), masq),
		rule(matchCtDNAT(), matchNfproto(nfprotoIPv6), pair6(ip6Daddr, ip6Saddr), one(lookup(l.sets[setSubnet6], 1, false)), masq),
		// Masquerade (CNI ipMasq): not inside the subnet, not multicast.
		rule(matchNfproto(nfprotoIPv4), pair4(ip4Saddr, ip4Daddr), one(lookup(l.sets[setSubnet4], 1, false)), ret),
		rule(matchNfproto(nfprotoIPv4), matchPayload(loadNetwork(ip4Daddr, 4, 1), expr.CmpOpEq, []byte{224, 0, 0, 0}, prefixMask(4, 4)), ret),
		rule(matchNfproto(nfprotoIPv4), matchPayload(loadNetwork(ip4Daddr, 4, 1), expr.CmpOpEq, []byte{255, 255, 255, 255}, nil), ret),
		rule(matchNfproto(nfprotoIPv4), one(loadNetwork(ip4Saddr, 4, 1), lookup(l.sets[setMasquerade4], 1, false)), masq),
		rule(matchNfproto(nfprotoIPv6), pair6(ip6Saddr, ip6Daddr), one(lookup(l.sets[setSubnet6], 1, false)), ret),
		rule(matchNfproto(nfprotoIPv6), matchPayload(loadNetwork(ip6Daddr, 16, 1), expr.CmpOpEq, ipv6Multicast(), prefixMask(16, 8)), ret),
		rule(matchNfproto(nfprotoIPv6), one(loadNetwork(ip6Saddr, 16, 1), lookup(l.sets[setMasquerade6], 1, false)), masq),
	}
}

func ipv6Multicast() []byte {
	b := make([]byte, 16)
	b[0] = 0xff
	return b
}

// forwardRules keep isolated guests and guests of different networks apart.
func (l *layout) forwardRules() [][]expr.Any {
	accept := one(verdict(expr.VerdictAccept))
	drop := one(verdict(expr.VerdictDrop))
	return [][]expr.Any{
		rule(matchCtBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), accept),
		// Forwarded ports stay reachable from every guest, isolated or not.
		rule(matchCtDNAT(), accept),
		// Guests of one subnet reach each other, also across the bridge
		// when bridge netfilter passes bridged traffic through this hook.
		rule(matchNfproto(nfprotoIPv4), one(loadNetwork(ip4Saddr, 4, reg(0)), loadNetwork(ip4Daddr, 4, reg(4)), lookup(l.sets[setSubnet4], 1, false)), accept),
		rule(matchNfproto(nfprotoIPv6), one(loadNetwork(ip6Saddr, 16, reg(0)), loadNetwork(ip6Daddr, 16, reg(16)), lookup(l.sets[setSubnet6], 1, false)), accept),
		rule(matchNfproto(nfprotoIPv4), matchPayload(loadNetwork(ip4Daddr, 4, 1), expr.CmpOpEq, []byte{224, 0, 0, 0}, prefixMask(4, 4)), accept),
		rule(matchNfproto(nfprotoIPv4), matchPayload(loadNetwork(ip4Daddr, 4, 1), expr.CmpOpEq, []byte{255, 255, 255, 255}, nil), accept),
		rule(matchNfproto(nfprotoIPv6), matchPayload(loadNetwork(ip6Daddr, 16, 1), expr.CmpOpEq, ipv6Multicast(), prefixMask(16, 8)), accept),
		rule(matchNfproto(nfprotoIPv4), one(loadNetwork(ip4Saddr, 4, 1), lookup(l.sets[setIsolated4], 1, false)), drop),
		rule(matchNfproto(nfprotoIPv6), one(loadNetwork(ip6Saddr, 16, 1), lookup(l.sets[setIsolated6], 1, false)), drop),
		// New connections from beyond the host to an isolated guest, too;
		// only forwarded ports (DNAT, accepted above) reach it.
		rule(matchNfproto(nfprotoIPv4), one(loadNetwork(ip4Daddr, 4, 1), lookup(l.sets[setIsolated4], 1, false)), drop),
		rule(matchNfproto(nfprotoIPv6), one(loadNetwork(ip6Daddr, 16, 1), lookup(l.sets[setIsolated6], 1, false)), drop),
		rule(matchNfproto(nfprotoIPv4),
			one(loadNetwork(ip4Saddr, 4, 1), lookup(l.sets[setGuest4], 1, false)),
			one(loadNetwork(ip4Daddr, 4, 1), lookup(l.sets[setGuest4], 1, false)), drop),
		rule(matchNfproto(nfprotoIPv6),
			one(loadNetwork(ip6Saddr, 16, 1), lookup(l.sets[setGuest6], 1, false)),
			one(loadNetwork(ip6Daddr, 16, 1), lookup(l.sets[setGuest6], 1, false)), drop),
	}
}
