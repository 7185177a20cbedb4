package capture_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/netns"
)

// Prove that pod traffic between two nodes crosses the underlay inside
// VXLAN, and keep the evidence for Wireshark.
func ExampleCapture_Expect() {
	f, err := os.Create("underlay.pcapng")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	rec := capture.NewPcapngWriter(f)
	defer rec.Flush()

	c, err := capture.Open(netns.Path("node2"), "eth0", capture.Options{
		Filter: capture.Match{Protocol: layers.IPProtocolUDP, Port: capture.VXLANPortLinux}.MustProgram(),
		Record: rec,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	// ... make pod1 on node1 ping pod2 on node2 ...

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := c.Expect(ctx, func(p capture.Packet) bool {
		in := p.Innermost()
		return p.VXLAN != nil && in.ICMP != nil && in.ICMP.Type == capture.ICMPEchoRequest
	})
	if err != nil {
		fmt.Println(err) // says how many packets went by, and shows the last ones
		return
	}
	fmt.Println(p) // eth0 In IP 10.30.45.100.41234 > 10.30.45.200.8472: VXLAN, flags [I] (0x08), vni 1: IP 192.168.1.10 > ...
	fmt.Println(p.VXLAN.VNI, p.Inner.IPv4.Src, p.Inner.IPv4.Dst)
}
