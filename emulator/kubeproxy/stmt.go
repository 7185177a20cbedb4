package kubeproxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// stmt is one statement of a rule. It knows both of its renderings: the
// text `nft list ruleset` prints for it (which `nft -f` also reads), and
// the kernel expressions nft would compile it to. Keeping the two side by
// side is what makes the script and the netlink batch the same ruleset.
type stmt interface {
	text() string
	exprs(a *assembler) []expr.Any
}

// Registers as nft allocates them: reg 1 for a single value (and the
// verdict register 0 for lookups that decide), and the 32-bit registers
// NFT_REG32_xx for the later fields of a concatenation.
const (
	reg1 = unix.NFT_REG_1
	reg2 = unix.NFT_REG_2
)

// concatReg is the register field i of a concatenation starts in, when the
// fields before it took words 32-bit words.
func concatReg(words int) uint32 {
	if words == 0 {
		return reg1
	}
	return unix.NFT_REG32_00 + uint32(words)
}

// native encodes v in host byte order, as the kernel keeps marks, conntrack
// states, fib results and numgen output.
func native(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// ipField is a source or destination address in the IPv4 header.
type ipField string

const (
	saddr ipField = "saddr"
	daddr ipField = "daddr"
)

func (f ipField) offset() uint32 {
	if f == saddr {
		return 12
	}
	return 16
}

// matchIP is `ip saddr 10.1.2.3`, `ip daddr != 127.0.0.0/8` and the like.
type matchIP struct {
	field  ipField
	not    bool
	prefix netip.Prefix
}

func ipIs(f ipField, a netip.Addr) matchIP      { return matchIP{field: f, prefix: netip.PrefixFrom(a, 32)} }
func ipIn(f ipField, p netip.Prefix) matchIP    { return matchIP{field: f, prefix: p} }
func ipNotIn(f ipField, p netip.Prefix) matchIP { return matchIP{field: f, not: true, prefix: p} }

func (m matchIP) text() string {
	op := ""
	if m.not {
		op = "!= "
	}
	v := m.prefix.String()
	if m.prefix.IsSingleIP() {
		v = m.prefix.Addr().String()
	}
	return fmt.Sprintf("ip %s %s%s", m.field, op, v)
}

// exprs compares as few bytes as a prefix on a byte boundary needs, and
// masks otherwise, as nft does.
func (m matchIP) exprs(*assembler) []expr.Any {
	op := expr.CmpOpEq
	if m.not {
		op = expr.CmpOpNeq
	}
	addr := m.prefix.Masked().Addr().As4()
	bits := m.prefix.Bits()
	if bits%8 == 0 {
		n := uint32(bits / 8)
		return []expr.Any{
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: m.field.offset(), Len: n},
			&expr.Cmp{Op: op, Register: reg1, Data: addr[:n]},
		}
	}
	var m4 [4]byte
	binary.BigEndian.PutUint32(m4[:], ^uint32(0)<<(32-bits))
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: m.field.offset(), Len: 4},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: m4[:], Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: reg1, Data: addr[:]},
	}
}

// matchIPSet is `ip daddr @cluster-ips`.
type matchIPSet struct {
	field ipField
	set   string
}

func (m matchIPSet) text() string { return fmt.Sprintf("ip %s @%s", m.field, m.set) }

func (m matchIPSet) exprs(a *assembler) []expr.Any {
	s := a.set(m.set)
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: m.field.offset(), Len: 4},
		&expr.Lookup{SourceRegister: reg1, SetName: s.Name, SetID: s.ID},
	}
}

// matchL4Proto is `meta l4proto tcp`.
type matchL4Proto struct{ proto Protocol }

func (m matchL4Proto) text() string { return "meta l4proto " + protoName(m.proto.number()) }

func (m matchL4Proto) exprs(*assembler) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{m.proto.number()}},
	}
}

// matchDport is `tcp dport 8080`; nft checks the protocol first, unprinted.
type matchDport struct {
	proto Protocol
	port  uint16
}

