package capture

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Hand-built packets: every layer is serialized by gopacket with lengths and
// checksums filled in, so the decoder sees what a kernel would put on a wire.

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	macC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0c}
	macD = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0d}
)

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	// Transport checksums cover a pseudo-header from the nearest IP layer.
	var net gopacket.NetworkLayer
	for _, l := range ls {
		switch l := l.(type) {
		case *layers.IPv4:
			net = l
		case *layers.IPv6:
			net = l
		case *layers.UDP:
			_ = l.SetNetworkLayerForChecksum(net)
		case *layers.TCP:
			_ = l.SetNetworkLayerForChecksum(net)
		case *layers.ICMPv6:
			_ = l.SetNetworkLayerForChecksum(net)
		}
	}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return buf.Bytes()
}

func ethernet(src, dst net.HardwareAddr, typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: typ}
}

func ipv4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{
		Version: 4, IHL: 5, TTL: 64, Id: 0x1234, Flags: layers.IPv4DontFragment, Protocol: proto,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4(),
	}
}

func echo(typ uint8, id, seq uint16) *layers.ICMPv4 {
	return &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id, Seq: seq}
}

func udp(src, dst uint16) *layers.UDP {
	return &layers.UDP{SrcPort: layers.UDPPort(src), DstPort: layers.UDPPort(dst)}
}

// payload is n bytes, like ping's default 56 bytes of data.
func payload(n int) gopacket.Payload { return make(gopacket.Payload, n) }

// vxlanFrame is the packet a Linux vxlan device sends for an inner ICMP
// echo: Ethernet/IPv4/UDP to port/VXLAN/Ethernet/IPv4/ICMP.
func vxlanFrame(t testing.TB, port uint16, vni uint32) []byte {
	return serialize(t,
		ethernet(macA, macB, layers.EthernetTypeIPv4),
		ipv4("10.30.45.100", "10.30.45.200", layers.IPProtocolUDP),
		udp(41234, port),
		&layers.VXLAN{ValidIDFlag: true, VNI: vni},
		ethernet(macC, macD, layers.EthernetTypeIPv4),
		ipv4("192.168.1.10", "192.168.2.20", layers.IPProtocolICMPv4),
		echo(ICMPEchoRequest, 1, 1),
		payload(56),
	)
}

const innerEcho = "IP 192.168.1.10 > 192.168.2.20: ICMP echo request, id 1, seq 1, length 64"

