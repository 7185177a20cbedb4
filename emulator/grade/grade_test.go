package grade

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/scenario"
	"github.com/labctl/labctl/internal/golden"
)

// What every kind of check asks for, in the words reports print.
func TestExpectedWords(t *testing.T) {
	s, err := scenario.Load("../scenario/testdata/valid/every-field.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, c := range s.Checks() {
		fmt.Fprintf(&b, "%s: %s\n", c.ID, Expected(c))
	}
	golden.Check(t, "testdata/expected.golden", []byte(b.String()))
}

func echoes(ttl int, errs ...error) []probe.Echo {
	var out []probe.Echo
	for i, err := range errs {
		out = append(out, probe.Echo{Seq: i + 1, TTL: ttl, RTT: time.Duration(i+1) * time.Millisecond, Err: err})
	}
	return out
}

// A ping passes on loss, TTL and RTT as asked, and says what it saw in
// words that do not change from one run to the next.
func TestJudgePing(t *testing.T) {
	noReply := fmt.Errorf("%w within 1s", probe.ErrNoReply)
	unreach := &probe.ICMPError{From: netip.MustParseAddr("192.168.2.1"), Type: 3, Code: 0}
	tests := []struct {
		name string
		p    scenario.Ping
		r    probe.PingResult
		ok   bool
		obs  string
	}{
		{"all replies", scenario.Ping{Count: 3}, probe.PingResult{Received: 3, Echoes: echoes(64, nil, nil, nil)}, true, "3/3 replies, TTL 64"},
		{"the TTL asked for", scenario.Ping{Count: 3, TTL: 62}, probe.PingResult{Received: 3, Echoes: echoes(62, nil, nil, nil)}, true, "3/3 replies, TTL 62"},
		{"another TTL", scenario.Ping{Count: 3, TTL: 62}, probe.PingResult{Received: 3, Echoes: echoes(63, nil, nil, nil)}, false, "3/3 replies, TTL 63"},
		{"one lost", scenario.Ping{Count: 3}, probe.PingResult{Received: 2, Echoes: echoes(64, nil, noReply, nil)}, false, "2/3 replies: no reply in time"},
		{"one lost, within the loss allowed", scenario.Ping{Count: 3, MaxLoss: 34}, probe.PingResult{Received: 2, Echoes: echoes(64, nil, noReply, nil)}, true, "2/3 replies, TTL 64"},
		{"none, whatever the loss allowed", scenario.Ping{Count: 2, MaxLoss: 100}, probe.PingResult{Echoes: echoes(0, noReply, noReply)}, false, "0/2 replies: no reply in time"},
		{"unreachable", scenario.Ping{Count: 1}, probe.PingResult{Echoes: echoes(0, unreach)}, false, "0/1 replies: destination unreachable (network unreachable) from 192.168.2.1"},
		{"refused locally", scenario.Ping{Count: 1}, probe.PingResult{Echoes: echoes(0, &probe.SendError{Err: syscall.ENETUNREACH})}, false, "0/1 replies: send: network is unreachable"},
		{"RTT within", scenario.Ping{Count: 2, MaxRTT: 5 * time.Millisecond}, probe.PingResult{Received: 2, Echoes: echoes(64, nil, nil)}, true, "2/2 replies, TTL 64, RTT within 5ms"},
		{"RTT too long", scenario.Ping{Count: 2, MaxRTT: time.Millisecond}, probe.PingResult{Received: 2, Echoes: echoes(64, nil, nil)}, false, "2/2 replies, TTL 64, RTT 2ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := judgePing(&tt.p, tt.r)
			if o.ok != tt.ok || o.observed != tt.obs || o.err != nil {
				t.Errorf("judgePing = %v %q %v, want %v %q", o.ok, o.observed, o.err, tt.ok, tt.obs)
			}
		})
	}
}

var (
	node1, node2 = netip.MustParseAddr("10.30.45.100"), netip.MustParseAddr("10.30.45.200")
	pod1, pod2   = netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("192.168.2.20")
	mac          = net.HardwareAddr{0x0e, 0xfa, 1, 2, 3, 4}
)

func ipv4(src, dst netip.Addr, proto layers.IPProtocol, ttl uint8) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: ttl, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

// serialize builds a frame from its layers, lengths and checksums filled.
func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	for i, l := range ls {
		if u, ok := l.(*layers.UDP); ok {
			_ = u.SetNetworkLayerForChecksum(ls[i-1].(*layers.IPv4))
		}
		if tc, ok := l.(*layers.TCP); ok {
			_ = tc.SetNetworkLayerForChecksum(ls[i-1].(*layers.IPv4))
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func eth(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: mac, DstMAC: mac, EthernetType: typ}
}

func echoRequest() *layers.ICMPv4 {
	return &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1}
}