func (m matchDport) text() string {
	return fmt.Sprintf("%s dport %d", protoName(m.proto.number()), m.port)
}

func (m matchDport) exprs(a *assembler) []expr.Any {
	return append(matchL4Proto{m.proto}.exprs(a),
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binary.BigEndian.AppendUint16(nil, m.port)},
	)
}

// ctStateNew is `ct state new`: the first packet of a connection.
type ctStateNew struct{}

func (ctStateNew) text() string { return "ct state new" }

func (ctStateNew) exprs(*assembler) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native(expr.CtStateBitNEW), Xor: native(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: native(0)},
	}
}

// fibLocal is `fib saddr type local` or `fib daddr type local`: the
// address belongs to this network namespace.
type fibLocal struct{ field ipField }

func (f fibLocal) text() string { return fmt.Sprintf("fib %s type local", f.field) }

func (f fibLocal) exprs(*assembler) []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, ResultADDRTYPE: true, FlagSADDR: f.field == saddr, FlagDADDR: f.field == daddr},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: native(unix.RTN_LOCAL)},
	}
}

// markIs is `meta mark 0x00004000`: the whole mark equals the value.
type markIs struct{ mark uint32 }

func (m markIs) text() string { return fmt.Sprintf("meta mark 0x%08x", m.mark) }

func (m markIs) exprs(*assembler) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: native(m.mark)},
	}
}

// markBitClear is `meta mark & 0x00004000 == 0x00000000`.
type markBitClear struct{ bit uint32 }

func (m markBitClear) text() string { return fmt.Sprintf("meta mark & 0x%08x == 0x00000000", m.bit) }

func (m markBitClear) exprs(*assembler) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native(m.bit), Xor: native(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: native(0)},
	}
}

// markSet is `meta mark set meta mark | 0x00004000` (or, with flip,
// `^ 0x00004000`): set the bit, or toggle it.
type markSet struct {
	bit  uint32
	flip bool
}

func (m markSet) text() string {
	op := "|"
	if m.flip {
		op = "^"
	}
	return fmt.Sprintf("meta mark set meta mark %s 0x%08x", op, m.bit)
}

func (m markSet) exprs(*assembler) []expr.Any {
	mask := ^m.bit // or: keep the other bits, then set this one
	if m.flip {
		mask = ^uint32(0) // xor: keep every bit, then toggle this one
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native(mask), Xor: native(m.bit)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}
}

// field is one part of a concatenated lookup key.
type field int

const (
	fieldDaddr   field = iota // ip daddr
	fieldL4Proto              // meta l4proto
	fieldDport                // th dport: any transport header's destination port
)

func (f field) text() string { return [...]string{"ip daddr", "meta l4proto", "th dport"}[f] }

func (f field) load(reg uint32) expr.Any {
	switch f {
	case fieldDaddr:
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
	case fieldL4Proto:
		return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg}
	default:
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	}
}

// vmapLookup is `ip daddr . meta l4proto . th dport vmap @service-ips`:
// the packet's key looked up in a verdict map, whose verdict is taken.
type vmapLookup struct {
	fields []field
	set    string
}

func (v vmapLookup) text() string {
	parts := make([]string, len(v.fields))
	for i, f := range v.fields {
		parts[i] = f.text()
	}
	return strings.Join(parts, " . ") + " vmap @" + v.set
}

func (v vmapLookup) exprs(a *assembler) []expr.Any {
	s := a.set(v.set)
	var out []expr.Any
	for i := range v.fields {
		out = append(out, v.fields[i].load(concatReg(i))) // every field here fits one 32-bit word
	}
	return append(out, &expr.Lookup{SourceRegister: reg1, DestRegister: unix.NFT_REG_VERDICT, IsDestRegSet: true, SetName: s.Name, SetID: s.ID})
}

// numgenVmap is `numgen random mod 3 vmap { 0 : goto a, 1 : goto b, 2 : goto c }`:
// kube-proxy's load balancing, an even random choice among the chains.
type numgenVmap struct{ chains []string }

