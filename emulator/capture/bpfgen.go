package capture

import (
	"fmt"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// linkKind says where the network header starts for the kernel filter.
type linkKind uint8

const (
	// linkAny works on every device: the EtherType comes from
	// skb->protocol and loads count from the network header (SKF_NET_OFF),
	// for a socket that captures all interfaces of a namespace. The kernel
	// reads such loads from the packet's linear part only, which holds
	// the headers of every packet labs make.
	linkAny linkKind = iota
	// linkEthernet is tcpdump's DLT_EN10MB: the network header at 14.
	linkEthernet
	// linkRaw is DLT_RAW: a bare IP packet, as TUN and layer-3 tunnel
	// devices deliver it; the IP version says which.
	linkRaw
)

func kindOf(link layers.LinkType) linkKind {
	switch link {
	case layers.LinkTypeEthernet:
		return linkEthernet
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		return linkRaw
	}
	return linkAny
}

// EtherTypes and protocol numbers the filters test.
const (
	etIPv4 = 0x0800
	etARP  = 0x0806
	etRARP = 0x8035
	etIPv6 = 0x86dd

	ipProtoFragment = 44 // IPv6 fragment header
)

// Program compiles the expression for a kernel socket filter
// (SO_ATTACH_FILTER) on a device of the given link type: Ethernet, Raw
// (bare IP), or any other value for a socket that captures every interface
// of a namespace. Accepted packets are kept up to snaplen bytes. When the
// expression looks inside tunnels (see Exact), the program keeps every
// packet that could match, using vxlanPorts besides 4789 and 8472 to
// recognise VXLAN, and Matches must decide.
func (e *Expr) Program(link layers.LinkType, snaplen int, vxlanPorts ...uint16) ([]bpf.RawInstruction, error) {
	if snaplen <= 0 {
		snaplen = DefaultSnaplen
	}
	ins, err := compile(e.root, kindOf(link), uint32(snaplen), append([]uint16{VXLANPortIANA, VXLANPortLinux}, vxlanPorts...))
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", e.text, err)
	}
	raw, err := bpf.Assemble(ins)
	if err != nil {
		return nil, fmt.Errorf("filter %q: assemble: %w", e.text, err)
	}
	return raw, nil
}

// maxInsns is the kernel's BPF_MAXINSNS for classic programs.
const maxInsns = 4096

func compile(root node, link linkKind, snaplen uint32, ports []uint16) ([]bpf.Instruction, error) {
	g := &gen{link: link, ports: ports}
	accept, reject := g.label(), g.label()
	g.node(root, accept, reject, true)
	g.mark(accept)
	g.emit(bpf.RetConstant{Val: snaplen})
	g.mark(reject)
	g.emit(bpf.RetConstant{Val: 0})
	ins := g.assemble()
	if len(ins) > maxInsns {
		return nil, fmt.Errorf("too long for the kernel (%d instructions, at most %d)", len(ins), maxInsns)
	}
	return ins, nil
}

// gen emits a program as a list of instructions and jumps to labels. Every
// jump goes forward, because the code for a subexpression always comes
// before the labels its outcomes lead to, as classic BPF requires.
type gen struct {
	link   linkKind
	ports  []uint16 // VXLAN ports, for inner's stand-in
	items  []item
	labels int
}

type label int

// item is one instruction, a jump to labels, or a label's position.
type item struct {
	ins      bpf.Instruction // a plain instruction
	jump     bool            // a conditional jump: cond val, then t or f
	cond     bpf.JumpTest
	val      uint32
	t, f     label
	ja       bool // an unconditional jump to t
	isMark   bool
	markedAs label
}

func (g *gen) label() label {
	g.labels++
	return label(g.labels)
}

func (g *gen) emit(ins bpf.Instruction) { g.items = append(g.items, item{ins: ins}) }
func (g *gen) mark(l label)             { g.items = append(g.items, item{isMark: true, markedAs: l}) }
func (g *gen) jump(l label)             { g.items = append(g.items, item{ja: true, t: l}) }
func (g *gen) jif(cond bpf.JumpTest, val uint32, t, f label) {
	g.items = append(g.items, item{jump: true, cond: cond, val: val, t: t, f: f})
}

