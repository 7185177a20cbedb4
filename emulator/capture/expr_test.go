package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
)

// needTool finds a program the tests cross-check against. It may be missing
// on a developer's machine; CI (LABCTL_REQUIRE_ROOT=1) installs it, and there
// a missing tool is a failure, not a skip.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s is not installed (apt-get install %s)", name, pkg)
	if os.Getenv("LABCTL_REQUIRE_ROOT") == "1" {
		t.Fatal(msg + "; LABCTL_REQUIRE_ROOT=1 forbids skipping")
	}
	t.Skip(msg)
	return ""
}

// Raw packet builders, for headers gopacket does not write (IPv6 fragment
// and hop-by-hop headers, IPv4 options, later fragments, SCTP, RARP).

func ip4(src, dst string, proto byte, payload []byte, opts []byte, fragOff uint16, mf bool) []byte {
	ihl := 20 + len(opts)
	h := make([]byte, ihl, ihl+len(payload))
	h[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(h[2:], uint16(ihl+len(payload)))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	flags := fragOff / 8
	if mf {
		flags |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], flags)
	h[8], h[9] = 64, proto
	copy(h[12:], netip.MustParseAddr(src).AsSlice())
	copy(h[16:], netip.MustParseAddr(dst).AsSlice())
	copy(h[20:], opts)
	return append(h, payload...)
}

func ip6(src, dst string, next byte, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6], h[7] = next, 64
	copy(h[8:], netip.MustParseAddr(src).AsSlice())
	copy(h[24:], netip.MustParseAddr(dst).AsSlice())
	return append(h, payload...)
}

// l4 is a transport header starting with the two ports, padded to n bytes.
func l4(sport, dport uint16, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	if n >= 20 {
		b[12] = 5 << 4 // a TCP data offset, harmless for UDP and SCTP
	}
	return b
}

func eth(typ uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f, macB)
	copy(f[6:], macA)
	binary.BigEndian.PutUint16(f[12:], typ)
	return append(f, payload...)
}

func arpBody(op uint16, spa, tpa string) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b, 1)
	binary.BigEndian.PutUint16(b[2:], etIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], op)
	copy(b[8:], macA)
	copy(b[14:], netip.MustParseAddr(spa).AsSlice())
	copy(b[24:], netip.MustParseAddr(tpa).AsSlice())
	return b
}

type sample struct {
	name  string
	frame []byte // Ethernet
	vlan  bool   // tagged: offline tcpdump and a live kernel disagree on it
}