// Packets as captures see them, flattened and matched: a plain pod packet,
// one inside VXLAN, one inside IPIP, a TCP segment inside VXLAN.
func TestPacketMatches(t *testing.T) {
	plain := serialize(t, eth(layers.EthernetTypeIPv4), ipv4(pod1, pod2, layers.IPProtocolICMPv4, 63), echoRequest(), gopacket.Payload("ping"))
	vxlan := serialize(t, eth(layers.EthernetTypeIPv4), ipv4(node1, node2, layers.IPProtocolUDP, 64),
		&layers.UDP{SrcPort: 41000, DstPort: 8472}, &layers.VXLAN{ValidIDFlag: true, VNI: 1},
		eth(layers.EthernetTypeIPv4), ipv4(pod1, pod2, layers.IPProtocolICMPv4, 63), echoRequest(), gopacket.Payload("ping"))
	tcpIn := serialize(t, eth(layers.EthernetTypeIPv4), ipv4(node1, node2, layers.IPProtocolUDP, 64),
		&layers.UDP{SrcPort: 41000, DstPort: 8472}, &layers.VXLAN{ValidIDFlag: true, VNI: 1},
		eth(layers.EthernetTypeIPv4), ipv4(pod1, pod2, layers.IPProtocolTCP, 63), &layers.TCP{SrcPort: 50000, DstPort: 80, SYN: true})
	ipip := serialize(t, eth(layers.EthernetTypeIPv4), ipv4(node1, node2, layers.IPProtocolIPv4, 64),
		ipv4(pod1, pod2, layers.IPProtocolICMPv4, 63), echoRequest(), gopacket.Payload("ping"))
	packets := map[string]sniffed{}
	for name, data := range map[string][]byte{"plain": plain, "vxlan": vxlan, "tcp-in-vxlan": tcpIn, "ipip": ipip} {
		packets[name] = flatten("underlay/veth-node1", capture.Decode(data, layers.LinkTypeEthernet))
	}
	pods := scenario.Layer{Src: pod1, Dst: pod2}
	tests := []struct {
		name  string
		match scenario.PacketMatch
		want  string // the packets that match, sorted
	}{
		{"anything", scenario.PacketMatch{}, "ipip plain tcp-in-vxlan vxlan"},
		{"not tunnelled", scenario.PacketMatch{Encap: scenario.EncapNone}, "plain"},
		{"pod addresses outside", scenario.PacketMatch{Outer: pods}, "plain"},
		{"vxlan", scenario.PacketMatch{Encap: scenario.EncapVXLAN}, "tcp-in-vxlan vxlan"},
		{"vxlan, another VNI", scenario.PacketMatch{Encap: scenario.EncapVXLAN, VNI: 2}, ""},
		{"vxlan to 8472, icmp inside", scenario.PacketMatch{Encap: scenario.EncapVXLAN, VNI: 1,
			Outer: scenario.Layer{Src: node1, Dst: node2, Protocol: "udp", DstPort: 8472},
			Inner: scenario.Layer{Src: pod1, Dst: pod2, Protocol: "icmp", TTL: 63}}, "vxlan"},
		{"tcp port 80 inside", scenario.PacketMatch{Encap: scenario.EncapVXLAN, Inner: scenario.Layer{Protocol: "tcp", DstPort: 80}}, "tcp-in-vxlan"},
		{"ipip between the nodes", scenario.PacketMatch{Encap: scenario.EncapIPIP, Outer: scenario.Layer{Src: node1, Dst: node2, Protocol: "ipip"}, Inner: pods}, "ipip"},
		{"a TTL that is not there", scenario.PacketMatch{Encap: scenario.EncapIPIP, Inner: scenario.Layer{TTL: 64}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, name := range []string{"ipip", "plain", "tcp-in-vxlan", "vxlan"} {
				if matches(tt.match, packets[name]) {
					got = append(got, name)
				}
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("matched %v, want %q", got, tt.want)
			}
		})
	}
}

// Probe errors become words without what changes from one run to the
// next.
func TestErrorWords(t *testing.T) {
	op := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: pod2.AsSlice(), Port: 80}, Err: &net.AddrError{Err: "x"}}
	for err, want := range map[error]string{
		fmt.Errorf("%w within 1s", probe.ErrNoReply):        "no reply in time",
		fmt.Errorf("wrap: %w", errors.New("other")):         "wrap: other",
		&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}: "connection refused",
		op: "x",
	} {
		if got := errorWords(err); got != want {
			t.Errorf("errorWords(%v) = %q, want %q", err, got, want)
		}
	}
}