func TestDecode(t *testing.T) {
	quotedUDP := serialize(t, ipv4("10.124.0.1", "10.124.0.2", layers.IPProtocolUDP), udp(40000, 9), payload(4))
	quotedBig := serialize(t, ipv4("10.124.0.1", "10.124.9.9", layers.IPProtocolICMPv4), echo(ICMPEchoRequest, 3, 4), payload(1400))

	tests := []struct {
		name  string
		data  []byte
		link  layers.LinkType
		ports []uint16
		want  string // Headers.String()
		check func(t *testing.T, p Packet)
	}{{
		name: "icmp echo request",
		data: serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv4),
			ipv4("192.168.1.10", "192.168.2.20", layers.IPProtocolICMPv4), echo(ICMPEchoRequest, 1, 1), payload(56)),
		want: innerEcho,
		check: func(t *testing.T, p Packet) {
			eq(t, "eth src", p.Eth.Src.String(), macA.String())
			eq(t, "eth dst", p.Eth.Dst.String(), macB.String())
			eq(t, "ethertype", p.Eth.Type, layers.EthernetTypeIPv4)
			eq(t, "ttl", p.IPv4.TTL, 64)
			eq(t, "df", p.IPv4.DF, true)
			eq(t, "ip length", p.IPv4.Length, 84)
			eq(t, "proto", p.IPv4.Protocol, layers.IPProtocolICMPv4)
			eq(t, "icmp", *p.ICMP, ICMP{Type: ICMPEchoRequest, ID: 1, Seq: 1, Length: 64})
			eq(t, "inner", p.Inner, (*Headers)(nil))
			eq(t, "innermost", p.Innermost(), &p.Headers)
		},
	}, {
		name: "icmp echo reply",
		data: serialize(t, ethernet(macB, macA, layers.EthernetTypeIPv4),
			ipv4("192.168.2.20", "192.168.1.10", layers.IPProtocolICMPv4), echo(ICMPEchoReply, 1, 1), payload(56)),
		want: "IP 192.168.2.20 > 192.168.1.10: ICMP echo reply, id 1, seq 1, length 64",
	}, {
		name: "arp request",
		data: serialize(t, ethernet(macA, layers.EthernetBroadcast, layers.EthernetTypeARP), &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: macA, SourceProtAddress: []byte{10, 124, 0, 1},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 124, 0, 2},
		}),
		// gopacket pads the frame to Ethernet's 60-byte minimum, as a NIC
		// does, and the length tells what follows the Ethernet header.
		want: "ARP, Request who-has 10.124.0.2 tell 10.124.0.1, length 46",
		check: func(t *testing.T, p Packet) {
			eq(t, "op", p.ARP.Op, ARPRequest)
			eq(t, "sender", p.ARP.SenderIP, netip.MustParseAddr("10.124.0.1"))
			eq(t, "target", p.ARP.TargetIP, netip.MustParseAddr("10.124.0.2"))
			eq(t, "ipv4", p.IPv4, (*IPv4)(nil))
		},
	}, {
		name: "arp reply",
		data: serialize(t, ethernet(macB, macA, layers.EthernetTypeARP), &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPReply, SourceHwAddress: macB, SourceProtAddress: []byte{10, 124, 0, 2},
			DstHwAddress: macA, DstProtAddress: []byte{10, 124, 0, 1},
		}),
		want: "ARP, Reply 10.124.0.2 is-at 02:00:00:00:00:0b, length 46",
		check: func(t *testing.T, p Packet) {
			eq(t, "sender mac", p.ARP.SenderMAC.String(), macB.String())
		},
	}, {
		name: "udp",
		data: serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv4),
			ipv4("10.124.0.1", "10.124.0.2", layers.IPProtocolUDP), udp(40000, 53), payload(5)),
		want: "IP 10.124.0.1.40000 > 10.124.0.2.53: UDP, length 5",
		check: func(t *testing.T, p Packet) {
			eq(t, "udp", *p.UDP, UDP{SrcPort: 40000, DstPort: 53, Length: 13})
			eq(t, "vxlan", p.VXLAN, (*VXLAN)(nil))
		},
	}, {
		name: "tcp syn-ack",
		data: serialize(t, ethernet(macB, macA, layers.EthernetTypeIPv4),
			ipv4("10.124.0.2", "10.124.0.1", layers.IPProtocolTCP),
			&layers.TCP{SrcPort: 80, DstPort: 40000, SYN: true, ACK: true, Seq: 1000, Ack: 2001, Window: 65160}),
		want: "IP 10.124.0.2.80 > 10.124.0.1.40000: Flags [S.], seq 1000, ack 2001, win 65160, length 0",
		check: func(t *testing.T, p Packet) {
			eq(t, "flags", p.TCP.Flags, TCPSyn|TCPAck)
		},
	}, {
		name: "tcp data",
		data: serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv4),
			ipv4("10.124.0.1", "10.124.0.2", layers.IPProtocolTCP),
			&layers.TCP{SrcPort: 40000, DstPort: 80, PSH: true, ACK: true, Seq: 2001, Ack: 1001, Window: 502}, payload(18)),
		want: "IP 10.124.0.1.40000 > 10.124.0.2.80: Flags [P.], seq 2001:2019, ack 1001, win 502, length 18",
	}, {
		name: "vxlan on the linux port",
		data: vxlanFrame(t, 8472, 1),
		want: "IP 10.30.45.100.41234 > 10.30.45.200.8472: VXLAN, flags [I] (0x08), vni 1: " + innerEcho,
		check: func(t *testing.T, p Packet) {
			eq(t, "outer src", p.IPv4.Src, netip.MustParseAddr("10.30.45.100"))
			eq(t, "outer dst", p.IPv4.Dst, netip.MustParseAddr("10.30.45.200"))
			eq(t, "udp dst", p.UDP.DstPort, 8472)
			eq(t, "vni", p.VXLAN.VNI, 1)
			eq(t, "outer icmp", p.ICMP, (*ICMP)(nil))
			in := p.Inner
			eq(t, "inner eth", in.Eth.Src.String(), macC.String())
			eq(t, "inner src", in.IPv4.Src, netip.MustParseAddr("192.168.1.10"))
			eq(t, "inner dst", in.IPv4.Dst, netip.MustParseAddr("192.168.2.20"))
			eq(t, "inner icmp", in.ICMP.Type, ICMPEchoRequest)
			eq(t, "innermost", p.Innermost(), in)
			if p.Decoded.Layer(layers.LayerTypeVXLAN) == nil {
				t.Error("gopacket view has no VXLAN layer")
			}
		},
	}, {
		name: "vxlan on the iana port",
		data: vxlanFrame(t, 4789, 42),
		want: "IP 10.30.45.100.41234 > 10.30.45.200.4789: VXLAN, flags [I] (0x08), vni 42: " + innerEcho,
	}, {
		name:  "vxlan on a configured port",
		data:  vxlanFrame(t, 9999, 7),
		ports: []uint16{9999},
		want:  "IP 10.30.45.100.41234 > 10.30.45.200.9999: VXLAN, flags [I] (0x08), vni 7: " + innerEcho,
	}, {
		name: "unconfigured port stays udp",
		data: vxlanFrame(t, 9999, 7),
		want: "IP 10.30.45.100.41234 > 10.30.45.200.9999: UDP, length 106",
		check: func(t *testing.T, p Packet) {
			eq(t, "inner", p.Inner, (*Headers)(nil))
		},
	}, {
		name: "vxlan source port is not vxlan",
		data: serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv4),
			ipv4("10.124.0.1", "10.124.0.2", layers.IPProtocolUDP), udp(4789, 9), payload(20)),
		want: "IP 10.124.0.1.4789 > 10.124.0.2.9: UDP, length 20",
	}, {
		name: "ipip",
		data: serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv4),
			ipv4("10.124.3.1", "10.124.3.2", layers.IPProtocolIPv4),
			ipv4("192.168.1.10", "192.168.2.20", layers.IPProtocolICMPv4), echo(ICMPEchoRequest, 1, 1), payload(56)),
		want: "IP 10.124.3.1 > 10.124.3.2: " + innerEcho,
		check: func(t *testing.T, p Packet) {
			eq(t, "outer proto", p.IPv4.Protocol, layers.IPProtocolIPv4)
			eq(t, "outer length", p.IPv4.Length, 104)
			eq(t, "outer icmp", p.ICMP, (*ICMP)(nil))
			eq(t, "inner eth", p.Inner.Eth, (*Ethernet)(nil))
			eq(t, "inner src", p.Inner.IPv4.Src, netip.MustParseAddr("192.168.1.10"))
			eq(t, "inner icmp", *p.Inner.ICMP, ICMP{Type: ICMPEchoRequest, ID: 1, Seq: 1, Length: 64})
		},
	}, {
		name: "ipip inside vxlan",
		data: serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv4),
			ipv4("10.30.45.100", "10.30.45.200", layers.IPProtocolUDP), udp(41234, 8472),
			&layers.VXLAN{ValidIDFlag: true, VNI: 5}, ethernet(macC, macD, layers.EthernetTypeIPv4),
			ipv4("10.124.3.1", "10.124.3.2", layers.IPProtocolIPv4),
			ipv4("192.168.1.10", "192.168.2.20", layers.IPProtocolICMPv4), echo(ICMPEchoRequest, 1, 1), payload(56)),
		want: "IP 10.30.45.100.41234 > 10.30.45.200.8472: VXLAN, flags [I] (0x08), vni 5: IP 10.124.3.1 > 10.124.3.2: " + innerEcho,
		check: func(t *testing.T, p Packet) {
			eq(t, "innermost", p.Innermost().IPv4.Dst, netip.MustParseAddr("192.168.2.20"))
		},
	}, {
		name: "bare ip from a tun device",
		data: serialize(t, ipv4("10.124.4.1", "10.124.4.2", layers.IPProtocolUDP), udp(40000, 9), payload(5)),
		link: layers.LinkTypeRaw,
		want: "IP 10.124.4.1.40000 > 10.124.4.2.9: UDP, length 5",
		check: func(t *testing.T, p Packet) {
			eq(t, "eth", p.Eth, (*Ethernet)(nil))
		},
	}, {
		name: "ipip from a tun device",
		data: serialize(t, ipv4("10.124.3.1", "10.124.3.2", layers.IPProtocolIPv4),
			ipv4("192.168.1.10", "192.168.2.20", layers.IPProtocolICMPv4), echo(ICMPEchoRequest, 1, 1), payload(56)),
		link: layers.LinkTypeRaw,
		want: "IP 10.124.3.1 > 10.124.3.2: " + innerEcho,
	}, {
		name: "port unreachable",
		data: serialize(t, ethernet(macB, macA, layers.EthernetTypeIPv4),
			ipv4("10.124.0.2", "10.124.0.1", layers.IPProtocolICMPv4),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(ICMPUnreachable, 3)}, gopacket.Payload(quotedUDP)),
		want: "IP 10.124.0.2 > 10.124.0.1: ICMP 10.124.0.2 udp port 9 unreachable, length 40",
		check: func(t *testing.T, p Packet) {
			eq(t, "quoted", *p.ICMP.Quoted, Quoted{
				Src: netip.MustParseAddr("10.124.0.1"), Dst: netip.MustParseAddr("10.124.0.2"),
				Protocol: layers.IPProtocolUDP, SrcPort: 40000, DstPort: 9,
			})
		},
	}, {
		name: "protocol unreachable for ipip",
		data: serialize(t, ethernet(macB, macA, layers.EthernetTypeIPv4),
			ipv4("10.124.3.2", "10.124.3.1", layers.IPProtocolICMPv4),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(ICMPUnreachable, 2)},
			gopacket.Payload(serialize(t, ipv4("10.124.3.1", "10.124.3.2", layers.IPProtocolIPv4))[:20]),
			payload(8)),
		want: "IP 10.124.3.2 > 10.124.3.1: ICMP 10.124.3.2 protocol 4 unreachable, length 36",
	}, {
		name: "fragmentation needed",
		data: serialize(t, ethernet(macB, macA, layers.EthernetTypeIPv4),
			ipv4("10.124.0.254", "10.124.0.1", layers.IPProtocolICMPv4),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(ICMPUnreachable, 4), Seq: 1400},
			gopacket.Payload(quotedBig[:28])),
		want: "IP 10.124.0.254 > 10.124.0.1: ICMP 10.124.9.9 unreachable - need to frag (mtu 1400), length 36",
		check: func(t *testing.T, p Packet) {
			eq(t, "mtu", p.ICMP.Quoted.MTU, 1400)
		},
	}, {
		name: "time exceeded",
		data: serialize(t, ethernet(macB, macA, layers.EthernetTypeIPv4),
			ipv4("10.124.0.254", "10.124.0.1", layers.IPProtocolICMPv4),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(ICMPTimeExceeded, 0)}, gopacket.Payload(quotedBig[:28])),
		want: "IP 10.124.0.254 > 10.124.0.1: ICMP time exceeded in-transit, length 36",
	}, {
		name: "vlan tag",
		data: serialize(t, ethernet(macA, macB, layers.EthernetTypeDot1Q),
			&layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4},
			ipv4("10.124.0.1", "10.124.0.2", layers.IPProtocolUDP), udp(40000, 8472),
			&layers.VXLAN{ValidIDFlag: true, VNI: 3}, ethernet(macC, macD, layers.EthernetTypeIPv4),
			ipv4("192.168.1.10", "192.168.2.20", layers.IPProtocolICMPv4), echo(ICMPEchoRequest, 1, 1), payload(56)),
		want: "vlan 10, IP 10.124.0.1.40000 > 10.124.0.2.8472: VXLAN, flags [I] (0x08), vni 3: " + innerEcho,
		check: func(t *testing.T, p Packet) {
			eq(t, "vlan", p.Eth.VLAN, 10)
			eq(t, "type", p.Eth.Type, layers.EthernetTypeIPv4)
		},
	}, {
		name: "later fragment",
		data: serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv4),
			&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 77, FragOffset: 185, Protocol: layers.IPProtocolUDP,
				SrcIP: net.IP{10, 124, 0, 1}, DstIP: net.IP{10, 124, 0, 2}},
			payload(100)),
		want: "IP 10.124.0.1 > 10.124.0.2: ip-proto-17 (frag 77:100@1480)",
		check: func(t *testing.T, p Packet) {
			eq(t, "offset", p.IPv4.FragOff, 1480)
			eq(t, "udp", p.UDP, (*UDP)(nil))
		},
	}, {
		name: "first fragment",
		data: serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv4),
			&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 77, Flags: layers.IPv4MoreFragments, Protocol: layers.IPProtocolUDP,
				SrcIP: net.IP{10, 124, 0, 1}, DstIP: net.IP{10, 124, 0, 2}},
			udp(40000, 9), payload(1472)),
		want: "IP 10.124.0.1.40000 > 10.124.0.2.9: UDP, length 1472 (frag 77:1480@0+)",
	}, {
		name: "other protocol",
		data: serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv4),
			ipv4("10.124.0.1", "10.124.0.2", layers.IPProtocol(253)), payload(10)),
		want: "IP 10.124.0.1 > 10.124.0.2: ip-proto-253 10",
	}, {
		name: "ipv6 neighbor solicitation",
		data: serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv6),
			&layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6,
				SrcIP: net.ParseIP("fe80::a"), DstIP: net.ParseIP("ff02::1:ff00:b")},
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)},
			&layers.ICMPv6NeighborSolicitation{TargetAddress: net.ParseIP("fe80::b")}),
		want: "IP6 fe80::a > ff02::1:ff00:b: ICMP6, neighbor solicitation, length 24",
	}, {
		name: "ipv6 echo",
		data: serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv6),
			&layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6,
				SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")},
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(ICMPv6EchoRequest, 0)},
			&layers.ICMPv6Echo{Identifier: 9, SeqNumber: 2}, payload(56)),
		want: "IP6 fd00::1 > fd00::2: ICMP6, echo request, id 9, seq 2, length 64",
	}, {
		name: "other ethertype",
		data: serialize(t, ethernet(macA, macB, layers.EthernetType(0x88b5)), payload(46)),
		want: "ethertype Unknown (0x88b5)",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			link := tt.link
			if link == 0 {
				link = layers.LinkTypeEthernet
			}
			p := Decode(tt.data, link, tt.ports...)
			if got := p.Headers.String(); got != tt.want {
				t.Errorf("String:\n got %s\nwant %s", got, tt.want)
			}
			if p.Err != "" {
				t.Errorf("decode error: %s", p.Err)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestDecodeTruncated(t *testing.T) {
	full := vxlanFrame(t, 8472, 1)
	p := Decode(full[:14+20+8+4], layers.LinkTypeEthernet)
	if p.UDP == nil || p.VXLAN != nil {
		t.Fatalf("want outer UDP without VXLAN, got %s", p.Headers.String())
	}
	if !strings.Contains(p.Headers.String(), "[|") || p.Err == "" {
		t.Errorf("truncation not reported: %q (err %q)", p.Headers.String(), p.Err)
	}
	// A network header cut before its addresses is not shown with made-up ones.
	v6 := serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv6),
		&layers.IPv6{Version: 6, HopLimit: 1, NextHeader: layers.IPProtocolNoNextHeader,
			SrcIP: net.ParseIP("fe80::a"), DstIP: net.ParseIP("ff02::1")})
	p = Decode(v6[:14+26], layers.LinkTypeEthernet)
	eq(t, "cut ipv6", p.Headers.String(), "ethertype IPv6 (0x86dd) [|Invalid ip6 header. Length 26 less than 40]")
	p = Decode(full[:14+12], layers.LinkTypeEthernet)
	if p.IPv4 != nil || !strings.HasPrefix(p.Headers.String(), "ethertype IPv4 (0x0800) [|") {
		t.Errorf("cut ipv4: %s", p.Headers.String())
	}

	// Even a cut capture reports the lengths the headers state.
	p = Decode(full[:14+20+8+8+14+20+8], layers.LinkTypeEthernet)
	if p.Inner == nil || p.Inner.ICMP == nil {
		t.Fatalf("want the inner ICMP header, got %s", p.Headers.String())
	}
	if got, want := p.Inner.ICMP.Length, 64; got != want {
		t.Errorf("inner icmp length %d, want %d", got, want)
	}
}