// samples is the packet set every filter is judged on: each construct of
// the language has packets it must keep and packets it must drop.
func samples(t testing.TB) []sample {
	const tcp, udpProto, sctp, icmp = 6, 17, 132, 1
	v4 := func(src, dst string, proto byte, payload []byte) []byte {
		return eth(etIPv4, ip4(src, dst, proto, payload, nil, 0, false))
	}
	echoReq := []byte{8, 0, 0, 0, 0, 1, 0, 1}
	var out []sample
	add := func(name string, f []byte) { out = append(out, sample{name: name, frame: f}) }
	add("arp request", eth(etARP, arpBody(1, "10.0.0.1", "10.0.0.2")))
	add("arp reply", eth(etARP, arpBody(2, "10.0.0.2", "10.0.0.1")))
	add("rarp", eth(etRARP, arpBody(3, "10.0.0.3", "10.1.0.9")))
	add("arp between pods", eth(etARP, arpBody(1, "192.168.1.10", "192.168.2.20")))
	add("icmp a>b", v4("10.0.0.1", "10.0.0.2", icmp, echoReq))
	add("icmp b>a", v4("10.0.0.2", "10.0.0.1", icmp, []byte{0, 0, 0, 0, 0, 1, 0, 1}))
	add("icmp pods", v4("192.168.1.10", "192.168.2.20", icmp, echoReq))
	add("tcp a:40000>b:80", v4("10.0.0.1", "10.0.0.2", tcp, l4(40000, 80, 20)))
	add("tcp b:80>a:40000", v4("10.0.0.2", "10.0.0.1", tcp, l4(80, 40000, 20)))
	add("tcp a:22>c:443", v4("10.0.0.1", "10.1.2.3", tcp, l4(22, 443, 20)))
	add("tcp c:1500>a:2000", v4("10.1.2.3", "10.0.0.1", tcp, l4(1500, 2000, 20)))
	add("tcp c:999>a:2001", v4("10.1.2.3", "10.0.0.1", tcp, l4(999, 2001, 20)))
	add("tcp a:1000>b:2000", v4("10.0.0.1", "10.0.0.2", tcp, l4(1000, 2000, 20)))
	add("tcp to 10.1.0.1:3000", v4("10.0.0.2", "10.1.0.1", tcp, l4(33000, 3000, 20)))
	add("udp a:53>b:53", v4("10.0.0.1", "10.0.0.2", udpProto, l4(53, 53, 8)))
	add("udp b:45000>d:53", v4("10.0.0.2", "10.9.9.9", udpProto, l4(45000, 53, 8)))
	add("udp 40000>50000", v4("10.0.0.3", "10.0.0.4", udpProto, l4(40000, 50000, 8)))
	add("vxlan 8472 icmp", vxlanFrame(t, 8472, 1))
	add("vxlan 4789 tcp", serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv4),
		ipv4("10.30.45.100", "10.30.45.200", layers.IPProtocolUDP), udp(41234, 4789),
		&layers.VXLAN{ValidIDFlag: true, VNI: 4096}, ethernet(macC, macD, layers.EthernetTypeIPv4),
		ipv4("192.168.1.10", "192.168.2.20", layers.IPProtocolTCP),
		&layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Window: 64240}))
	add("ipip icmp", v4("10.30.45.100", "10.30.45.200", 4, ip4("192.168.1.10", "192.168.2.20", icmp, echoReq, nil, 0, false)))
	add("ipv6 in ipv4", v4("10.30.45.100", "10.30.45.200", 41, ip6("fd00::1", "fd00::2", tcp, l4(40000, 80, 20))))
	add("first fragment udp 53", eth(etIPv4, ip4("10.0.0.1", "10.0.0.2", udpProto, l4(5000, 53, 8), nil, 0, true)))
	add("later fragment", eth(etIPv4, ip4("10.0.0.1", "10.0.0.2", udpProto, l4(53, 53, 8), nil, 1480, false)))
	add("ip options tcp 80", eth(etIPv4, ip4("10.0.0.1", "10.0.0.2", tcp, l4(40000, 80, 20), []byte{1, 1, 1, 0}, 0, false)))
	add("sctp 80>5000", v4("10.0.0.1", "10.0.0.2", sctp, l4(80, 5000, 12)))
	add("gre", v4("10.0.0.1", "10.0.0.2", 47, make([]byte, 4)))
	add("igmp", v4("10.0.0.1", "224.0.0.1", 2, make([]byte, 8)))
	add("ip6 tcp 40000>80", eth(etIPv6, ip6("fd00::1", "fd00::2", tcp, l4(40000, 80, 20))))
	add("ip6 udp 53>5353", eth(etIPv6, ip6("fd00:1::5", "fd00::1", udpProto, l4(53, 5353, 8))))
	add("ip6 icmp6", eth(etIPv6, ip6("fd00::1", "fd00::2", 58, []byte{128, 0, 0, 0, 0, 1, 0, 1})))
	add("ip6 fragment tcp 80", eth(etIPv6, ip6("fd00::2", "fd00::1", ipProtoFragment,
		append([]byte{tcp, 0, 0, 0, 0, 0, 0, 9}, l4(80, 40000, 20)...))))
	add("ip6 hop-by-hop udp 53", eth(etIPv6, ip6("fd00::1", "fd00::2", 0,
		append([]byte{udpProto, 0, 1, 4, 0, 0, 0, 0}, l4(40000, 53, 8)...))))
	add("ip6 sctp 80", eth(etIPv6, ip6("fd00::1", "fd00::2", sctp, l4(5000, 80, 12))))
	add("802.3 llc", eth(0x0026, make([]byte, 38)))
	add("unknown ethertype", eth(0x88b5, make([]byte, 46)))
	add("cut ipv4", eth(etIPv4, ip4("10.0.0.1", "10.0.0.2", tcp, l4(40000, 80, 20), nil, 0, false))[:14+16])
	add("cut tcp", eth(etIPv4, ip4("10.0.0.1", "10.0.0.2", tcp, l4(40000, 80, 20), nil, 0, false))[:14+20+2])
	tagged := eth(0x8100, append([]byte{0, 10, 0x08, 0x00}, ip4("10.0.0.1", "10.0.0.2", tcp, l4(40000, 80, 20), nil, 0, false)...))
	out = append(out, sample{name: "vlan tcp 80", frame: tagged, vlan: true})
	return out
}