func (n numgenVmap) text() string {
	elems := make([]string, len(n.chains))
	for i, c := range n.chains {
		elems[i] = fmt.Sprintf("%d : goto %s", i, c)
	}
	return fmt.Sprintf("numgen random mod %d vmap { %s }", len(n.chains), strings.Join(elems, ", "))
}

func (n numgenVmap) exprs(a *assembler) []expr.Any {
	s := a.anonymousMap(n.chains)
	return []expr.Any{
		&expr.Numgen{Register: reg1, Modulus: uint32(len(n.chains)), Type: unix.NFT_NG_RANDOM},
		// The library marks every anonymous set's key big-endian for nft,
		// which then prints host-order keys wrongly (1 as 16777216). So
		// the keys are big-endian and numgen's number is turned to match;
		// nft hides the conversion when it prints the rule.
		&expr.Byteorder{SourceRegister: reg1, DestRegister: reg1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Lookup{SourceRegister: reg1, DestRegister: unix.NFT_REG_VERDICT, IsDestRegSet: true, SetName: s.Name, SetID: s.ID},
	}
}

// updateSaddr is `update @set { ip saddr }`: remember the client in a set
// with timeouts, refreshing its timer when it is there already.
type updateSaddr struct{ set string }

func (u updateSaddr) text() string { return "update @" + u.set + " { ip saddr }" }

func (u updateSaddr) exprs(a *assembler) []expr.Any {
	s := a.set(u.set)
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: saddr.offset(), Len: 4},
		&expr.Dynset{SrcRegKey: reg1, SetName: s.Name, SetID: s.ID, Operation: unix.NFT_DYNSET_OP_UPDATE},
	}
}

// counter counts the packets and bytes that reach it.
type counter struct{}

func (counter) text() string                { return "counter packets 0 bytes 0" }
func (counter) exprs(*assembler) []expr.Any { return []expr.Any{&expr.Counter{}} }

// dnat is `dnat to 10.244.1.2:8080`.
type dnat struct{ to netip.AddrPort }

func (d dnat) text() string { return "dnat to " + d.to.String() }

func (d dnat) exprs(*assembler) []expr.Any {
	ip := d.to.Addr().As4()
	return []expr.Any{
		&expr.Immediate{Register: reg1, Data: ip[:]},
		&expr.Immediate{Register: reg2, Data: binary.BigEndian.AppendUint16(nil, d.to.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4,
			RegAddrMin: reg1, RegAddrMax: reg1, RegProtoMin: reg2, RegProtoMax: reg2, Specified: true},
	}
}

// masquerade is `masquerade fully-random`: source NAT to the address of the
// interface the packet leaves by, with random source ports.
type masquerade struct{}

func (masquerade) text() string { return "masquerade fully-random" }

func (masquerade) exprs(*assembler) []expr.Any {
	return []expr.Any{&expr.Masq{FullyRandom: true}}
}

// reject answers with ICMP port unreachable, which a TCP client reports as
// "connection refused".
type reject struct{}

func (reject) text() string { return "reject" }

func (reject) exprs(*assembler) []expr.Any {
	const portUnreachable = 3 // ICMP destination unreachable code
	return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: portUnreachable}}
}

// decide ends a rule with a verdict.
type decide struct{ v verdict }

func (d decide) text() string { return d.v.String() }

func (d decide) exprs(*assembler) []expr.Any { return []expr.Any{d.v.expr()} }

var verdictKinds = map[verdictKind]expr.VerdictKind{
	accept: expr.VerdictAccept, drop: expr.VerdictDrop, ret: expr.VerdictReturn,
	jump: expr.VerdictJump, goTo: expr.VerdictGoto,
}

func (v verdict) expr() *expr.Verdict {
	return &expr.Verdict{Kind: verdictKinds[v.kind], Chain: v.chain}
}

// Shorthands for the verdicts rules end with.
func jumpTo(chain string) decide { return decide{verdict{kind: jump, chain: chain}} }
func gotoTo(chain string) decide { return decide{verdict{kind: goTo, chain: chain}} }
func verdictOf(k verdictKind) decide {
	return decide{verdict{kind: k}}
}
