package capture

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

func expect(t *testing.T, c *Capture, what string, match func(Packet) bool) Packet {
	t.Helper()
	p, err := c.Expect(timeout(t, 5*time.Second), match)
	if err != nil {
		t.Fatalf("%s on %s: %v", what, c.Device(), err)
	}
	return p
}

func isEcho(typ uint8, id uint16) func(Packet) bool {
	return func(p Packet) bool { return p.ICMP != nil && p.ICMP.Type == typ && p.ICMP.ID == id }
}

func TestCaptureEcho(t *testing.T) {
	l := newLab(t)
	a, b := l.ns("a"), l.ns("b")
	l.veth(a, "eth0", "10.124.0.1/24", b, "eth0", "10.124.0.2/24")

	var rec bytes.Buffer
	pw := NewPcapngWriter(&rec)
	cb := open(t, b, "eth0", Options{Record: pw})
	short := open(t, b, "eth0", Options{Snaplen: 14 + 20 + 8}) // up to the ICMP header
	ca := open(t, a, "", Options{Direction: Out})              // every interface of a, outgoing only

	before := time.Now()
	sendEcho(t, a, "10.124.0.2", 0x4c41, 1)

	req := expect(t, cb, "echo request", isEcho(ICMPEchoRequest, 0x4c41))
	reply := expect(t, cb, "echo reply", isEcho(ICMPEchoReply, 0x4c41))
	after := time.Now()

	eq(t, "request", req.String(), "eth0 In IP 10.124.0.1 > 10.124.0.2: ICMP echo request, id 19521, seq 1, length 64")
	eq(t, "reply", reply.String(), "eth0 Out IP 10.124.0.2 > 10.124.0.1: ICMP echo reply, id 19521, seq 1, length 64")
	eq(t, "namespace", req.Namespace, nsPath(b))
	eq(t, "type", req.Type, PacketHost)
	eq(t, "length", req.Length, 98)
	eq(t, "data", len(req.Data), 98)
	eq(t, "link", req.LinkType, layers.LinkTypeEthernet)
	eq(t, "eth src", req.Eth.Src.String(), mac(t, a, "eth0").String())
	eq(t, "eth dst", req.Eth.Dst.String(), mac(t, b, "eth0").String())
	eq(t, "ttl", req.IPv4.TTL, 64)
	if req.Ifindex <= 0 {
		t.Errorf("ifindex %d", req.Ifindex)
	}
	// Kernel timestamps, not read times: both fall inside the exchange, in order.
	if req.Time.Before(before) || reply.Time.After(after) || reply.Time.Before(req.Time) {
		t.Errorf("times %v, %v outside [%v, %v]", req.Time, reply.Time, before, after)
	}
	if got := req.Decoded.Metadata().Timestamp; !got.Equal(req.Time) {
		t.Errorf("gopacket metadata time %v, want %v", got, req.Time)
	}

	// A short snaplen keeps the headers, and the lengths still come from
	// the wire and the IP header.
	cut := expect(t, short, "cut echo request", isEcho(ICMPEchoRequest, 0x4c41))
	eq(t, "cut", cut.String(), req.String())
	eq(t, "cut data", len(cut.Data), 42)
	eq(t, "cut length", cut.Length, 98)

	// The all-interfaces capture in a sees the request leave, and nothing
	// incoming at all: the reply and a's ARP answers stay out.
	out := expect(t, ca, "echo request leaving a", isEcho(ICMPEchoRequest, 0x4c41))
	eq(t, "a request", out.String(), "eth0 Out IP 10.124.0.1 > 10.124.0.2: ICMP echo request, id 19521, seq 1, length 64")
	ctx := timeout(t, 300*time.Millisecond)
	for {
		p, err := ca.Next(ctx)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
		if !p.Type.Outgoing() {
			t.Errorf("outgoing-only capture returned %s", p)
		}
	}

	st, err := cb.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Received < 2 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}

	// The recording holds what the capture returned, on a named interface.
	if err := cb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pw.Flush(); err != nil {
		t.Fatal(err)
	}
	got := readPcapng(t, rec.Bytes())
	if uint64(len(got)) != st.Received {
		t.Errorf("recorded %d packets, captured %d", len(got), st.Received)
	}
	found := false
	for _, r := range got {
		if r.intf.Name != "eth0" || r.intf.Description != "eth0 in network namespace "+b {
			t.Errorf("recorded interface %q (%q)", r.intf.Name, r.intf.Description)
		}
		if bytes.Equal(r.data, req.Data) && r.ci.Timestamp.Equal(req.Time) {
			found = true
		}
	}
	if !found {
		t.Error("the echo request is not in the recording")
	}
}