// filterCases lists every construct the language supports.
var filterCases = []string{
	"ip", "ip6", "arp", "rarp", "tcp", "udp", "sctp", "icmp", "icmp6",
	"host 10.0.0.1", "src host 10.0.0.1", "dst host 10.0.0.2", "host fd00::1", "src host fd00::1", "dst host fd00::1",
	"ip host 10.0.0.1", "arp host 10.0.0.1", "rarp host 10.0.0.3", "ip src 10.0.0.1", "ip dst 10.0.0.2",
	"src 10.0.0.1", "dst 192.168.2.20", "host 10.1",
	"net 10.0.0.0/8", "net 10.0.0.0/24", "src net 192.168.1.0/24", "dst net 192.168.0.0/16",
	"net 10.0.0.0 mask 255.255.0.0", "net 10", "net 192.168", "net 192.168.2", "net fd00::/16", "net fd00:1::/32",
	"net 0.0.0.0/0", "arp net 10.0.0.0/8", "ip6 net fd00::/64", "net 10.0.0.0/31", "net 10.1.0.0/17",
	"src and dst net 10.0.0.0/8", "src or dst host 10.0.0.2", "dst or src host 10.0.0.2",
	"port 80", "src port 80", "dst port 80", "tcp port 80", "udp port 53", "tcp dst port 443", "sctp port 80",
	"src and dst port 53", "src or dst port 53", "udp dst port 8472", "udp port 4789",
	"portrange 1000-2000", "tcp portrange 1000-2000", "udp src portrange 40000-50000", "portrange 2000-1000",
	"dst portrange 80-80", "sctp portrange 1-100",
	"proto 17", "ip proto 4", `ip proto \tcp`, "ip6 proto 58", "proto 47", "ip proto 41", "proto 6", "ip6 proto 6", `proto \udp`,
	"tcp and port 80", "tcp or udp", "not tcp", "not (tcp or udp)", "host 10.0.0.1 and not port 22",
	"(tcp or icmp) and host 10.0.0.2", "! arp", "tcp && port 80", "udp || icmp", "port 80 or 443", "port 80 and 443",
	"host 10.0.0.1 or 10.0.0.2", "tcp port 80 or 443", "src host 10.0.0.1 or dst 10.0.0.2",
	"udp port 8472 and host 10.30.45.100", "icmp or tcp and host 10.0.0.1", "not not ip", "((ip))",
	"not host 10.0.0.1 and not host 10.0.0.2", "host 10.0.0.1 and (port 80 or port 22)",
	"net 192.168.0.0/16 or net 10.30.45.0/24 and not icmp", "tcp port 80 and not src host 10.0.0.2",
}