// node emits code that jumps to t when n holds and to f when not. pos is
// false under an odd number of "not"s: there, a part that needs the inner
// packet counts as false, elsewhere as "a tunnel packet", so the program
// keeps a superset of what the whole expression matches.
func (g *gen) node(n node, t, f label, pos bool) {
	switch n := n.(type) {
	case constNode:
		if n {
			g.jump(t)
		} else {
			g.jump(f)
		}
	case andNode:
		mid := g.label()
		g.node(n.l, mid, f, pos)
		g.mark(mid)
		g.node(n.r, t, f, pos)
	case orNode:
		mid := g.label()
		g.node(n.l, t, mid, pos)
		g.mark(mid)
		g.node(n.r, t, f, pos)
	case notNode:
		g.node(n.x, f, t, !pos)
	case innerNode:
		if !pos {
			g.jump(f)
			return
		}
		g.node(tunnelNode(g.ports), t, f, true)
	case prim:
		g.prim(n, t, f)
	default:
		panic(fmt.Sprintf("capture: filter node %T", n))
	}
}

// tunnelNode matches packets that carry another packet: UDP to a VXLAN
// port, IPIP, IPv6 in IP.
func tunnelNode(ports []uint16) node {
	var n node = prim{kind: "proto", num: uint8(layers.IPProtocolIPv4)}
	n = orNode{n, prim{kind: "proto", num: uint8(layers.IPProtocolIPv6)}}
	for _, p := range ports {
		n = orNode{n, prim{proto: "udp", dir: "dst", kind: "port", lo: p, hi: p}}
	}
	return n
}

// Loads, relative to the network header whatever the link.

func (g *gen) netBase() uint32 {
	switch g.link {
	case linkEthernet:
		return 14
	case linkRaw:
		return 0
	}
	return skfNetOff
}

func (g *gen) loadNet(off uint32, size int) {
	g.emit(bpf.LoadAbsolute{Off: g.netBase() + off, Size: size})
}

// etherType jumps to t when the packet is of EtherType et.
func (g *gen) etherType(et uint16, t, f label) {
	switch g.link {
	case linkEthernet:
		g.emit(bpf.LoadAbsolute{Off: 12, Size: 2})
		g.jif(bpf.JumpEqual, uint32(et), t, f)
	case linkRaw:
		// A bare IP packet says its family in its first nibble; nothing
		// else travels on such a device.
		version := map[uint16]uint32{etIPv4: 0x40, etIPv6: 0x60}[et]
		if version == 0 {
			g.jump(f)
			return
		}
		g.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
		g.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
		g.jif(bpf.JumpEqual, version, t, f)
	default:
		g.emit(bpf.LoadExtension{Num: bpf.ExtProto})
		g.jif(bpf.JumpEqual, uint32(et), t, f)
	}
}

func (g *gen) prim(p prim, t, f label) {
	switch p.kind {
	case "":
		g.bareProto(p.proto, t, f)
	case "proto":
		switch p.proto {
		case "ip":
			g.ip4Proto([]uint8{p.num}, t, f)
		case "ip6":
			g.ip6Proto(p.num, t, f)
		default:
			g.anyProto(p.num, t, f)
		}
	case "host", "net":
		g.address(p, t, f)
	case "port", "portrange":
		g.ports4and6(p, t, f)
	default:
		panic("capture: filter primitive " + p.kind)
	}
}

func (g *gen) bareProto(proto string, t, f label) {
	switch proto {
	case "ip":
		g.etherType(etIPv4, t, f)
	case "ip6":
		g.etherType(etIPv6, t, f)
	case "arp":
		g.etherType(etARP, t, f)
	case "rarp":
		g.etherType(etRARP, t, f)
	case "icmp":
		g.ip4Proto([]uint8{uint8(layers.IPProtocolICMPv4)}, t, f)
	case "icmp6":
		g.ip6Proto(uint8(layers.IPProtocolICMPv6), t, f)
	default:
		g.anyProto(protoNumbers[proto], t, f)
	}
}

// anyProto is tcpdump's "proto N": IPv4's protocol, or IPv6's next header
// (also behind a fragment header).
func (g *gen) anyProto(num uint8, t, f label) {
	v6 := g.label()
	g.ip4ProtoOr([]uint8{num}, t, v6, v6)
	g.mark(v6)
	g.ip6Proto(num, t, f)
}

func (g *gen) ip4Proto(nums []uint8, t, f label) { g.ip4ProtoOr(nums, t, f, f) }

// ip4ProtoOr jumps to t when the packet is IPv4 with one of the protocols,
// to f when it is IPv4 with another, to notIP when it is not IPv4.
func (g *gen) ip4ProtoOr(nums []uint8, t, f, notIP label) {
	l := g.label()
	g.etherType(etIPv4, l, notIP)
	g.mark(l)
	g.loadNet(9, 1)
	g.oneOf(nums, t, f)
}

