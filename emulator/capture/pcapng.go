package capture

import (
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// PcapngWriter records packets as a pcapng file, the format Wireshark opens
// with interface names, per-interface link types and packet directions.
// Packets from several interfaces and namespaces can go into one file: each
// (namespace, interface) pair becomes one pcapng interface, named where it
// was seen ("node1:eth0", or "eth0" without a label) and described by its
// namespace. It is safe for concurrent use.
type PcapngWriter struct {
	// FakeEthernet writes bare-IP interfaces (TUN devices, IPIP tunnels)
	// as Ethernet, each packet behind a made-up Ethernet header with zero
	// MAC addresses, and says so in the interface's description: tcpdump
	// reads no file whose interfaces differ in link type, and labs mix
	// veth with a userspace tunl0. Set it before the first packet.
	FakeEthernet bool

	mu     sync.Mutex
	w      io.Writer
	ng     *pcapgo.NgWriter // created with the first interface
	ifaces map[ifaceKey]int // -> pcapng interface id
	err    error            // first write error; the file is unusable after it
}

type ifaceKey struct {
	ns, label, name string
	link            layers.LinkType // as captured
}

// FakeEthernetNote is what the description of an interface written with a
// made-up Ethernet header says.
const FakeEthernetNote = "bare IP device: labctl put an Ethernet header with zero MAC addresses in front of each packet so that the file has one link type"

// NewPcapngWriter starts a recording to w. Call Flush before closing w.
func NewPcapngWriter(w io.Writer) *PcapngWriter {
	return &PcapngWriter{w: w, ifaces: map[ifaceKey]int{}}
}

// WritePcapng writes packets to w as a complete pcapng file.
func WritePcapng(w io.Writer, packets ...Packet) error {
	pw := NewPcapngWriter(w)
	for _, p := range packets {
		if err := pw.WritePacket(p); err != nil {
			return err
		}
	}
	return pw.Flush()
}

// WritePacket appends one packet.
func (pw *PcapngWriter) WritePacket(p Packet) error {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if pw.err != nil {
		return pw.err
	}
	link := p.LinkType
	if link == 0 {
		link = layers.LinkTypeEthernet // LinkTypeNull would tell Wireshark "BSD loopback"
	}
	id, err := pw.iface(ifaceKey{ns: p.Namespace, label: p.Label, name: p.Interface, link: link}, "", 0)
	if err == nil {
		data, length := p.Data, max(p.Length, len(p.Data))
		if link == layers.LinkTypeRaw && pw.FakeEthernet {
			data, length = fakeEthernet(data), length+14
		}
		ci := gopacket.CaptureInfo{
			Timestamp:      p.Time,
			CaptureLength:  len(data),
			Length:         length,
			InterfaceIndex: id,
		}
		flags := &pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionInbound}
		switch p.Type {
		case PacketOutgoing:
			flags = &pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionOutbound}
		case PacketHost:
			flags.Reception = pcapgo.NgEpbFlagReceptionTypeUnicast
		case PacketBroadcast:
			flags.Reception = pcapgo.NgEpbFlagReceptionTypeBroadcast
		case PacketMulticast:
			flags.Reception = pcapgo.NgEpbFlagReceptionTypeMulticast
		case PacketOtherHost:
			flags.Reception = pcapgo.NgEpbFlagReceptionTypePromiscuous
		}
		err = pw.ng.WritePacketWithOptions(ci, data, pcapgo.NgPacketOptions{Flags: flags})
	}
	if err != nil {
		pw.err = fmt.Errorf("write pcapng: %w", err)
	}
	return pw.err
}

// fakeEthernet puts a zero-address Ethernet header in front of a bare IP
// packet, with the EtherType its version says.
func fakeEthernet(ip []byte) []byte {
	out := make([]byte, 14, 14+len(ip))
	out[12], out[13] = 0x08, 0x00
	if len(ip) > 0 && ip[0]>>4 == 6 {
		out[12], out[13] = 0x86, 0xdd
	}
	return append(out, ip...)
}

