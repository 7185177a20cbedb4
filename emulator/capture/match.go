package capture

import (
	"encoding/binary"
	"slices"
	"sync"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// Matches reports whether a packet (from its link-layer header on, link
// Ethernet or Raw) matches the whole expression, the parts inside tunnels
// included. vxlanPorts are UDP destination ports carrying VXLAN besides
// 4789 and 8472. Matching runs the same compiled programs the kernel runs,
// so a packet matches here exactly when the kernel's filter would keep it,
// and the inner packet is judged as if it had been captured on its own.
func (e *Expr) Matches(data []byte, link layers.LinkType, vxlanPorts ...uint16) bool {
	e.evalOnce.Do(e.buildEval)
	kind := kindOf(link)
	if kind == linkAny {
		kind = linkEthernet
	}
	m := matcher{e: e, outer: level{data, kind}, ports: vxlanPorts}
	return m.eval(e.eval)
}

// evalNode is the expression with every part that does not look inside a
// tunnel compiled into one program, for Ethernet and for bare IP.
type evalNode struct {
	op   byte // '&', '|', '!', 'i' (inner), 'p' (program)
	kids []*evalNode
	vms  [2]*bpf.VM // for linkEthernet and linkRaw
}

func (e *Expr) buildEval() { e.eval = e.evalTree(e.root) }

func (e *Expr) evalTree(n node) *evalNode {
	if !hasInner(n) {
		en := &evalNode{op: 'p'}
		for i, k := range []linkKind{linkEthernet, linkRaw} {
			ins, err := compile(n, k, 1, nil)
			if err == nil {
				en.vms[i], err = bpf.NewVM(ins)
			}
			if err != nil {
				// ParseExpr made n; a program it cannot run is a bug
				// here, not a user error.
				panic("capture: compile filter part: " + err.Error())
			}
		}
		return en
	}
	switch n := n.(type) {
	case andNode:
		return &evalNode{op: '&', kids: []*evalNode{e.evalTree(n.l), e.evalTree(n.r)}}
	case orNode:
		return &evalNode{op: '|', kids: []*evalNode{e.evalTree(n.l), e.evalTree(n.r)}}
	case notNode:
		return &evalNode{op: '!', kids: []*evalNode{e.evalTree(n.x)}}
	case innerNode:
		return &evalNode{op: 'i', kids: []*evalNode{e.evalTree(n.x)}}
	}
	panic("capture: filter node")
}

type level struct {
	data []byte
	link linkKind // linkEthernet or linkRaw
}

type matcher struct {
	e      *Expr
	outer  level
	ports  []uint16
	inner  []level
	walked bool
}

func (m *matcher) eval(n *evalNode) bool {
	switch n.op {
	case '&':
		return m.eval(n.kids[0]) && m.eval(n.kids[1])
	case '|':
		return m.eval(n.kids[0]) || m.eval(n.kids[1])
	case '!':
		return !m.eval(n.kids[0])
	case 'i':
		if !m.walked {
			m.inner = tunnelLevels(m.outer, append([]uint16{VXLANPortIANA, VXLANPortLinux}, m.ports...))
			m.walked = true
		}
		for _, l := range m.inner {
			if run(n.kids[0], l) {
				return true
			}
		}
		return false
	}
	return run(n, m.outer)
}

func run(n *evalNode, l level) bool {
	vm := n.vms[0]
	data := l.data
	if l.link == linkRaw {
		vm = n.vms[1]
	} else {
		data = untagged(data)
	}
	keep, err := vm.Run(data)
	return err == nil && keep > 0
}

// untagged removes 802.1Q tags, which the kernel takes off before its
// filter runs while a capture puts them back for the record.
func untagged(frame []byte) []byte {
	if len(frame) < 18 || !isVLAN(binary.BigEndian.Uint16(frame[12:])) {
		return frame
	}
	out := slices.Clone(frame[:12])
	rest := frame[12:]
	for len(rest) >= 6 && isVLAN(binary.BigEndian.Uint16(rest)) {
		rest = rest[4:]
	}
	return append(out, rest...)
}

func isVLAN(et uint16) bool {
	return et == uint16(layers.EthernetTypeDot1Q) || et == uint16(layers.EthernetTypeQinQ)
}

// tunnelLevels returns the packets nested in l: the Ethernet frame inside
// VXLAN (UDP to one of ports), the IP packet inside IPIP or IPv6-in-IP, and
// what those carry in turn. It follows the same rules as the decoder.
func tunnelLevels(l level, ports []uint16) []level {
	var out []level
	for range 8 { // deeper nesting than this is not a lab's
		next, ok := innerLevel(l, ports)
		if !ok {
			return out
		}
		out = append(out, next)
		l = next
	}
	return out
}

func innerLevel(l level, ports []uint16) (level, bool) {
	d := l.data
	var et uint16
	if l.link == linkEthernet {
		d = untagged(d)
		if len(d) < 14 {
			return level{}, false
		}
		et, d = binary.BigEndian.Uint16(d[12:]), d[14:]
	} else if len(d) > 0 {
		et = map[byte]uint16{4: etIPv4, 6: etIPv6}[d[0]>>4]
	}
	var proto byte
	var payload []byte
	switch {
	case et == etIPv4 && len(d) >= 20:
		ihl := int(d[0]&0x0f) * 4
		if ihl < 20 || len(d) < ihl || binary.BigEndian.Uint16(d[6:])&0x1fff != 0 {
			return level{}, false
		}
		proto, payload = d[9], d[ihl:]
	case et == etIPv6 && len(d) >= 40:
		proto, payload = d[6], d[40:]
	default:
		return level{}, false
	}
	switch proto {
	case byte(layers.IPProtocolIPv4), byte(layers.IPProtocolIPv6):
		return level{payload, linkRaw}, len(payload) > 0
	case byte(layers.IPProtocolUDP):
		if len(payload) >= 8+8+14 && slices.Contains(ports, binary.BigEndian.Uint16(payload[2:])) {
			return level{payload[16:], linkEthernet}, true
		}
	}
	return level{}, false
}

// evalState is what Matches builds once per expression.
type evalState struct {
	evalOnce sync.Once
	eval     *evalNode
}