func TestCaptureBridgePort(t *testing.T) {
	l := newLab(t)
	br, a, b := l.ns("br"), l.ns("a"), l.ns("b")
	nstest.IP(t, "-n", br, "link", "add", "br0", "type", "bridge")
	nstest.IP(t, "-n", br, "link", "set", "br0", "up")
	l.veth(a, "eth0", "10.124.1.1/24", br, "p1", "")
	l.veth(b, "eth0", "10.124.1.2/24", br, "p2", "")
	nstest.IP(t, "-n", br, "link", "set", "p1", "master", "br0")
	nstest.IP(t, "-n", br, "link", "set", "p2", "master", "br0")

	base := promiscuity(t, br, "p2")
	port := open(t, br, "p2", Options{Promiscuous: true})
	// Promiscuous mode is a reference the socket holds, not a flag set on
	// the device: it goes away with the socket.
	eq(t, "promiscuity with capture", promiscuity(t, br, "p2"), base+1)
	all := open(t, br, "", Options{})
	cb := open(t, b, "eth0", Options{})

	sendEcho(t, a, "10.124.1.2", 7, 1)
	req := expect(t, port, "request forwarded to p2", isEcho(ICMPEchoRequest, 7))
	eq(t, "request", req.String(), "p2 Out IP 10.124.1.1 > 10.124.1.2: ICMP echo request, id 7, seq 1, length 64")
	// Frames a bridge port receives are addressed to some other host, not
	// to the port: tcpdump marks them "P" too.
	reply := expect(t, port, "reply from b", isEcho(ICMPEchoReply, 7))
	eq(t, "reply", reply.String(), "p2 P IP 10.124.1.2 > 10.124.1.1: ICMP echo reply, id 7, seq 1, length 64")

	// On every interface of the bridge namespace the request comes in on
	// p1 and goes out on p2, in that order; br0 itself is not on the path.
	in := expect(t, all, "request entering on p1", isEcho(ICMPEchoRequest, 7))
	eq(t, "p1", in.String(), "p1 P IP 10.124.1.1 > 10.124.1.2: ICMP echo request, id 7, seq 1, length 64")
	fwd := expect(t, all, "request leaving on p2", isEcho(ICMPEchoRequest, 7))
	eq(t, "p2", fwd.String(), "p2 Out IP 10.124.1.1 > 10.124.1.2: ICMP echo request, id 7, seq 1, length 64")

	// A frame for a MAC nobody has is flooded to b, whose capture sees it
	// as addressed to another host.
	stranger := []byte{0x02, 0, 0, 0, 0, 0x99}
	sendFrame(t, a, "eth0", udpFrame(t, mac(t, a, "eth0"), stranger, "10.124.1.1", "10.124.1.2", 40000, 9))
	p := expect(t, cb, "flooded frame", func(p Packet) bool { return p.UDP != nil && p.UDP.DstPort == 9 })
	eq(t, "flooded", p.String(), "eth0 P IP 10.124.1.1.40000 > 10.124.1.2.9: UDP, length 8")
	eq(t, "type", p.Type, PacketOtherHost)
	eq(t, "dst mac", p.Eth.Dst.String(), "02:00:00:00:00:99")

	if err := port.Close(); err != nil {
		t.Fatal(err)
	}
	eq(t, "promiscuity after close", promiscuity(t, br, "p2"), base)
}

var promiscRE = regexp.MustCompile(`promiscuity (\d+)`)

