package capture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// recorded is one packet read back from a pcapng file.
type recorded struct {
	data  []byte
	ci    gopacket.CaptureInfo
	flags *pcapgo.NgEpbFlags
	intf  pcapgo.NgInterface
}

// readPcapng reads a whole pcapng file back with pcapgo's reader, which
// checks the block structure as Wireshark does.
func readPcapng(t *testing.T, b []byte) []recorded {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		t.Fatalf("read pcapng: %v", err)
	}
	var out []recorded
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read pcapng packet %d: %v", len(out), err)
		}
		intf, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatalf("packet %d: %v", len(out), err)
		}
		out = append(out, recorded{data: data, ci: ci, flags: opts.Flags, intf: intf})
	}
}

func TestPcapngRoundTrip(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)
	mk := func(ns, ifname string, ifindex int, typ PacketType, link layers.LinkType, data []byte, at time.Duration) Packet {
		p := Decode(data, link)
		p.Namespace, p.Interface, p.Ifindex, p.Type, p.Time = ns, ifname, ifindex, typ, t0.Add(at)
		return p
	}
	vx := vxlanFrame(t, 8472, 42)
	raw := serialize(t, ipv4("10.124.4.1", "10.124.4.2", layers.IPProtocolUDP), udp(40000, 9), payload(5))
	packets := []Packet{
		mk("/run/netns/node1", "eth0", 2, PacketOutgoing, layers.LinkTypeEthernet, vx, 0),
		mk("/run/netns/node2", "eth0", 2, PacketHost, layers.LinkTypeEthernet, vx, time.Microsecond),
		mk("/run/netns/node2", "tun0", 5, PacketOutgoing, layers.LinkTypeRaw, raw, 2*time.Microsecond),
		mk("/run/netns/node1", "eth0", 2, PacketBroadcast, layers.LinkTypeEthernet, vx, 3*time.Microsecond),
	}
	packets[3].Length = len(vx) + 100 // as if the snaplen had cut it

	var buf bytes.Buffer
	if err := WritePcapng(&buf, packets...); err != nil {
		t.Fatal(err)
	}
	got := readPcapng(t, buf.Bytes())
	if len(got) != len(packets) {
		t.Fatalf("read %d packets, wrote %d", len(got), len(packets))
	}
	wantIntf := []struct {
		name, desc string
		link       layers.LinkType
	}{
		{"eth0", "eth0 in network namespace node1", layers.LinkTypeEthernet},
		{"eth0", "eth0 in network namespace node2", layers.LinkTypeEthernet},
		{"tun0", "tun0 in network namespace node2", layers.LinkTypeRaw},
		{"eth0", "eth0 in network namespace node1", layers.LinkTypeEthernet},
	}
	wantDir := []pcapgo.NgEpbFlag{pcapgo.NgEpbFlagDirectionOutbound, pcapgo.NgEpbFlagDirectionInbound,
		pcapgo.NgEpbFlagDirectionOutbound, pcapgo.NgEpbFlagDirectionInbound}
	for i, r := range got {
		p := packets[i]
		if !bytes.Equal(r.data, p.Data) {
			t.Errorf("packet %d: data differs", i)
		}
		if !r.ci.Timestamp.Equal(p.Time) {
			t.Errorf("packet %d: time %v, want %v", i, r.ci.Timestamp, p.Time)
		}
		if r.ci.Length != p.Length || r.ci.CaptureLength != len(p.Data) {
			t.Errorf("packet %d: length %d/%d, want %d/%d", i, r.ci.CaptureLength, r.ci.Length, len(p.Data), p.Length)
		}
		w := wantIntf[i]
		if r.intf.Name != w.name || r.intf.Description != w.desc || r.intf.LinkType != w.link {
			t.Errorf("packet %d: interface %q (%q, %v), want %q (%q, %v)", i,
				r.intf.Name, r.intf.Description, r.intf.LinkType, w.name, w.desc, w.link)
		}
		if r.flags == nil || r.flags.Direction != wantDir[i] {
			t.Errorf("packet %d: flags %+v, want direction %v", i, r.flags, wantDir[i])
		}
		// What Wireshark would show decodes the same as what was captured.
		back := Decode(r.data, r.intf.LinkType)
		if back.Headers.String() != p.Headers.String() {
			t.Errorf("packet %d reads back as %s, want %s", i, back.Headers.String(), p.Headers.String())
		}
	}
	if got[0].ci.InterfaceIndex != got[3].ci.InterfaceIndex {
		t.Error("one interface was described twice")
	}
}

func TestPcapngEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := NewPcapngWriter(&buf).Flush(); err != nil {
		t.Fatal(err)
	}
	if got := readPcapng(t, buf.Bytes()); len(got) != 0 {
		t.Fatalf("read %d packets from an empty recording", len(got))
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPcapngWriteError(t *testing.T) {
	pw := NewPcapngWriter(failWriter{})
	p := Decode(vxlanFrame(t, 8472, 1), layers.LinkTypeEthernet)
	// pcapgo buffers, so the error may show at the first write or at Flush,
	// and then sticks.
	err := pw.WritePacket(p)
	if err == nil {
		err = pw.Flush()
	}
	if err == nil || err.Error() != "write pcapng: disk full" {
		t.Fatalf("got %v, want write pcapng: disk full", err)
	}
	if err := pw.WritePacket(p); err == nil {
		t.Error("a write after a failure succeeded")
	}
}

// toolPackets is a lab's worth of packets from three namespaces: VXLAN on
// a node's cable, the decapsulated echo in the pod, and IPIP on a bare-IP
// tunl0 (a TUN device, as the userspace IPIP datapath makes).
func toolPackets(t *testing.T) []Packet {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	mk := func(label, ns, ifname string, typ PacketType, link layers.LinkType, data []byte, at time.Duration) Packet {
		p := Decode(data, link)
		p.Label, p.Namespace, p.Interface, p.Type, p.Time = label, ns, ifname, typ, t0.Add(at)
		return p
	}
	podEcho := serialize(t, ethernet(macC, macD, layers.EthernetTypeIPv4),
		ipv4("192.168.1.10", "192.168.2.20", layers.IPProtocolICMPv4), echo(ICMPEchoRequest, 1, 1), payload(56))
	ipip := serialize(t, ipv4("10.30.45.100", "10.30.45.200", layers.IPProtocolIPv4),
		ipv4("192.168.1.10", "192.168.3.30", layers.IPProtocolICMPv4), echo(ICMPEchoRequest, 2, 1), payload(56))
	return []Packet{
		mk("node1", "/run/netns/lab-node1", "eth0", PacketOutgoing, layers.LinkTypeEthernet, vxlanFrame(t, 4789, 1), 0),
		mk("pod2", "/run/netns/lab-pod2", "eth0", PacketHost, layers.LinkTypeEthernet, podEcho, time.Millisecond),
		mk("node1", "/run/netns/lab-node1", "tunl0", PacketOutgoing, layers.LinkTypeRaw, ipip, 2*time.Millisecond),
	}
}

func writeFile(t *testing.T, fake bool, packets []Packet) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lab.pcapng")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	pw := NewPcapngWriter(f)
	pw.FakeEthernet = fake
	for _, p := range packets {
		if err := pw.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// The tools people open recordings with read ours: tshark with the
// interface names and the packets inside the tunnels, capinfos, and
// tcpdump, which needs one link type for the whole file.
func TestPcapngReadByTools(t *testing.T) {
	tshark := needTool(t, "tshark", "tshark")
	tcpdump := needTool(t, "tcpdump", "tcpdump")
	capinfos := needTool(t, "capinfos", "wireshark-common")
	path := writeFile(t, true, toolPackets(t))

	out := runTool(t, tshark, "-r", path, "-T", "fields", "-E", "separator=|",
		"-e", "frame.interface_name", "-e", "frame.interface_description", "-e", "frame.p2p_dir", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type")
	want := strings.Join([]string{
		"node1:eth0|eth0 in network namespace lab-node1 (node1)|0|10.30.45.100,192.168.1.10|10.30.45.200,192.168.2.20|8",
		"pod2:eth0|eth0 in network namespace lab-pod2 (pod2)|1|192.168.1.10|192.168.2.20|8",
		"node1:tunl0|tunl0 in network namespace lab-node1 (node1); " + FakeEthernetNote + "|0|10.30.45.100,192.168.1.10|10.30.45.200,192.168.3.30|8",
	}, "\n")
	if strings.TrimSpace(out) != want {
		t.Errorf("tshark read:\n%s\nwant:\n%s", out, want)
	}

	out = runTool(t, tcpdump, "-r", path, "-n", "-tt")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 || !strings.Contains(out, "VXLAN, flags [I] (0x08), vni 1") ||
		!strings.Contains(out, "IP 192.168.1.10 > 192.168.2.20: ICMP echo request, id 1, seq 1, length 64") ||
		!strings.Contains(out, "IP 10.30.45.100 > 10.30.45.200: IP 192.168.1.10 > 192.168.3.30: ICMP echo request, id 2, seq 1, length 64") {
		t.Errorf("tcpdump read:\n%s", out)
	}

	out = runTool(t, capinfos, "-M", path)
	for _, w := range []string{"Number of packets:   3", "Number of interfaces in file: 3", "File encapsulation:  ether"} {
		if !strings.Contains(out, w) {
			t.Errorf("capinfos does not say %q:\n%s", w, out)
		}
	}

	// Without the made-up header the file has two link types, which
	// Wireshark reads and tcpdump refuses: the reason for FakeEthernet.
	mixed := writeFile(t, false, toolPackets(t))
	runTool(t, tshark, "-r", mixed)
	if out, err := exec.Command(tcpdump, "-r", mixed, "-n").CombinedOutput(); err == nil || !strings.Contains(string(out), "different from the type of the first interface") {
		t.Errorf("tcpdump read a file with two link types (%v):\n%s", err, out)
	}
}

func runTool(t *testing.T, tool string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", filepath.Base(tool), strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