// oneOf jumps to t when A is one of vals.
func (g *gen) oneOf(vals []uint8, t, f label) {
	for i, v := range vals {
		if i == len(vals)-1 {
			g.jif(bpf.JumpEqual, uint32(v), t, f)
			return
		}
		next := g.label()
		g.jif(bpf.JumpEqual, uint32(v), t, next)
		g.mark(next)
	}
}

func (g *gen) ip6Proto(num uint8, t, f label) {
	l, frag, fragHdr := g.label(), g.label(), g.label()
	g.etherType(etIPv6, l, f)
	g.mark(l)
	g.loadNet(6, 1)
	g.jif(bpf.JumpEqual, uint32(num), t, frag)
	g.mark(frag)
	g.jif(bpf.JumpEqual, ipProtoFragment, fragHdr, f)
	g.mark(fragHdr)
	g.loadNet(40, 1)
	g.jif(bpf.JumpEqual, uint32(num), t, f)
}

// address matches host and net: IPv4 in IP, ARP and RARP (sender and
// target), as tcpdump does, or IPv6.
func (g *gen) address(p prim, t, f label) {
	if p.net.Addr().Is6() {
		l := g.label()
		g.etherType(etIPv6, l, f)
		g.mark(l)
		g.addrDir(p, 8, 24, t, f)
		return
	}
	type part struct {
		et       uint16
		src, dst uint32
	}
	var parts []part
	if p.proto == "" || p.proto == "ip" {
		parts = append(parts, part{etIPv4, 12, 16})
	}
	if p.proto == "" || p.proto == "arp" {
		parts = append(parts, part{etARP, 14, 24})
	}
	if p.proto == "" || p.proto == "rarp" {
		parts = append(parts, part{etRARP, 14, 24})
	}
	for i, pt := range parts {
		next := f
		if i < len(parts)-1 {
			next = g.label()
		}
		l := g.label()
		g.etherType(pt.et, l, next)
		g.mark(l)
		g.addrDir(p, pt.src, pt.dst, t, next)
		if next != f {
			g.mark(next)
		}
	}
}

// addrDir tests the source and/or destination address at the offsets.
func (g *gen) addrDir(p prim, src, dst uint32, t, f label) {
	g.dir(p.dir, func(which string, t, f label) {
		off := src
		if which == "dst" {
			off = dst
		}
		g.addrAt(p, off, t, f)
	}, t, f)
}

// dir combines a test of the source and one of the destination as the
// direction qualifier says.
func (g *gen) dir(dir string, test func(which string, t, f label), t, f label) {
	switch dir {
	case "src", "dst":
		test(dir, t, f)
	case "src and dst":
		mid := g.label()
		test("src", mid, f)
		g.mark(mid)
		test("dst", t, f)
	default: // "" and "src or dst"
		mid := g.label()
		test("src", t, mid)
		g.mark(mid)
		test("dst", t, f)
	}
}

// addrAt compares the address at off with the prefix, 32 bits at a time.
func (g *gen) addrAt(p prim, off uint32, t, f label) {
	a := p.net.Addr().AsSlice()
	bits := p.net.Bits()
	type word struct{ off, val, mask uint32 }
	var words []word
	for i := 0; i < len(a); i += 4 {
		mask := uint32(0)
		for b := 0; b < 32; b++ {
			if i*8+b < bits {
				mask |= 1 << (31 - b)
			}
		}
		if mask == 0 {
			continue
		}
		val := uint32(a[i])<<24 | uint32(a[i+1])<<16 | uint32(a[i+2])<<8 | uint32(a[i+3])
		words = append(words, word{off + uint32(i), val, mask})
	}
	if len(words) == 0 { // net 0.0.0.0/0 matches every packet of the family
		g.jump(t)
		return
	}
	for i, w := range words {
		g.loadNet(w.off, 4)
		if w.mask != 0xffffffff {
			g.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: w.mask})
		}
		if i == len(words)-1 {
			g.jif(bpf.JumpEqual, w.val, t, f)
			break
		}
		next := g.label()
		g.jif(bpf.JumpEqual, w.val, next, f)
		g.mark(next)
	}
}

