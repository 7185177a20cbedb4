package capture

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gopacket/gopacket/layers"
)

// String renders the packet on one line the way `tcpdump -i any -n` does,
// which is what students compare it with, after where it was seen:
//
//	node1:eth0 Out IP 192.168.1.10 > 192.168.2.20: ICMP echo request, id 1, seq 1, length 64
//
// Tunnelled packets show the outer headers, then the inner packet after a
// colon; tcpdump starts a new line for VXLAN's inner frame, this stays on one.
func (p Packet) String() string {
	var b strings.Builder
	if p.Interface != "" {
		b.WriteString(p.Where())
		b.WriteByte(' ')
		b.WriteString(p.Type.String())
		b.WriteByte(' ')
	}
	if p.Eth == nil && p.IPv4 == nil && p.IPv6 == nil {
		fmt.Fprintf(&b, "unknown %s frame, length %d", p.LinkType, p.Length)
		if p.Err != "" {
			b.WriteString(" [|" + p.Err + "]")
		}
		return b.String()
	}
	p.Headers.format(&b)
	return b.String()
}

// Where names the place the packet was seen: "node1:eth0", or just the
// interface when the capture has no label.
func (p Packet) Where() string {
	if p.Label == "" {
		return p.Interface
	}
	return p.Label + ":" + p.Interface
}

// String renders this level and the ones inside it, without interface and
// direction.
func (h *Headers) String() string {
	var b strings.Builder
	h.format(&b)
	return b.String()
}

func (h *Headers) format(b *strings.Builder) {
	if h.Eth != nil && h.Eth.VLAN != 0 {
		fmt.Fprintf(b, "vlan %d, ", h.Eth.VLAN)
	}
	switch {
	case h.ARP != nil:
		h.formatARP(b)
	case h.IPv4 != nil:
		h.formatIPv4(b)
	case h.IPv6 != nil:
		h.formatIPv6(b)
	case h.Eth != nil:
		name := h.Eth.Type.String()
		if strings.HasPrefix(name, "Unknown") {
			name = "Unknown"
		}
		fmt.Fprintf(b, "ethertype %s (0x%04x)", name, uint16(h.Eth.Type))
	}
	if h.Err != "" {
		b.WriteString(" [|" + h.Err + "]")
	}
}

func (h *Headers) formatARP(b *strings.Builder) {
	a := h.ARP
	switch a.Op {
	case ARPRequest:
		fmt.Fprintf(b, "ARP, Request who-has %s tell %s", a.TargetIP, a.SenderIP)
	case ARPReply:
		fmt.Fprintf(b, "ARP, Reply %s is-at %s", a.SenderIP, a.SenderMAC)
	default:
		fmt.Fprintf(b, "ARP, op %d", a.Op)
	}
	fmt.Fprintf(b, ", length %d", a.Length)
}

func (h *Headers) formatIPv4(b *strings.Builder) {
	ip := h.IPv4
	if ip.FragOff != 0 {
		// No transport header in a later fragment: say what it belongs to.
		fmt.Fprintf(b, "IP %s > %s: ip-proto-%d (frag %d:%d@%d%s)", ip.Src, ip.Dst, ip.Protocol,
			ip.ID, int(ip.Length)-int(ip.HdrLen), ip.FragOff, plusIf(ip.MF))
		return
	}
	h.formatIP(b, "IP", ip.Src, ip.Dst, ip.Protocol, int(ip.Length)-int(ip.HdrLen))
	if ip.MF {
		fmt.Fprintf(b, " (frag %d:%d@0+)", ip.ID, int(ip.Length)-int(ip.HdrLen))
	}
}

func (h *Headers) formatIPv6(b *strings.Builder) {
	ip := h.IPv6
	h.formatIP(b, "IP6", ip.Src, ip.Dst, ip.NextHeader, int(ip.Length))
}

// formatIP writes "IP src > dst: <transport>" with ports after the
// addresses, tcpdump's "10.0.0.1.40000 > 10.0.0.2.80".
func (h *Headers) formatIP(b *strings.Builder, family string, src, dst netip.Addr, proto layers.IPProtocol, payload int) {
	switch {
	case h.TCP != nil:
		t := h.TCP
		// Sequence numbers are absolute, as with tcpdump -S: a line knows
		// nothing of the connection's first one.
		fmt.Fprintf(b, "%s %s.%d > %s.%d: Flags [%s], seq %d", family, src, t.SrcPort, dst, t.DstPort, t.Flags, t.Seq)
		if t.PayloadLen > 0 {
			fmt.Fprintf(b, ":%d", t.Seq+uint32(t.PayloadLen))
		}
		if t.Flags&TCPAck != 0 {
			fmt.Fprintf(b, ", ack %d", t.Ack)
		}
		fmt.Fprintf(b, ", win %d, length %d", t.Window, t.PayloadLen)
	case h.UDP != nil:
		u := h.UDP
		fmt.Fprintf(b, "%s %s.%d > %s.%d: ", family, src, u.SrcPort, dst, u.DstPort)
		if h.VXLAN != nil {
			fmt.Fprintf(b, "VXLAN, flags [%s] (0x%02x), vni %d", vxlanFlags(h.VXLAN.Flags), h.VXLAN.Flags, h.VXLAN.VNI)
			if h.Inner != nil {
				b.WriteString(": ")
				h.Inner.format(b)
			}
			return
		}
		fmt.Fprintf(b, "UDP, length %d", max(int(u.Length)-8, 0))
	case h.ICMP != nil:
		fmt.Fprintf(b, "%s %s > %s: ICMP %s, length %d", family, src, dst, icmpText(h.ICMP), h.ICMP.Length)
	case h.ICMPv6 != nil:
		fmt.Fprintf(b, "%s %s > %s: ICMP6, %s, length %d", family, src, dst, icmp6Text(h.ICMPv6), h.ICMPv6.Length)
	case h.IGMP != nil:
		fmt.Fprintf(b, "%s %s > %s: %s", family, src, dst, igmpText(h.IGMP))
	case h.Inner != nil:
		// IP in IP, as tcpdump 4.99 prints it (older ones added
		// "(ipip-proto-4)").
		fmt.Fprintf(b, "%s %s > %s: ", family, src, dst)
		h.Inner.format(b)
	default:
		fmt.Fprintf(b, "%s %s > %s: ip-proto-%d %d", family, src, dst, uint8(proto), payload)
	}
}