// promiscuity is the device's promiscuous-mode reference count.
func promiscuity(t *testing.T, ns, dev string) int {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-d", "link", "show", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -d link show %s: %v: %s", dev, err, out)
	}
	m := promiscRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no promiscuity in %s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func TestCaptureVXLAN(t *testing.T) {
	l := newLab(t)
	n1, n2 := l.ns("n1"), l.ns("n2")
	l.veth(n1, "eth0", "10.124.2.1/24", n2, "eth0", "10.124.2.2/24")
	for _, n := range []struct{ ns, local, remote, ip42, ip7 string }{
		{n1, "10.124.2.1", "10.124.2.2", "192.168.42.1/24", "192.168.7.1/24"},
		{n2, "10.124.2.2", "10.124.2.1", "192.168.42.2/24", "192.168.7.2/24"},
	} {
		// vni 42 on the Linux port, vni 7 on a port only this test knows.
		nstest.IP(t, "-n", n.ns, "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "8472",
			"local", n.local, "remote", n.remote, "dev", "eth0")
		nstest.IP(t, "-n", n.ns, "link", "add", "vx1", "type", "vxlan", "id", "7", "dstport", "4799",
			"local", n.local, "remote", n.remote, "dev", "eth0")
		nstest.IP(t, "-n", n.ns, "addr", "add", n.ip42, "dev", "vx0")
		nstest.IP(t, "-n", n.ns, "addr", "add", n.ip7, "dev", "vx1")
		nstest.IP(t, "-n", n.ns, "link", "set", "vx0", "up")
		nstest.IP(t, "-n", n.ns, "link", "set", "vx1", "up")
	}

	underlay := open(t, n2, "eth0", Options{
		Filter: Match{Protocol: layers.IPProtocolUDP, Port: 8472}.MustProgram(),
	})
	custom := open(t, n2, "eth0", Options{
		VXLANPorts: []uint16{4799},
		Filter:     Match{Protocol: layers.IPProtocolUDP, Port: 4799}.MustProgram(),
	})
	overlay := open(t, n2, "vx0", Options{})

	sendEcho(t, n1, "192.168.7.2", 0x77, 1) // first, so the 8472 filter has something to keep out
	sendEcho(t, n1, "192.168.42.2", 0x42, 1)

	var leaked []string
	p := expect(t, underlay, "encapsulated echo request", func(p Packet) bool {
		if p.UDP == nil || (p.UDP.DstPort != 8472 && p.UDP.SrcPort != 8472) {
			leaked = append(leaked, p.String())
		}
		in := p.Inner
		return p.VXLAN != nil && in != nil && in.ICMP != nil && in.ICMP.Type == ICMPEchoRequest
	})
	if len(leaked) > 0 {
		t.Errorf("filter let through: %s", strings.Join(leaked, "; "))
	}
	eq(t, "outer src", p.IPv4.Src, netip.MustParseAddr("10.124.2.1"))
	eq(t, "outer dst", p.IPv4.Dst, netip.MustParseAddr("10.124.2.2"))
	eq(t, "udp dst", p.UDP.DstPort, 8472)
	eq(t, "vni", p.VXLAN.VNI, 42)
	eq(t, "inner src", p.Inner.IPv4.Src, netip.MustParseAddr("192.168.42.1"))
	eq(t, "inner dst", p.Inner.IPv4.Dst, netip.MustParseAddr("192.168.42.2"))
	eq(t, "inner eth dst", p.Inner.Eth.Dst.String(), mac(t, n2, "vx0").String())
	wantLine := regexp.MustCompile(`^eth0 In IP 10\.124\.2\.1\.\d+ > 10\.124\.2\.2\.8472: VXLAN, flags \[I\] \(0x08\), vni 42: ` +
		`IP 192\.168\.42\.1 > 192\.168\.42\.2: ICMP echo request, id 66, seq 1, length 64$`)
	if !wantLine.MatchString(p.String()) {
		t.Errorf("line %q does not match %s", p.String(), wantLine)
	}
	// The reply goes back through the tunnel with the same VNI.
	r := expect(t, underlay, "encapsulated echo reply", func(p Packet) bool {
		return p.VXLAN != nil && p.Innermost().ICMP != nil && p.Innermost().ICMP.Type == ICMPEchoReply
	})
	eq(t, "reply direction", r.Type, PacketOutgoing)
	eq(t, "reply vni", r.VXLAN.VNI, 42)
	eq(t, "reply inner dst", r.Inner.IPv4.Dst, netip.MustParseAddr("192.168.42.1"))

	// On the vxlan device itself the same packet has no tunnel around it.
	o := expect(t, overlay, "decapsulated echo request", isEcho(ICMPEchoRequest, 0x42))
	eq(t, "overlay", o.String(), "vx0 In IP 192.168.42.1 > 192.168.42.2: ICMP echo request, id 66, seq 1, length 64")

	c := expect(t, custom, "echo request on the configured port", func(p Packet) bool {
		return p.VXLAN != nil && p.Innermost().ICMP != nil && p.Innermost().ICMP.Type == ICMPEchoRequest
	})
	eq(t, "custom port", c.UDP.DstPort, 4799)
	eq(t, "custom vni", c.VXLAN.VNI, 7)
	eq(t, "custom inner dst", c.Inner.IPv4.Dst, netip.MustParseAddr("192.168.7.2"))
}