// Declare describes a capture's interface now, before its first packet, so
// that the file lists every interface captured on, in this order, with the
// filter used, even those that saw nothing. A capture on every device of a
// namespace gets its interfaces as their packets come.
func (pw *PcapngWriter) Declare(c *Capture) error {
	if c.device == "" {
		return nil
	}
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if pw.err != nil {
		return pw.err
	}
	filter := ""
	if c.opts.Expr != nil {
		filter = c.opts.Expr.String()
	}
	if _, err := pw.iface(c.key(), filter, c.opts.Snaplen); err != nil {
		pw.err = fmt.Errorf("write pcapng: %w", err)
	}
	return pw.err
}

func (c *Capture) key() ifaceKey {
	link := c.link
	if link == 0 {
		link = layers.LinkTypeEthernet
	}
	return ifaceKey{ns: c.ns, label: c.opts.Label, name: c.device, link: link}
}

// WriteStats records a capture's counts (packets received, dropped by the
// kernel) for its interface, as Wireshark's capture file properties and
// capinfos show them. Write them once capturing has ended.
func (pw *PcapngWriter) WriteStats(c *Capture, st Stats, start, end time.Time) error {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if pw.err != nil {
		return pw.err
	}
	id, ok := pw.ifaces[c.key()]
	if !ok || c.device == "" {
		return nil // never described: no packet came, or per-packet interfaces
	}
	err := pw.ng.WriteInterfaceStats(id, pcapgo.NgInterfaceStatistics{
		LastUpdate:      end,
		StartTime:       start,
		EndTime:         end,
		PacketsReceived: st.Received,
		PacketsDropped:  st.Dropped,
	})
	if err != nil {
		pw.err = fmt.Errorf("write pcapng: %w", err)
	}
	return pw.err
}

// iface returns the pcapng interface id for an interface, describing it
// first if it is new.
func (pw *PcapngWriter) iface(key ifaceKey, filter string, snaplen int) (int, error) {
	if id, ok := pw.ifaces[key]; ok {
		return id, nil
	}
	intf := pcapgo.NgInterface{
		Name:                key.name,
		LinkType:            key.link,
		OS:                  runtime.GOOS,
		Filter:              filter,
		SnapLength:          uint32(snaplen),
		TimestampResolution: 9,
	}
	if intf.Name == "" {
		intf.Name = "unknown"
	}
	if key.label != "" {
		intf.Name = key.label + ":" + intf.Name
	}
	if key.ns != "" {
		intf.Description = fmt.Sprintf("%s in network namespace %s", key.name, filepath.Base(key.ns))
		if key.label != "" {
			intf.Description += " (" + key.label + ")"
		}
	}
	if key.link == layers.LinkTypeRaw && pw.FakeEthernet {
		intf.LinkType = layers.LinkTypeEthernet
		intf.Description = strings.TrimPrefix(intf.Description+"; "+FakeEthernetNote, "; ")
	}
	var id int
	var err error
	if pw.ng == nil {
		// pcapgo writes the section header together with a first interface.
		pw.ng, err = pcapgo.NewNgWriterInterface(pw.w, intf, ngOptions)
	} else {
		id, err = pw.ng.AddInterface(intf)
	}
	if err != nil {
		return 0, err
	}
	pw.ifaces[key] = id
	return id, nil
}

var ngOptions = pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
	Hardware:    runtime.GOARCH,
	OS:          runtime.GOOS,
	Application: "labctl",
}}

// Flush writes buffered data to the underlying writer. A recording without
// packets still becomes a valid, empty pcapng file.
func (pw *PcapngWriter) Flush() error {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if pw.err != nil {
		return pw.err
	}
	if pw.ng == nil {
		empty := pcapgo.NgInterface{Name: "none", LinkType: layers.LinkTypeEthernet, OS: runtime.GOOS, TimestampResolution: 9}
		ng, err := pcapgo.NewNgWriterInterface(pw.w, empty, ngOptions)
		if err != nil {
			pw.err = fmt.Errorf("write pcapng: %w", err)
			return pw.err
		}
		pw.ng = ng
	}
	if err := pw.ng.Flush(); err != nil {
		pw.err = fmt.Errorf("write pcapng: %w", err)
	}
	return pw.err
}