func plusIf(mf bool) string {
	if mf {
		return "+"
	}
	return ""
}

func vxlanFlags(f uint8) string {
	if f&0x08 != 0 {
		return "I"
	}
	return "none"
}

var unreachText = [...]string{
	0:  "net %s unreachable",
	1:  "host %s unreachable",
	2:  "%s protocol %d unreachable",
	3:  "%s %s port %d unreachable",
	4:  "%s unreachable - need to frag (mtu %d)",
	5:  "%s unreachable - source route failed",
	6:  "net %s unreachable - unknown",
	7:  "host %s unreachable - unknown",
	9:  "net %s unreachable - admin prohibited",
	10: "host %s unreachable - admin prohibited",
	13: "host %s unreachable - admin prohibited filter",
}

// icmpText follows tcpdump's wording, so the error messages a lab provokes
// (port unreachable, need to frag, time exceeded) read the same as there.
func icmpText(m *ICMP) string {
	switch m.Type {
	case ICMPEchoReply:
		return fmt.Sprintf("echo reply, id %d, seq %d", m.ID, m.Seq)
	case ICMPEchoRequest:
		return fmt.Sprintf("echo request, id %d, seq %d", m.ID, m.Seq)
	case ICMPUnreachable:
		q := m.Quoted
		if q == nil || int(m.Code) >= len(unreachText) || unreachText[m.Code] == "" {
			return fmt.Sprintf("destination unreachable, code %d", m.Code)
		}
		f := unreachText[m.Code]
		switch m.Code {
		case 2:
			return fmt.Sprintf(f, q.Dst, uint8(q.Protocol))
		case 3:
			return fmt.Sprintf(f, q.Dst, strings.ToLower(q.Protocol.String()), q.DstPort)
		case 4:
			return fmt.Sprintf(f, q.Dst, q.MTU)
		}
		return fmt.Sprintf(f, q.Dst)
	case ICMPRedirect:
		return "redirect"
	case ICMPTimeExceeded:
		if m.Code == 1 {
			return "ip reassembly time exceeded"
		}
		return "time exceeded in-transit"
	case ICMPParamProblem:
		return "parameter problem"
	case 13:
		return "time stamp query"
	case 14:
		return "time stamp reply"
	}
	return fmt.Sprintf("type-#%d", m.Type)
}

// igmpText follows tcpdump's wording for the messages labs show.
func igmpText(m *IGMP) string {
	switch m.Type {
	case 0x11:
		var s string
		switch {
		case m.Length >= 12:
			s = "igmp query v3"
		case m.MaxResp == 0:
			s = "igmp query v1"
		default:
			s = "igmp query v2"
			if m.MaxResp != 100 {
				s += fmt.Sprintf(" [max resp time %d]", m.MaxResp)
			}
		}
		if !m.Group.IsUnspecified() {
			s += fmt.Sprintf(" [gaddr %s]", m.Group)
		}
		return s
	case 0x12:
		return fmt.Sprintf("igmp v1 report %s", m.Group)
	case 0x16:
		return fmt.Sprintf("igmp v2 report %s", m.Group)
	case 0x17:
		return fmt.Sprintf("igmp leave %s", m.Group)
	case 0x22:
		return fmt.Sprintf("igmp v3 report, %d group record(s)", m.Records)
	}
	return fmt.Sprintf("igmp-%d", m.Type)
}

func icmp6Text(m *ICMP) string {
	switch m.Type {
	case 1:
		return "destination unreachable"
	case ICMPv6PacketTooBig:
		return "packet too big"
	case 3:
		return "time exceeded in-transit"
	case 4:
		return "parameter problem"
	case ICMPv6EchoRequest:
		return fmt.Sprintf("echo request, id %d, seq %d", m.ID, m.Seq)
	case ICMPv6EchoReply:
		return fmt.Sprintf("echo reply, id %d, seq %d", m.ID, m.Seq)
	case 130:
		return "multicast listener query"
	case 131:
		return "multicast listener report"
	case 133:
		return "router solicitation"
	case 134:
		return "router advertisement"
	case 135:
		return "neighbor solicitation"
	case 136:
		return "neighbor advertisement"
	case 143:
		return "multicast listener report v2"
	}
	return fmt.Sprintf("type %d", m.Type)
}