// Receiving kernels move a VLAN tag out of the frame into metadata before
// any capture sees it; the capture must put it back where it was.
func TestCaptureVLANTag(t *testing.T) {
	l := newLab(t)
	a, b := l.ns("a"), l.ns("b")
	l.veth(a, "eth0", "10.124.8.1/24", b, "eth0", "10.124.8.2/24")
	c := open(t, b, "eth0", Options{})
	frame := serialize(t, ethernet(mac(t, a, "eth0"), mac(t, b, "eth0"), layers.EthernetTypeDot1Q),
		&layers.Dot1Q{Priority: 3, VLANIdentifier: 10, Type: layers.EthernetTypeIPv4},
		ipv4("10.124.8.1", "10.124.8.2", layers.IPProtocolUDP), udp(40000, 9), payload(8))
	sendFrame(t, a, "eth0", frame)
	p := expect(t, c, "tagged frame", func(p Packet) bool { return p.UDP != nil && p.UDP.DstPort == 9 })
	eq(t, "line", p.String(), "eth0 In vlan 10, IP 10.124.8.1.40000 > 10.124.8.2.9: UDP, length 8")
	if !bytes.Equal(p.Data, frame) {
		t.Errorf("captured % x\nsent     % x", p.Data, frame)
	}
	eq(t, "length", p.Length, len(frame))
}

func TestCaptureIPIP(t *testing.T) {
	l := newLab(t)
	a, b := l.ns("a"), l.ns("b")
	l.veth(a, "eth0", "10.124.3.1/24", b, "eth0", "10.124.3.2/24")

	tunnel := open(t, b, "eth0", Options{Filter: Match{Protocol: layers.IPProtocolIPv4}.MustProgram()})
	icmp := open(t, b, "eth0", Options{Direction: Out, Filter: Match{Protocol: layers.IPProtocolICMPv4}.MustProgram()})

	inner := serialize(t, ipv4("192.168.1.10", "192.168.2.20", layers.IPProtocolICMPv4), echo(ICMPEchoRequest, 7, 1), payload(56))
	sendIPIP(t, a, "10.124.3.2", inner)

	p := expect(t, tunnel, "ipip packet", func(p Packet) bool { return p.IPv4 != nil && p.IPv4.Protocol == layers.IPProtocolIPv4 })
	eq(t, "line", p.String(),
		"eth0 In IP 10.124.3.1 > 10.124.3.2: IP 192.168.1.10 > 192.168.2.20: ICMP echo request, id 7, seq 1, length 64")
	eq(t, "outer length", p.IPv4.Length, 20+84)
	eq(t, "inner", p.Inner.IPv4.Src, netip.MustParseAddr("192.168.1.10"))
	eq(t, "inner dst", p.Inner.IPv4.Dst, netip.MustParseAddr("192.168.2.20"))
	eq(t, "inner icmp", *p.Inner.ICMP, ICMP{Type: ICMPEchoRequest, ID: 7, Seq: 1, Length: 64})
	eq(t, "inner eth", p.Inner.Eth, (*Ethernet)(nil))

	// Without an ipip module (and so without tunl0) b's kernel refuses
	// protocol 4, which a student sees as this answer.
	if exec.Command("ip", "-n", b, "link", "show", "tunl0").Run() == nil {
		t.Log("ipip module loaded: no protocol unreachable to check")
		return
	}
	u := expect(t, icmp, "protocol unreachable", func(p Packet) bool { return p.ICMP != nil && p.ICMP.Type == ICMPUnreachable })
	eq(t, "unreachable", u.String(), "eth0 Out IP 10.124.3.2 > 10.124.3.1: ICMP 10.124.3.2 protocol 4 unreachable, length 112")
}

