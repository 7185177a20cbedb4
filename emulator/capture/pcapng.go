package capture

import (
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// PcapngWriter records packets as a pcapng file, the format Wireshark opens
// with interface names, per-interface link types and packet directions.
// Packets from several interfaces and namespaces can go into one file: each
// (namespace, interface) pair becomes one pcapng interface, named after the
// interface and described by its namespace. It is safe for concurrent use.
type PcapngWriter struct {
	mu     sync.Mutex
	w      io.Writer
	ng     *pcapgo.NgWriter // created with the first packet's interface
	ifaces map[ifaceKey]int // -> pcapng interface id
	err    error            // first write error; the file is unusable after it
}

type ifaceKey struct {
	ns       string
	ifindex  int
	name     string
	linkType layers.LinkType
}

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
	id, err := pw.iface(p)
	if err == nil {
		ci := gopacket.CaptureInfo{
			Timestamp:      p.Time,
			CaptureLength:  len(p.Data),
			Length:         max(p.Length, len(p.Data)),
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
		err = pw.ng.WritePacketWithOptions(ci, p.Data, pcapgo.NgPacketOptions{Flags: flags})
	}
	if err != nil {
		pw.err = fmt.Errorf("write pcapng: %w", err)
	}
	return pw.err
}

// iface returns the pcapng interface id for the packet's interface,
// describing the interface first if it is new.
func (pw *PcapngWriter) iface(p Packet) (int, error) {
	link := p.LinkType
	if link == 0 {
		link = layers.LinkTypeEthernet // LinkTypeNull would tell Wireshark "BSD loopback"
	}
	key := ifaceKey{ns: p.Namespace, ifindex: p.Ifindex, name: p.Interface, linkType: link}
	if id, ok := pw.ifaces[key]; ok {
		return id, nil
	}
	intf := pcapgo.NgInterface{
		Name:                p.Interface,
		LinkType:            link,
		OS:                  runtime.GOOS,
		TimestampResolution: 9,
	}
	if intf.Name == "" {
		intf.Name = "unknown"
	}
	if p.Namespace != "" {
		intf.Description = fmt.Sprintf("%s in network namespace %s", intf.Name, filepath.Base(p.Namespace))
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
