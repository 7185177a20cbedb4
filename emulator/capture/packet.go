package capture

import (
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Packet is one captured packet: where and when it was seen, its bytes, and
// its headers decoded.
type Packet struct {
	Time      time.Time
	Namespace string // namespace path the capture was opened in
	// Label names where the packet was seen, such as the node or pod
	// whose namespace it is (Options.Label); "" when not given.
	Label     string
	Interface string // interface the packet crossed, such as "eth0"
	Ifindex   int
	Type      PacketType
	// Length is the packet's length on the wire; Data may be shorter when
	// the snaplen or a filter cut it.
	Length int
	// Data is the packet from its link-layer header on. It is the Packet's
	// own copy, and Decoded refers into it: treat it as read-only.
	Data []byte
	// LinkType is Ethernet for most devices, Raw (bare IP) for TUN devices
	// and layer-3 tunnels.
	LinkType layers.LinkType
	// Decoded is gopacket's decoding of Data, for anything Headers lacks.
	Decoded gopacket.Packet

	// Headers is the flattened view of the outermost packet; an
	// encapsulated one hangs off Headers.Inner.
	Headers
}

// PacketType is the kernel's classification of a packet (sockaddr_ll's
// sll_pkttype): which way it went and to whom it was addressed.
type PacketType uint8

// Packet types, as the kernel numbers them.
const (
	PacketHost      PacketType = 0 // addressed to this host
	PacketBroadcast PacketType = 1
	PacketMulticast PacketType = 2
	PacketOtherHost PacketType = 3 // for another MAC address: seen on bridge ports and in promiscuous mode
	PacketOutgoing  PacketType = 4 // sent by this host
)

// Outgoing reports whether the namespace sent the packet.
func (t PacketType) Outgoing() bool { return t == PacketOutgoing }

// String uses tcpdump's markers for `-i any`.
func (t PacketType) String() string {
	switch t {
	case PacketHost:
		return "In"
	case PacketBroadcast:
		return "B"
	case PacketMulticast:
		return "M"
	case PacketOtherHost:
		return "P"
	case PacketOutgoing:
		return "Out"
	}
	return "?"
}

// Headers is one level of a packet, flattened: the link, network and
// transport headers that matter when following a packet through a pod
// network. A nil field means the packet has no such header. When the level
// is a tunnel (VXLAN, or IPv4 carrying IPv4), Inner is the packet inside.
type Headers struct {
	Eth    *Ethernet
	ARP    *ARP
	IPv4   *IPv4
	IPv6   *IPv6
	ICMP   *ICMP // ICMPv4
	ICMPv6 *ICMP
	TCP    *TCP
	UDP    *UDP
	IGMP   *IGMP
	VXLAN  *VXLAN
	Inner  *Headers
	// Err says why decoding stopped early, such as a truncated header.
	Err string
}

// Innermost returns the deepest encapsulated level, h itself when nothing is
// tunnelled.
func (h *Headers) Innermost() *Headers {
	for h.Inner != nil {
		h = h.Inner
	}
	return h
}

// Ethernet is an Ethernet header, with its 802.1Q tag if it had one.
type Ethernet struct {
	Src, Dst net.HardwareAddr
	// Type is the EtherType of what follows (after the VLAN tag, if any).
	Type layers.EthernetType
	VLAN uint16 // VLAN id, 0 when untagged
}

// ARP is an ARP request or reply for IPv4 over Ethernet.
type ARP struct {
	Op        uint16 // 1 request, 2 reply
	SenderMAC net.HardwareAddr
	SenderIP  netip.Addr
	TargetMAC net.HardwareAddr
	TargetIP  netip.Addr
	// Length is what follows the link-layer header: 28 bytes, more when
	// a NIC padded the frame to Ethernet's minimum.
	Length int
}

// ARP operations.
const (
	ARPRequest = 1
	ARPReply   = 2
)

// IPv4 is an IPv4 header.
type IPv4 struct {
	Src, Dst netip.Addr
	Protocol layers.IPProtocol
	TTL      uint8
	TOS      uint8
	ID       uint16
	DF       bool   // don't fragment
	MF       bool   // more fragments follow
	FragOff  uint16 // fragment offset in bytes
	Length   uint16 // total length, header included
	HdrLen   uint8  // header length in bytes
}

// IPv6 is an IPv6 header.
type IPv6 struct {
	Src, Dst   netip.Addr
	NextHeader layers.IPProtocol
	HopLimit   uint8
	Length     uint16 // payload length, extension headers included
}

// ICMP is an ICMP (v4 or v6) message. ID and Seq are meaningful for echo
// requests and replies only.
type ICMP struct {
	Type, Code uint8
	ID, Seq    uint16
	// Length is the whole ICMP message, header included, as the IP header
	// tells it (the ping "size" plus 8).
	Length int
	// Quoted is what an error message (unreachable, time exceeded) says
	// about the packet that caused it: the start of that packet's IP header.
	Quoted *Quoted
}

// Quoted is the offending packet quoted in an ICMP error message.
type Quoted struct {
	Src, Dst         netip.Addr
	Protocol         layers.IPProtocol
	SrcPort, DstPort uint16 // for TCP and UDP, when quoted
	MTU              uint16 // next-hop MTU of "fragmentation needed" messages
}

// ICMPv4 types used in assertions and output.
const (
	ICMPEchoReply      = 0
	ICMPUnreachable    = 3
	ICMPRedirect       = 5
	ICMPEchoRequest    = 8
	ICMPTimeExceeded   = 11
	ICMPParamProblem   = 12
	ICMPv6EchoRequest  = 128
	ICMPv6EchoReply    = 129
	ICMPv6PacketTooBig = 2
)

// TCP is a TCP header.
type TCP struct {
	SrcPort, DstPort uint16
	Flags            TCPFlags
	Seq, Ack         uint32
	Window           uint16
	PayloadLen       int // from the IP header, so right even when the capture was cut short
}

// TCPFlags are the TCP header flags, in their wire bit positions.
type TCPFlags uint8

// TCP flags.
const (
	TCPFin TCPFlags = 1 << iota
	TCPSyn
	TCPRst
	TCPPsh
	TCPAck
	TCPUrg
	TCPEce
	TCPCwr
)

// String writes the flags as tcpdump does: "S", "S.", "P.", "F.", "R.".
func (f TCPFlags) String() string {
	if f == 0 {
		return "none"
	}
	const letters = "FSRP.UEW"
	b := make([]byte, 0, 8)
	for i := range 8 {
		if f&(1<<i) != 0 {
			b = append(b, letters[i])
		}
	}
	return string(b)
}

// UDP is a UDP header.
type UDP struct {
	SrcPort, DstPort uint16
	Length           uint16 // header plus payload
}

// IGMP is an IGMP message: bridges and hosts send them as they join
// multicast groups, so they show up in every lab capture.
type IGMP struct {
	Type    uint8 // 0x11 query, 0x12/0x16 v1/v2 report, 0x17 leave, 0x22 v3 report
	MaxResp uint8
	Group   netip.Addr
	Records int // group records of a v3 report
	Length  int // the whole message, as the IP header tells it
}

// VXLAN is a VXLAN header: the inner Ethernet frame is in Headers.Inner.
type VXLAN struct {
	Flags uint8 // 0x08 (I) when the VNI is valid
	VNI   uint32
}

// Well-known VXLAN ports: the IANA one and the one Linux uses by default
// (and flannel after it).
const (
	VXLANPortIANA  = 4789
	VXLANPortLinux = 8472
)

// Decode decodes raw bytes as a capture would, for packets that come from
// elsewhere (a pcap file, a userspace datapath, a test). link is
// layers.LinkTypeEthernet or layers.LinkTypeRaw; vxlanPorts adds UDP
// destination ports carrying VXLAN to 4789 and 8472. Only the decoded parts
// of the result are set, and they refer into data.
func Decode(data []byte, link layers.LinkType, vxlanPorts ...uint16) Packet {
	p := Packet{Data: data, Length: len(data), LinkType: link}
	newDecoder(vxlanPorts).decode(&p)
	return p
}

// decoder follows gopacket's own decoders except that it knows which UDP
// ports carry VXLAN for this capture. gopacket only knows 4789, and its port
// table is global and unsynchronised, so it cannot be taught safely while
// other captures decode.
type decoder struct {
	ports                           []uint16
	eth, dot1q, ip4, udp, tcp, vxln gopacket.Decoder
}

func newDecoder(extra []uint16) *decoder {
	d := &decoder{ports: append([]uint16{VXLANPortIANA, VXLANPortLinux}, extra...)}
	d.eth = gopacket.DecodeFunc(d.decodeEthernet)
	d.dot1q = gopacket.DecodeFunc(d.decodeDot1Q)
	d.ip4 = gopacket.DecodeFunc(d.decodeIPv4)
	d.udp = gopacket.DecodeFunc(d.decodeUDP)
	d.tcp = gopacket.DecodeFunc(d.decodeTCP)
	d.vxln = gopacket.DecodeFunc(d.decodeVXLAN)
	return d
}

func (d *decoder) decode(p *Packet) {
	var first gopacket.Decoder = d.eth
	if p.LinkType == layers.LinkTypeRaw {
		first = gopacket.LayerTypePayload
		if len(p.Data) > 0 {
			switch p.Data[0] >> 4 {
			case 4:
				first = d.ip4
			case 6:
				first = layers.LayerTypeIPv6
			}
		}
	}
	// NoCopy: Data is already the packet's own copy.
	p.Decoded = gopacket.NewPacket(p.Data, first, gopacket.DecodeOptions{NoCopy: true})
	md := p.Decoded.Metadata()
	md.Timestamp = p.Time
	md.CaptureLength = len(p.Data)
	md.Length = p.Length
	md.InterfaceIndex = p.Ifindex
	p.Headers = flatten(p.Decoded)
}

// nextEther picks the decoder for an EtherType, keeping IPv4 (and so the
// tunnels inside it) on this decoder.
func (d *decoder) nextEther(t layers.EthernetType) gopacket.Decoder {
	switch t {
	case layers.EthernetTypeIPv4:
		return d.ip4
	case layers.EthernetTypeDot1Q, layers.EthernetTypeQinQ:
		return d.dot1q
	}
	return known(t.LayerType())
}

// known turns "gopacket has no decoder for this" into plain payload: an
// EtherType or IP protocol gopacket does not know is not a broken packet.
func known(t gopacket.LayerType) gopacket.Decoder {
	if t == gopacket.LayerTypeZero {
		return gopacket.LayerTypePayload
	}
	return t
}

// lenient decodes what a transport port suggests (DNS on 53, ...), and
// falls back to plain payload when the bytes are not that protocol: labs
// send probes with arbitrary payloads to arbitrary ports.
func lenient(t gopacket.LayerType) gopacket.Decoder {
	if t == gopacket.LayerTypePayload || t == gopacket.LayerTypeZero {
		return gopacket.LayerTypePayload
	}
	return gopacket.DecodeFunc(func(data []byte, p gopacket.PacketBuilder) error {
		if err := t.Decode(data, p); err != nil {
			return gopacket.LayerTypePayload.Decode(data, p)
		}
		return nil
	})
}

func (d *decoder) decodeEthernet(data []byte, p gopacket.PacketBuilder) error {
	eth := &layers.Ethernet{}
	if err := eth.DecodeFromBytes(data, p); err != nil {
		return err
	}
	p.AddLayer(eth)
	p.SetLinkLayer(eth)
	return p.NextDecoder(d.nextEther(eth.EthernetType))
}

func (d *decoder) decodeDot1Q(data []byte, p gopacket.PacketBuilder) error {
	tag := &layers.Dot1Q{}
	if err := tag.DecodeFromBytes(data, p); err != nil {
		return err
	}
	p.AddLayer(tag)
	return p.NextDecoder(d.nextEther(tag.Type))
}

func (d *decoder) decodeIPv4(data []byte, p gopacket.PacketBuilder) error {
	ip := &layers.IPv4{}
	err := ip.DecodeFromBytes(data, p)
	p.AddLayer(ip)
	p.SetNetworkLayer(ip)
	if err != nil {
		return err
	}
	if ip.FragOffset != 0 {
		return p.NextDecoder(gopacket.LayerTypeFragment)
	}
	// A first fragment still starts with the transport header, and its
	// ports are what a student needs to see when a tunnel's overhead
	// pushes packets over the MTU; gopacket would stop at "fragment".
	switch ip.Protocol {
	case layers.IPProtocolUDP:
		return p.NextDecoder(d.udp)
	case layers.IPProtocolTCP:
		return p.NextDecoder(d.tcp)
	case layers.IPProtocolIPv4: // IPIP
		return p.NextDecoder(d.ip4)
	}
	return p.NextDecoder(known(ip.Protocol.LayerType()))
}

func (d *decoder) decodeUDP(data []byte, p gopacket.PacketBuilder) error {
	udp := &layers.UDP{}
	err := udp.DecodeFromBytes(data, p)
	p.AddLayer(udp)
	p.SetTransportLayer(udp)
	if err != nil {
		return err
	}
	if slices.Contains(d.ports, uint16(udp.DstPort)) {
		return p.NextDecoder(d.vxln)
	}
	next := udp.NextLayerType()
	if next == layers.LayerTypeVXLAN {
		// gopacket also matches 4789 as a source port; a VXLAN sender
		// always targets the port, so anything else is not VXLAN.
		next = gopacket.LayerTypePayload
	}
	return p.NextDecoder(lenient(next))
}

func (d *decoder) decodeTCP(data []byte, p gopacket.PacketBuilder) error {
	tcp := &layers.TCP{}
	err := tcp.DecodeFromBytes(data, p)
	p.AddLayer(tcp)
	p.SetTransportLayer(tcp)
	if err != nil {
		return err
	}
	return p.NextDecoder(lenient(tcp.NextLayerType()))
}

func (d *decoder) decodeVXLAN(data []byte, p gopacket.PacketBuilder) error {
	vx := &layers.VXLAN{}
	if err := vx.DecodeFromBytes(data, p); err != nil {
		return err
	}
	p.AddLayer(vx)
	return p.NextDecoder(d.eth)
}

// flatten walks gopacket's layers, starting a new level after each tunnel
// header.
func flatten(pkt gopacket.Packet) Headers {
	var top Headers
	h := &top
	inner := false  // the next layer starts an encapsulated packet
	ipPayload := -1 // bytes after the IP header, as the header says
	for _, l := range pkt.Layers() {
		if inner {
			h.Inner = &Headers{}
			h = h.Inner
			inner = false
			ipPayload = -1
		}
		switch l := l.(type) {
		case *layers.Ethernet:
			h.Eth = &Ethernet{Src: l.SrcMAC, Dst: l.DstMAC, Type: l.EthernetType}
		case *layers.Dot1Q:
			if h.Eth != nil {
				h.Eth.VLAN = l.VLANIdentifier
				h.Eth.Type = l.Type
			}
		case *layers.ARP:
			h.ARP = &ARP{
				Op:        l.Operation,
				SenderMAC: l.SourceHwAddress,
				SenderIP:  addr(l.SourceProtAddress),
				TargetMAC: l.DstHwAddress,
				TargetIP:  addr(l.DstProtAddress),
				Length:    len(l.Contents) + len(l.Payload),
			}
		case *layers.IPv4:
			if l.SrcIP == nil {
				continue // cut short before the addresses; the failure says so
			}
			h.IPv4 = &IPv4{
				Src:      addr(l.SrcIP),
				Dst:      addr(l.DstIP),
				Protocol: l.Protocol,
				TTL:      l.TTL,
				TOS:      l.TOS,
				ID:       l.Id,
				DF:       l.Flags&layers.IPv4DontFragment != 0,
				MF:       l.Flags&layers.IPv4MoreFragments != 0,
				FragOff:  l.FragOffset * 8,
				Length:   l.Length,
				HdrLen:   l.IHL * 4,
			}
			ipPayload = int(l.Length) - int(l.IHL)*4
			first := l.FragOffset == 0
			if first && l.Protocol == layers.IPProtocolIGMP {
				h.IGMP = igmp(l.Payload, ipPayload)
			}
			if first && (l.Protocol == layers.IPProtocolIPv4 || l.Protocol == layers.IPProtocolIPv6) {
				inner = true
			}
		case *layers.IPv6:
			if l.SrcIP == nil {
				continue
			}
			h.IPv6 = &IPv6{
				Src:        addr(l.SrcIP),
				Dst:        addr(l.DstIP),
				NextHeader: l.NextHeader,
				HopLimit:   l.HopLimit,
				Length:     l.Length,
			}
			ipPayload = int(l.Length)
			if l.NextHeader == layers.IPProtocolIPv4 || l.NextHeader == layers.IPProtocolIPv6 {
				inner = true
			}
		case *layers.ICMPv4:
			h.ICMP = &ICMP{
				Type:   l.TypeCode.Type(),
				Code:   l.TypeCode.Code(),
				ID:     l.Id,
				Seq:    l.Seq,
				Length: lengthOr(ipPayload, len(l.Contents)+len(l.Payload)),
			}
			switch l.TypeCode.Type() {
			case ICMPUnreachable, ICMPTimeExceeded, ICMPParamProblem, ICMPRedirect:
				h.ICMP.Quoted = quoted(l.Payload)
				if h.ICMP.Quoted != nil && l.TypeCode.Type() == ICMPUnreachable && l.TypeCode.Code() == 4 {
					h.ICMP.Quoted.MTU = l.Seq // the next-hop MTU sits where echoes keep seq
				}
			}
		case *layers.ICMPv6:
			h.ICMPv6 = &ICMP{
				Type:   l.TypeCode.Type(),
				Code:   l.TypeCode.Code(),
				Length: lengthOr(ipPayload, len(l.Contents)+len(l.Payload)),
			}
		case *layers.ICMPv6Echo:
			if h.ICMPv6 != nil {
				h.ICMPv6.ID, h.ICMPv6.Seq = l.Identifier, l.SeqNumber
			}
		case *layers.TCP:
			var flags TCPFlags
			for _, f := range []struct {
				on   bool
				flag TCPFlags
			}{{l.FIN, TCPFin}, {l.SYN, TCPSyn}, {l.RST, TCPRst}, {l.PSH, TCPPsh}, {l.ACK, TCPAck}, {l.URG, TCPUrg}, {l.ECE, TCPEce}, {l.CWR, TCPCwr}} {
				if f.on {
					flags |= f.flag
				}
			}
			h.TCP = &TCP{
				SrcPort:    uint16(l.SrcPort),
				DstPort:    uint16(l.DstPort),
				Flags:      flags,
				Seq:        l.Seq,
				Ack:        l.Ack,
				Window:     l.Window,
				PayloadLen: lengthOr(ipPayload-int(l.DataOffset)*4, len(l.Payload)),
			}
		case *layers.UDP:
			h.UDP = &UDP{SrcPort: uint16(l.SrcPort), DstPort: uint16(l.DstPort), Length: l.Length}
		case *layers.VXLAN:
			var flags uint8
			if l.ValidIDFlag {
				flags |= 0x08
			}
			h.VXLAN = &VXLAN{Flags: flags, VNI: l.VNI}
			inner = true
		case *gopacket.DecodeFailure:
			h.Err = l.Error().Error()
		}
	}
	return top
}

// lengthOr prefers a length the IP header states over what was captured.
func lengthOr(fromIP, captured int) int {
	if fromIP >= 0 {
		return fromIP
	}
	return captured
}

// igmp reads the fixed part of an IGMP message; gopacket's decoders give
// no one type for all versions.
func igmp(b []byte, length int) *IGMP {
	if len(b) < 8 {
		return nil
	}
	m := &IGMP{Type: b[0], MaxResp: b[1], Group: netip.AddrFrom4([4]byte(b[4:8])), Length: length}
	if m.Type == 0x22 {
		m.Group = netip.Addr{}
		m.Records = int(b[6])<<8 | int(b[7])
	}
	return m
}

// quoted reads the IPv4 header (and ports) an ICMP error carries.
func quoted(b []byte) *Quoted {
	if len(b) < 20 || b[0]>>4 != 4 {
		return nil
	}
	q := &Quoted{
		Src:      netip.AddrFrom4([4]byte(b[12:16])),
		Dst:      netip.AddrFrom4([4]byte(b[16:20])),
		Protocol: layers.IPProtocol(b[9]),
	}
	ihl := int(b[0]&0x0f) * 4
	if (q.Protocol == layers.IPProtocolUDP || q.Protocol == layers.IPProtocolTCP) && ihl >= 20 && len(b) >= ihl+4 {
		q.SrcPort = uint16(b[ihl])<<8 | uint16(b[ihl+1])
		q.DstPort = uint16(b[ihl+2])<<8 | uint16(b[ihl+3])
	}
	return q
}

func addr(b []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a.Unmap()
}