// TestExprMatchesTcpdump compiles every construct and runs it on every
// sample, for Ethernet and for bare-IP devices, in each of the three forms
// labctl uses (a program for an Ethernet device, one for a bare-IP device,
// one for all devices of a namespace, and the Go evaluation Matches does),
// and requires tcpdump's decision on each packet.
func TestExprMatchesTcpdump(t *testing.T) {
	tcpdump := needTool(t, "tcpdump", "tcpdump")
	all := samples(t)
	var rawSamples []sample
	for _, s := range all {
		if et := binary.BigEndian.Uint16(s.frame[12:]); (et == etIPv4 || et == etIPv6) && len(s.frame) > 14+20 {
			rawSamples = append(rawSamples, sample{name: s.name, frame: s.frame[14:]})
		}
	}
	dir := t.TempDir()
	ethFile := writePcap(t, dir, "eth.pcap", layers.LinkTypeEthernet, all)
	rawFile := writePcap(t, dir, "raw.pcap", layers.LinkTypeRaw, rawSamples)

	for _, text := range filterCases {
		t.Run(text, func(t *testing.T) {
			e, err := ParseExpr(text)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				file    string
				link    layers.LinkType
				samples []sample
			}{{ethFile, layers.LinkTypeEthernet, all}, {rawFile, layers.LinkTypeRaw, rawSamples}} {
				want := tcpdumpKeeps(t, tcpdump, f.file, text, len(f.samples))
				own := vmOf(t, e, f.link)
				anyProg := mustProgram(t, e, 0)
				for i, s := range f.samples {
					if got := runVM(t, own, s.frame); got != want[i] {
						t.Errorf("%s program, %s: keeps %v, tcpdump %v", f.link, s.name, got, want[i])
					}
					if got := runAnyProgram(t, anyProg, s.frame, f.link); got != want[i] {
						t.Errorf("all-devices program on %s, %s: keeps %v, tcpdump %v", f.link, s.name, got, want[i])
					}
					if got := e.Matches(s.frame, f.link); got != want[i] && !s.vlan {
						t.Errorf("Matches on %s, %s: %v, tcpdump %v", f.link, s.name, got, want[i])
					}
				}
			}
		})
	}
}

func writePcap(t *testing.T, dir, name string, link layers.LinkType, ss []sample) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, link); err != nil {
		t.Fatal(err)
	}
	for i, s := range ss {
		// The timestamp numbers the packet, so tcpdump's output says
		// which ones it kept.
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(1000+i), 0), CaptureLength: len(s.frame), Length: len(s.frame)}
		if err := w.WritePacket(ci, s.frame); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// tcpdumpKeeps runs tcpdump over the file with the filter and says which
// packets it kept. A filter tcpdump refuses as rejecting everything (arp on
// a bare-IP link) keeps nothing.
func tcpdumpKeeps(t *testing.T, tcpdump, file, expr string, n int) []bool {
	t.Helper()
	out := filepath.Join(t.TempDir(), "kept.pcap")
	cmd := exec.Command(tcpdump, "-r", file, "-w", out, expr)
	msg, err := cmd.CombinedOutput()
	keep := make([]bool, n)
	if err != nil {
		if strings.Contains(string(msg), "rejects all packets") {
			return keep
		}
		t.Fatalf("tcpdump %q: %v: %s", expr, err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return keep
		}
		if err != nil {
			t.Fatal(err)
		}
		keep[ci.Timestamp.Unix()-1000] = true
	}
}