func TestPacketString(t *testing.T) {
	data := vxlanFrame(t, 8472, 1)
	p := Decode(data, layers.LinkTypeEthernet)
	p.Interface, p.Type = "eth0", PacketOutgoing
	want := "eth0 Out IP 10.30.45.100.41234 > 10.30.45.200.8472: VXLAN, flags [I] (0x08), vni 1: " + innerEcho
	if got := p.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	p.Type = PacketHost
	if got := p.String(); !strings.HasPrefix(got, "eth0 In IP") {
		t.Errorf("incoming: %s", got)
	}
	junk := Decode([]byte{1, 2, 3}, layers.LinkTypeEthernet)
	junk.Interface = "eth0"
	if got := junk.String(); !strings.HasPrefix(got, "eth0 In unknown Ethernet frame, length 3") {
		t.Errorf("junk: %s", got)
	}
	for typ, want := range map[PacketType]string{PacketHost: "In", PacketBroadcast: "B", PacketMulticast: "M",
		PacketOtherHost: "P", PacketOutgoing: "Out", 9: "?"} {
		if typ.String() != want {
			t.Errorf("PacketType(%d) = %q, want %q", typ, typ.String(), want)
		}
	}
}

func TestTCPFlags(t *testing.T) {
	for f, want := range map[TCPFlags]string{
		0: "none", TCPSyn: "S", TCPSyn | TCPAck: "S.", TCPFin | TCPAck: "F.", TCPRst: "R",
		TCPPsh | TCPAck: "P.", TCPAck: ".", TCPSyn | TCPEce | TCPCwr: "SEW",
	} {
		if f.String() != want {
			t.Errorf("%08b: got %q, want %q", uint8(f), f.String(), want)
		}
	}
}

func TestMatchProgram(t *testing.T) {
	for _, m := range []Match{
		{},
		{Protocol: layers.IPProtocolUDP, Port: 8472},
		{Host: netip.MustParseAddr("10.124.0.1")},
		{Protocol: layers.IPProtocolICMPv4, Host: netip.MustParseAddr("::ffff:10.124.0.1")},
		{Port: 80},
	} {
		if _, err := m.Program(); err != nil {
			t.Errorf("%+v: %v", m, err)
		}
	}
	for _, tt := range []struct {
		m    Match
		want string
	}{
		{Match{Host: netip.MustParseAddr("fd00::1")}, "match host fd00::1: only IPv4"},
		{Match{Protocol: layers.IPProtocolICMPv4, Port: 1}, "match port 1: protocol ICMPv4 has no ports"},
	} {
		if _, err := tt.m.Program(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.m, err, tt.want)
		}
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