// ports4and6 matches port and portrange on TCP, UDP or SCTP over IPv6 (no
// extension headers) and over IPv4 (first fragments only), as tcpdump.
func (g *gen) ports4and6(p prim, t, f label) {
	protos := []uint8{uint8(layers.IPProtocolSCTP), uint8(layers.IPProtocolTCP), uint8(layers.IPProtocolUDP)}
	if p.proto != "" {
		protos = []uint8{protoNumbers[p.proto]}
	}
	v6, v4, ports6 := g.label(), g.label(), g.label()
	g.etherType(etIPv6, v6, v4)
	g.mark(v6)
	g.loadNet(6, 1)
	g.oneOf(protos, ports6, f)
	g.mark(ports6)
	g.dir(p.dir, func(which string, t, f label) {
		off := uint32(40)
		if which == "dst" {
			off = 42
		}
		g.loadNet(off, 2)
		g.portCompare(p, t, f)
	}, t, f)

	g.mark(v4)
	ip4, first, ports4 := g.label(), g.label(), g.label()
	g.etherType(etIPv4, ip4, f)
	g.mark(ip4)
	g.loadNet(9, 1)
	g.oneOf(protos, first, f)
	g.mark(first)
	g.loadNet(6, 2)
	g.jif(bpf.JumpBitsSet, 0x1fff, f, ports4) // later fragments carry no ports
	g.mark(ports4)
	g.emit(bpf.LoadMemShift{Off: g.netBase()})
	g.dir(p.dir, func(which string, t, f label) {
		off := g.netBase()
		if which == "dst" {
			off += 2
		}
		g.emit(bpf.LoadIndirect{Off: off, Size: 2})
		g.portCompare(p, t, f)
	}, t, f)
}

func (g *gen) portCompare(p prim, t, f label) {
	if p.kind == "port" {
		g.jif(bpf.JumpEqual, uint32(p.lo), t, f)
		return
	}
	mid := g.label()
	g.jif(bpf.JumpGreaterOrEqual, uint32(p.lo), mid, f)
	g.mark(mid)
	g.jif(bpf.JumpGreaterThan, uint32(p.hi), f, t)
}

// assemble resolves labels into relative skips. A conditional jump reaches
// at most 255 instructions ahead; one that must go further becomes a jump
// to two unconditional jumps right behind it, and positions are computed
// again until everything fits.
func (g *gen) assemble() []bpf.Instruction {
	far := map[int]bool{} // conditional jumps that need the long form
	for {
		pos := make([]int, len(g.items))
		at := map[label]int{}
		n := 0
		for i, it := range g.items {
			pos[i] = n
			switch {
			case it.isMark:
				at[it.markedAs] = n
			case it.jump && far[i]:
				n += 3
			default:
				n++
			}
		}
		grew := false
		for i, it := range g.items {
			if it.jump && !far[i] && (at[it.t]-pos[i]-1 > 255 || at[it.f]-pos[i]-1 > 255) {
				far[i] = true
				grew = true
			}
		}
		if grew {
			continue
		}
		out := make([]bpf.Instruction, 0, n)
		for i, it := range g.items {
			switch {
			case it.isMark:
			case it.ja:
				out = append(out, bpf.Jump{Skip: uint32(at[it.t] - pos[i] - 1)})
			case it.jump && far[i]:
				out = append(out,
					bpf.JumpIf{Cond: it.cond, Val: it.val, SkipTrue: 0, SkipFalse: 1},
					bpf.Jump{Skip: uint32(at[it.t] - pos[i] - 2)},
					bpf.Jump{Skip: uint32(at[it.f] - pos[i] - 3)})
			case it.jump:
				out = append(out, bpf.JumpIf{Cond: it.cond, Val: it.val,
					SkipTrue: uint8(at[it.t] - pos[i] - 1), SkipFalse: uint8(at[it.f] - pos[i] - 1)})
			default:
				out = append(out, it.ins)
			}
		}
		return dropNopJumps(out)
	}
}

// dropNopJumps leaves out "ja +0", which an and/or leaves where its label
// falls right behind the jump. Removing one shifts nothing: a jump over it
// still lands where it did, so other skips are corrected by one when they
// pass over it.
func dropNopJumps(ins []bpf.Instruction) []bpf.Instruction {
	for i := 0; i < len(ins); i++ {
		j, ok := ins[i].(bpf.Jump)
		if !ok || j.Skip != 0 {
			continue
		}
		for k := 0; k < i; k++ {
			switch x := ins[k].(type) {
			case bpf.Jump:
				if k+int(x.Skip) >= i {
					x.Skip--
					ins[k] = x
				}
			case bpf.JumpIf:
				if k+int(x.SkipTrue) >= i {
					x.SkipTrue--
				}
				if k+int(x.SkipFalse) >= i {
					x.SkipFalse--
				}
				ins[k] = x
			}
		}
		ins = append(ins[:i], ins[i+1:]...)
		i--
	}
	return ins
}