func mustProgram(t *testing.T, e *Expr, link layers.LinkType) []bpf.RawInstruction {
	t.Helper()
	raw, err := e.Program(link, 0)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func vmOf(t *testing.T, e *Expr, link layers.LinkType) *bpf.VM {
	t.Helper()
	ins, ok := bpf.Disassemble(mustProgram(t, e, link))
	if !ok {
		t.Fatal("program does not disassemble")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func runVM(t *testing.T, vm *bpf.VM, data []byte) bool {
	t.Helper()
	n, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// runAnyProgram runs a program written for the kernel's view of any device
// (skb->protocol, loads from the network header) on one packet, by putting
// in what the kernel would: the EtherType as skb->protocol and the network
// header's real offset. golang.org/x/net/bpf's VM knows neither extension.
func runAnyProgram(t *testing.T, raw []bpf.RawInstruction, data []byte, link layers.LinkType) bool {
	t.Helper()
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("program does not disassemble")
	}
	base, proto := uint32(0), uint32(0)
	if link == layers.LinkTypeEthernet {
		base, proto = 14, uint32(binary.BigEndian.Uint16(data[12:]))
		if proto < 0x600 {
			proto = 0x0004 // what eth_type_trans calls 802.2 frames
		}
	} else {
		proto = map[byte]uint32{4: etIPv4, 6: etIPv6}[data[0]>>4]
	}
	for i, in := range ins {
		switch in := in.(type) {
		case bpf.LoadExtension:
			if in.Num != bpf.ExtProto {
				t.Fatalf("unexpected extension %v", in)
			}
			ins[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: proto}
		case bpf.LoadAbsolute:
			ins[i] = bpf.LoadAbsolute{Off: in.Off - skfNetOff + base, Size: in.Size}
		case bpf.LoadIndirect:
			ins[i] = bpf.LoadIndirect{Off: in.Off - skfNetOff + base, Size: in.Size}
		case bpf.LoadMemShift:
			ins[i] = bpf.LoadMemShift{Off: in.Off - skfNetOff + base}
		}
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	return runVM(t, vm, data)
}

// TestExprInner checks "inner" against tcpdump too: a filter "inner X"
// must keep a tunnel packet exactly when tcpdump, given the packet inside
// as a capture of its own, keeps it with X. The kernel's stand-in program
// must keep at least those.
func TestExprInner(t *testing.T) {
	tcpdump := needTool(t, "tcpdump", "tcpdump")
	all := samples(t)
	dir := t.TempDir()
	for _, inner := range []string{"host 192.168.2.20", "icmp", "tcp port 80", "src net 192.168.1.0/24", "ip6", "tcp", "not icmp"} {
		t.Run(inner, func(t *testing.T) {
			for _, text := range []string{"inner " + inner, "inner (" + inner + ")"} {
				e := MustParseExpr(text)
				if e.Exact() {
					t.Fatalf("%q: Exact", text)
				}
				kernel := vmOf(t, e, layers.LinkTypeEthernet)
				for _, s := range all {
					levels := tunnelLevels(level{s.frame, linkEthernet}, []uint16{VXLANPortIANA, VXLANPortLinux})
					want := false
					for i, l := range levels {
						link := layers.LinkTypeEthernet
						if l.link == linkRaw {
							link = layers.LinkTypeRaw
						}
						file := writePcap(t, dir, fmt.Sprintf("%s-%d.pcap", strings.ReplaceAll(s.name, " ", "_"), i), link, []sample{{frame: l.data}})
						want = want || tcpdumpKeeps(t, tcpdump, file, inner, 1)[0]
					}
					if got := e.Matches(s.frame, layers.LinkTypeEthernet); got != want {
						t.Errorf("%q on %s: %v, want %v", text, s.name, got, want)
					}
					if want && !runVM(t, kernel, s.frame) {
						t.Errorf("%q: the kernel program drops %s, which matches", text, s.name)
					}
				}
			}
		})
	}
}

func TestExprInnerCombined(t *testing.T) {
	vx := vxlanFrame(t, 8472, 1) // pod 192.168.1.10 > 192.168.2.20 ICMP inside
	plain := serialize(t, ethernet(macA, macB, layers.EthernetTypeIPv4),
		ipv4("192.168.1.10", "192.168.2.20", layers.IPProtocolICMPv4), echo(ICMPEchoRequest, 1, 1), payload(56))
	custom := vxlanFrame(t, 9999, 7)
	for _, tt := range []struct {
		expr                     string
		vx, plain, other, custom bool // custom: VXLAN on 9999 when told
	}{
		{"inner host 192.168.2.20", true, false, false, true},
		{"host 192.168.2.20 or inner host 192.168.2.20", true, true, false, true},
		{"udp port 8472 and inner icmp", true, false, false, false},
		{"not inner icmp", false, true, true, false},
		{"inner host 192.168.9.9 or 192.168.2.20", true, false, false, true}, // the bare value stays inner
		{"inner (host 192.168.1.10 and icmp)", true, false, false, true},
		{"inner host 192.168.1.10 and icmp", false, false, false, false}, // the outer packet is UDP
		{"ip and not inner tcp", true, true, true, true},
	} {
		e := MustParseExpr(tt.expr)
		if got := e.Matches(vx, layers.LinkTypeEthernet); got != tt.vx {
			t.Errorf("%q on vxlan: %v", tt.expr, got)
		}
		if got := e.Matches(plain, layers.LinkTypeEthernet); got != tt.plain {
			t.Errorf("%q on a plain packet: %v", tt.expr, got)
		}
		// Port 9999 is VXLAN only when the capture is told so.
		if got := e.Matches(custom, layers.LinkTypeEthernet); got != tt.other {
			t.Errorf("%q on udp 9999: %v", tt.expr, got)
		}
		if got := e.Matches(custom, layers.LinkTypeEthernet, 9999); got != tt.custom {
			t.Errorf("%q on vxlan 9999: %v", tt.expr, got)
		}
		// Every packet Matches keeps, the kernel keeps as well.
		for _, data := range [][]byte{vx, plain} {
			if e.Matches(data, layers.LinkTypeEthernet) && !runVM(t, vmOf(t, e, layers.LinkTypeEthernet), data) {
				t.Errorf("%q: the kernel program drops a packet that matches", tt.expr)
			}
		}
	}
}

func TestParseExprErrors(t *testing.T) {
	for _, tt := range []struct{ expr, want string }{
		{"10.0.0.1", `at 1: "10.0.0.1": say what it is`},
		{"icmp and 10.0.0.1", `at 10: "10.0.0.1": say what it is`},
		{"udp host 1.2.3.4", `"udp" applies to ports, not to host`},
		{"icmp port 80", `unexpected "port"`},
		{"ip6 host 10.0.0.1", `"10.0.0.1" is an IPv4 address, ip6 carries IPv6`},
		{"arp host fd00::1", `"fd00::1" is an IPv6 address, "arp" carries IPv4`},
		{"net 10.0.0.1/8", `non-network bits set in "10.0.0.1/8"`},
		{"host 10.0.0.0/8", `a mask makes it a net`},
		{"host example.com", `names are not looked up`},
		{"port http", `port "http": give a number (names are not looked up)`},
		{"port 70000", `port "70000" is out of range`},
		{"portrange 10", `portrange "10": write it as FIRST-LAST`},
		{"proto 300", `protocol "300": give a number`},
		{"tcp and", `at the end: expression ends too early`},
		{"(tcp", `missing )`},
		{"tcp)", `unexpected ")"`},
		{"tcp or or udp", `unexpected "or"`},
		{"ether host 02:00:00:00:00:01", `"ether": link-layer addresses filters are not supported here`},
		{"vlan 10", `VLAN tags`},
		{"len > 100", `packet length`},
		{"tcp[13] & 2 != 0", `header bytes (tcp[13]) are not supported`},
		{"a != b", `comparisons`},
		{"tcp & udp", `write and/&& or or/||`},
		{"inner inner icmp", `inner inside inner`},
		{"host", `host needs a value`},
		{"port and", `port needs a value, not "and"`},
		{"net 10.0.0.0 mask 255.0.255.0", `not contiguous`},
		{"tcp proto 6", `only ip and ip6 carry a protocol number`},
		{"src proto 6", `takes no direction`},
		{"ip port 80", `"ip" has no ports`},
	} {
		_, err := ParseExpr(tt.expr)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want %q", tt.expr, err, tt.want)
		} else if !strings.HasPrefix(err.Error(), fmt.Sprintf("filter %q: ", tt.expr)) {
			t.Errorf("%q: error does not name the filter: %v", tt.expr, err)
		}
	}
}

// Long expressions need jumps further than classic BPF's 255 instructions;
// the assembler routes those through unconditional jumps.
func TestExprLongJumps(t *testing.T) {
	var parts []string
	for i := range 60 {
		parts = append(parts, fmt.Sprintf("host 10.0.%d.%d", i/250, i%250+1))
	}
	e := MustParseExpr("(" + strings.Join(parts, " or ") + ") and tcp port 80")
	prog := mustProgram(t, e, layers.LinkTypeEthernet)
	if len(prog) < 300 {
		t.Fatalf("program of %d instructions is too short to test long jumps", len(prog))
	}
	vm := vmOf(t, e, layers.LinkTypeEthernet)
	for _, tt := range []struct {
		src  string
		port uint16
		want bool
	}{{"10.0.0.1", 80, true}, {"10.0.0.59", 80, true}, {"10.0.0.60", 80, true}, {"10.0.0.61", 80, false}, {"10.0.0.1", 81, false}} {
		frame := eth(etIPv4, ip4(tt.src, "10.9.0.1", 6, l4(40000, tt.port, 20), nil, 0, false))
		if got := runVM(t, vm, frame); got != tt.want {
			t.Errorf("%s port %d: %v, want %v", tt.src, tt.port, got, tt.want)
		}
	}
	// The empty expression keeps everything, whole.
	all := mustProgram(t, MustParseExpr(""), layers.LinkTypeEthernet)
	if all[0].Op != opRetK || all[0].K != DefaultSnaplen {
		t.Errorf("empty filter: %v", all)
	}
}
