package firewall

import (
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Helpers that build nftables expressions. Each returns the expressions of
// one match, in the order nft itself emits them, so that `nft list ruleset`
// prints the rules in nft syntax.

// reg returns the 32-bit register that holds byte offset off of a
// concatenation that starts at register 1.
func reg(off int) uint32 {
	if off == 0 {
		return unix.NFT_REG_1
	}
	return uint32(unix.NFT_REG32_00 + off/4)
}

func matchNfproto(family byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{family}},
	}
}

// matchProtocol matches the ethertype of a netdev-family packet.
func matchProtocol(ethertype uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(ethertype)},
	}
}

func matchL4proto(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// matchIIFTypeEther is the dependency nft adds before Ethernet header
// matches in the netdev family.
func matchIIFTypeEther() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_ETHER)},
	}
}

func load(base expr.PayloadBase, offset, length uint32, register uint32) *expr.Payload {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: register, Base: base, Offset: offset, Len: length}
}

func loadNetwork(offset, length uint32, register uint32) *expr.Payload {
	return load(expr.PayloadBaseNetworkHeader, offset, length, register)
}

func loadTransport(offset, length uint32, register uint32) *expr.Payload {
	return load(expr.PayloadBaseTransportHeader, offset, length, register)
}

// matchPayload compares a payload field with value, or with value under
// mask when mask is not nil.
func matchPayload(p *expr.Payload, op expr.CmpOp, value, mask []byte) []expr.Any {
	out := []expr.Any{p}
	if mask != nil {
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: p.Len, Mask: mask, Xor: make([]byte, len(mask))})
	}
	return append(out, &expr.Cmp{Op: op, Register: 1, Data: value})
}

func lookup(set *nftables.Set, register uint32, invert bool) *expr.Lookup {
	return &expr.Lookup{SourceRegister: register, SetName: set.Name, SetID: set.ID, Invert: invert}
}

func lookupMap(set *nftables.Set) *expr.Lookup {
	return &expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: set.Name, SetID: set.ID}
}

// matchFibDaddrLocal matches packets to an address of this namespace.
func matchFibDaddrLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// matchCtBits matches a connection whose ct key (state or status) has any
// of bits set.
func matchCtBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: key},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ipsDstNAT is IPS_DST_NAT of enum ip_conntrack_status.
const ipsDstNAT = 1 << 5

func matchCtDNAT() []expr.Any { return matchCtBits(expr.CtKeySTATUS, ipsDstNAT) }

func verdict(kind expr.VerdictKind) *expr.Verdict { return &expr.Verdict{Kind: kind} }

// prefixMask returns the mask of the first bits bits in a field of size
// bytes.
func prefixMask(size, bits int) []byte {
	m := make([]byte, size)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// comment returns the userdata of a rule comment.
func comment(text string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, text)
}

func rule(exprs ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, e := range exprs {
		out = append(out, e...)
	}
	return out
}

func one(e ...expr.Any) []expr.Any { return e }
