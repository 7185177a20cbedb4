package capture

import (
	"fmt"
	"net/netip"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// Match describes IPv4 packets for a kernel filter; every field that is set
// must match, so Match{Protocol: layers.IPProtocolUDP, Port: 8472} keeps
// the VXLAN traffic of a Linux underlay and nothing else. Non-IPv4 packets
// (ARP, IPv6) never match. Only the outer header is looked at: matching the
// packet inside a tunnel is a job for Expect.
type Match struct {
	Protocol layers.IPProtocol // 0: any
	// Host is the source or the destination address.
	Host netip.Addr
	// Port is the TCP or UDP source or destination port; non-first
	// fragments, which carry no ports, never match it.
	Port uint16
}

// skfNetOff is the kernel's SKF_NET_OFF: loads at this offset and beyond
// read from the network header instead of the link-layer header, so one
// program works on Ethernet devices and bare-IP tunnels alike.
const skfNetOff = 0xfff00000 // -0x100000 as the kernel reads it

// Program compiles m to classic BPF for Options.Filter. Accepted packets are
// kept whole (up to the capture's snaplen).
func (m Match) Program() ([]bpf.RawInstruction, error) {
	if m.Host.IsValid() && !m.Host.Unmap().Is4() {
		return nil, fmt.Errorf("match host %s: only IPv4 addresses can be matched", m.Host)
	}
	if m.Port != 0 && m.Protocol != 0 && m.Protocol != layers.IPProtocolTCP && m.Protocol != layers.IPProtocolUDP {
		return nil, fmt.Errorf("match port %d: protocol %s has no ports", m.Port, m.Protocol)
	}
	var prog []bpf.Instruction
	var rejects []int // jumps whose false branch goes to the final "drop"
	jumpUnless := func(cond bpf.JumpTest, val uint32) {
		rejects = append(rejects, len(prog))
		prog = append(prog, bpf.JumpIf{Cond: cond, Val: val})
	}
	// skb->protocol is the EtherType, whatever the device's header.
	prog = append(prog, bpf.LoadExtension{Num: bpf.ExtProto})
	jumpUnless(bpf.JumpEqual, uint32(layers.EthernetTypeIPv4))
	if m.Protocol != 0 {
		prog = append(prog, bpf.LoadAbsolute{Off: skfNetOff + 9, Size: 1})
		jumpUnless(bpf.JumpEqual, uint32(m.Protocol))
	}
	if m.Host.IsValid() {
		a := m.Host.Unmap().As4()
		host := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
		prog = append(prog,
			bpf.LoadAbsolute{Off: skfNetOff + 12, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: host, SkipTrue: 2},
			bpf.LoadAbsolute{Off: skfNetOff + 16, Size: 4},
		)
		jumpUnless(bpf.JumpEqual, host)
	}
	if m.Port != 0 {
		if m.Protocol == 0 {
			prog = append(prog,
				bpf.LoadAbsolute{Off: skfNetOff + 9, Size: 1},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(layers.IPProtocolTCP), SkipTrue: 1},
			)
			jumpUnless(bpf.JumpEqual, uint32(layers.IPProtocolUDP))
		}
		prog = append(prog,
			bpf.LoadAbsolute{Off: skfNetOff + 6, Size: 2},
		)
		rejects = append(rejects, len(prog))
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpBitsNotSet, Val: 0x1fff}) // fragment offset 0
		prog = append(prog,
			bpf.LoadMemShift{Off: skfNetOff}, // X = IP header length
			bpf.LoadIndirect{Off: skfNetOff, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(m.Port), SkipTrue: 2},
			bpf.LoadIndirect{Off: skfNetOff + 2, Size: 2},
		)
		jumpUnless(bpf.JumpEqual, uint32(m.Port))
	}
	prog = append(prog, bpf.RetConstant{Val: DefaultSnaplen}, bpf.RetConstant{Val: 0})
	drop := len(prog) - 1
	for _, i := range rejects {
		j := prog[i].(bpf.JumpIf)
		j.SkipFalse = uint8(drop - i - 1)
		prog[i] = j
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble filter: %w", err)
	}
	return raw, nil
}

// MustProgram is Program for matches known to be valid, such as literals.
func (m Match) MustProgram() []bpf.RawInstruction {
	prog, err := m.Program()
	if err != nil {
		panic(err)
	}
	return prog
}
