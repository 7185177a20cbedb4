package capture

import (
	"bytes"
	"errors"
	"io"
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