// A TUN device carries bare IP packets, which is what the userspace IPIP
// datapath will use: the capture must decode them and its filters must work
// without an Ethernet header.
func TestCaptureTUN(t *testing.T) {
	l := newLab(t)
	ns := l.ns("tun")
	var tunFD int
	if err := netns.Do(nsPath(ns), func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq("tun0")
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return err
		}
		tunFD = fd
		return nil
	}); err != nil {
		if os.Getenv("LABCTL_REQUIRE_ROOT") == "1" {
			t.Fatalf("no tun device: %v", err)
		}
		t.Skipf("no tun device: %v", err)
	}
	t.Cleanup(func() { unix.Close(tunFD) }) // removes tun0; runs before the namespace goes
	nstest.IP(t, "-n", ns, "addr", "add", "10.124.4.1/24", "dev", "tun0")
	nstest.IP(t, "-n", ns, "link", "set", "tun0", "up")

	c := open(t, ns, "tun0", Options{Filter: Match{Protocol: layers.IPProtocolUDP, Port: 9}.MustProgram()})
	sendUDP(t, ns, "10.124.4.2", 10, []byte("no")) // filtered out
	sendUDP(t, ns, "10.124.4.2", 9, []byte("hello"))
	out, err := c.Next(timeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^tun0 Out IP 10\.124\.4\.1\.\d+ > 10\.124\.4\.2\.9: UDP, length 5$`).MatchString(out.String()) {
		t.Errorf("outgoing: %s", out)
	}
	eq(t, "link", out.LinkType, layers.LinkTypeRaw)
	eq(t, "eth", out.Eth, (*Ethernet)(nil))

	// What a datapath writes into the device arrives as incoming.
	in := serialize(t, ipv4("10.124.4.2", "10.124.4.1", layers.IPProtocolUDP), udp(9, 40000), payload(3))
	if _, err := unix.Write(tunFD, in); err != nil {
		t.Fatal(err)
	}
	p := expect(t, c, "packet written to tun0", func(p Packet) bool { return !p.Type.Outgoing() })
	eq(t, "incoming", p.String(), "tun0 In IP 10.124.4.2.9 > 10.124.4.1.40000: UDP, length 3")
}

// Kernel filters decide which packets are queued at all: the first packet a
// filtered capture returns must be the first one that matches.
func TestCaptureFilters(t *testing.T) {
	l := newLab(t)
	a, b := l.ns("a"), l.ns("b")
	l.veth(a, "eth0", "10.124.5.1/24", b, "eth0", "10.124.5.2/24")
	l.veth(a, "eth1", "10.124.6.1/24", b, "eth1", "10.124.6.2/24")

	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"udp port", Options{Filter: Match{Protocol: layers.IPProtocolUDP, Port: 7777}.MustProgram()},
			`^eth0 In IP 10\.124\.5\.1\.\d+ > 10\.124\.5\.2\.7777: UDP, length 4$`},
		{"any port", Options{Filter: Match{Port: 7777}.MustProgram()},
			`^eth0 In IP 10\.124\.5\.1\.\d+ > 10\.124\.5\.2\.7777: UDP, length 4$`},
		{"protocol", Options{Filter: Match{Protocol: layers.IPProtocolICMPv4}.MustProgram()},
			`^eth0 In IP 10\.124\.5\.1 > 10\.124\.5\.2: ICMP echo request, id 5, seq 1, length 64$`},
		{"host", Options{Filter: Match{Host: netip.MustParseAddr("10.124.6.1")}.MustProgram()},
			`^eth1 In IP 10\.124\.6\.1\.\d+ > 10\.124\.6\.2\.7000: UDP, length 4$`},
		{"incoming icmp", Options{Direction: In, Filter: Match{Protocol: layers.IPProtocolICMPv4}.MustProgram()},
			`^eth0 In IP 10\.124\.5\.1 > 10\.124\.5\.2: ICMP echo request`},
		{"outgoing icmp", Options{Direction: Out, Filter: Match{Protocol: layers.IPProtocolICMPv4}.MustProgram()},
			`^eth0 Out IP 10\.124\.5\.2 > 10\.124\.5\.1: ICMP echo reply`},
		{"outgoing", Options{Direction: Out},
			`^eth\d Out `},
	}
	var caps []*Capture
	for _, tc := range cases {
		caps = append(caps, open(t, b, "", tc.opts))
	}
	// Traffic in an order where each filter has something to refuse first.
	// The echo goes first so the port unreachable answers to the closed
	// UDP ports come after its request and reply.
	sendEcho(t, a, "10.124.5.2", 5, 1)
	sendUDP(t, a, "10.124.5.2", 7778, []byte("miss"))
	sendUDP(t, a, "10.124.5.2", 7777, []byte("good"))
	sendUDP(t, a, "10.124.6.2", 7000, []byte("good"))

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := caps[i].Next(timeout(t, 5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(tc.want).MatchString(p.String()) {
				t.Errorf("first packet %q, want %s", p.String(), tc.want)
			}
		})
	}
}

func TestCaptureLifecycle(t *testing.T) {
	l := newLab(t)
	a, b := l.ns("a"), l.ns("b")
	l.veth(a, "eth0", "10.124.7.1/24", b, "eth0", "10.124.7.2/24")
	quiet := Options{Filter: Match{Protocol: layers.IPProtocolUDP, Port: 9}.MustProgram()}

	t.Run("deadline then packet", func(t *testing.T) {
		c := open(t, b, "eth0", quiet)
		_, err := c.Next(timeout(t, 50*time.Millisecond))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want deadline exceeded", err)
		}
		// The past deadline that woke the read must not stick.
		sendUDP(t, a, "10.124.7.2", 9, []byte("x"))
		if _, err := c.Next(timeout(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		c := open(t, b, "eth0", quiet)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, err := c.Next(ctx); errc <- err }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Next ignored the cancellation")
		}
	})

	t.Run("close wakes readers", func(t *testing.T) {
		c, err := Open(nsPath(b), "eth0", quiet)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 2)
		go func() { _, err := c.Next(context.Background()); errc <- err }()
		ch := c.Packets(context.Background())
		time.Sleep(20 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errc:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("got %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake Next")
		}
		if _, ok := <-ch; ok {
			t.Error("Packets channel delivered after Close")
		}
		if c.Err() != nil {
			t.Errorf("Err after Close: %v", c.Err())
		}
		if _, err := c.Next(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("Next after Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})

	t.Run("packets channel", func(t *testing.T) {
		c := open(t, b, "eth0", quiet)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch := c.Packets(ctx)
		for i := range 3 {
			sendUDP(t, a, "10.124.7.2", 9, []byte(strconv.Itoa(i)))
		}
		for i := range 3 {
			select {
			case p := <-ch:
				if p.UDP == nil || p.UDP.Length != 9 {
					t.Errorf("packet %d: %s", i, p)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("packet %d did not come", i)
			}
		}
		// A consumer that stops reading must not strand the goroutine:
		// this one is blocked handing over a packet when ctx ends.
		sendUDP(t, a, "10.124.7.2", 9, []byte("z"))
		time.Sleep(50 * time.Millisecond)
		cancel()
		for range ch {
		}
	})
}

func TestOpenErrors(t *testing.T) {
	l := newLab(t)
	ns := l.ns("x")
	_, err := Open(nsPath(ns), "nope0", Options{})
	want := `capture on "nope0" in "` + nsPath(ns) + `": find interface: no such device`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	missing := filepath.Join(netns.Dir, nsPrefix+"missing")
	_, err = Open(missing, "", Options{})
	if err == nil || !strings.HasPrefix(err.Error(), `capture on all interfaces in "`+missing+`": open namespace`) {
		t.Errorf("missing namespace: %v", err)
	}
	_, err = Open(nsPath(ns), "a-name-longer-than-ifnamsiz", Options{})
	if err == nil || !strings.Contains(err.Error(), "interface name") {
		t.Errorf("long name: %v", err)
	}
}

// The plain socket, kept to measure the ring against, reads the same
// packets the same way.
func TestCapturePlainSocket(t *testing.T) {
	l := newLab(t)
	a, b := l.ns("a"), l.ns("b")
	l.veth(a, "eth0", "10.124.9.1/24", b, "eth0", "10.124.9.2/24")
	plain := open(t, b, "eth0", Options{PlainSocket: true, Label: "b", Expr: MustParseExpr("icmp")})
	ring := open(t, b, "eth0", Options{Label: "b", Expr: MustParseExpr("icmp")})
	sendEcho(t, a, "10.124.9.2", 9, 1)
	for _, c := range []*Capture{plain, ring} {
		req := expect(t, c, "echo request", isEcho(ICMPEchoRequest, 9))
		reply := expect(t, c, "echo reply", isEcho(ICMPEchoReply, 9))
		eq(t, "request", req.String(), "b:eth0 In IP 10.124.9.1 > 10.124.9.2: ICMP echo request, id 9, seq 1, length 64")
		eq(t, "reply", reply.String(), "b:eth0 Out IP 10.124.9.2 > 10.124.9.1: ICMP echo reply, id 9, seq 1, length 64")
		eq(t, "where", c.Where(), "b:eth0")
		eq(t, "link", c.LinkType(), layers.LinkTypeEthernet)
		st, err := c.Stats()
		if err != nil || st.Received != 2 || st.Dropped != 0 {
			t.Errorf("stats %+v, %v", st, err)
		}
	}
}
