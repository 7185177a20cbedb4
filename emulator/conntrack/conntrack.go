// Package conntrack lists a network namespace's connection tracking table
// over netlink, the way `conntrack -L` prints it, so that NAT can be seen:
// a flow's original tuple is the packet as its sender wrote it, the reply
// tuple is what the answer must look like, and where the two are not
// mirror images, the kernel rewrote addresses.
package conntrack

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
)

// Tuple is one direction of a flow: addresses and ports, or for ICMP the
// message type, code and echo id the kernel tracks it by.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	ICMPType         uint8
	ICMPCode         uint8
	ICMPID           uint16
}

// Flow is one conntrack entry.
type Flow struct {
	Protocol string // "tcp", "udp", "icmp", or the protocol number
	// State is a TCP flow's state ("ESTABLISHED", "TIME_WAIT", ...);
	// empty for other protocols.
	State     string
	Timeout   time.Duration // until the entry expires
	Original  Tuple         // the first packet, as its sender wrote it
	Reply     Tuple         // the answer, as it must arrive to be this flow's
	SeenReply bool          // an answer has passed ("UNREPLIED" until then)
	Assured   bool          // seen both ways enough to be kept under pressure
	Mark      uint32
	Zone      uint16
	Use       uint32 // references to the entry, as conntrack -L shows
}

// DestinationNAT reports whether the flow's destination was rewritten: the
// answer comes from somewhere the sender did not write to.
func (f Flow) DestinationNAT() bool {
	return f.Reply.Src != f.Original.Dst || f.Reply.SrcPort != f.Original.DstPort
}

// SourceNAT reports whether the flow's source was rewritten: the answer
// goes to somewhere other than the sender (the address it was masqueraded to).
func (f Flow) SourceNAT() bool {
	return f.Reply.Dst != f.Original.Src || f.Reply.DstPort != f.Original.SrcPort
}

// String renders the flow as `conntrack -L` does.
func (f Flow) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %d %d ", f.Protocol, protoNumber(f.Protocol), int64(f.Timeout/time.Second))
	if f.State != "" {
		b.WriteString(f.State + " ")
	}
	b.WriteString(f.tuple(f.Original))
	if !f.SeenReply {
		b.WriteString(" [UNREPLIED]")
	}
	b.WriteString(" " + f.tuple(f.Reply))
	if f.Assured {
		b.WriteString(" [ASSURED]")
	}
	fmt.Fprintf(&b, " mark=%d", f.Mark)
	if f.Zone != 0 {
		fmt.Fprintf(&b, " zone=%d", f.Zone)
	}
	fmt.Fprintf(&b, " use=%d", f.Use)
	return b.String()
}

func (f Flow) tuple(t Tuple) string {
	s := fmt.Sprintf("src=%s dst=%s", t.Src, t.Dst)
	if f.Protocol == "icmp" || f.Protocol == "icmpv6" {
		return s + fmt.Sprintf(" type=%d code=%d id=%d", t.ICMPType, t.ICMPCode, t.ICMPID)
	}
	return s + fmt.Sprintf(" sport=%d dport=%d", t.SrcPort, t.DstPort)
}

var protocols = map[uint8]string{1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}

func protoNumber(name string) int {
	for n, p := range protocols {
		if p == name {
			return int(n)
		}
	}
	var n int
	fmt.Sscanf(name, "%d", &n)
	return n
}

// tcpStates are the kernel's names for enum tcp_conntrack.
var tcpStates = []string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
	"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}

// List returns the conntrack entries of the network namespace at nsPath,
// IPv4 and IPv6, sorted by protocol, then original source and destination.
func List(nsPath string) ([]Flow, error) {
	f, err := os.Open(nsPath)
	if err != nil {
		return nil, fmt.Errorf("list conntrack: open namespace: %w", err)
	}
	defer f.Close()
	if f.Fd() == 0 {
		// The netlink library takes descriptor 0 for "this namespace".
		return nil, errors.New("list conntrack: namespace opened as descriptor 0")
	}
	c, err := ct.Dial(&netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		return nil, fmt.Errorf("list conntrack in %s: %w", nsPath, err)
	}
	defer c.Close()
	raw, err := c.Dump(nil)
	if err != nil {
		return nil, fmt.Errorf("list conntrack in %s: %w", nsPath, err)
	}
	out := make([]Flow, 0, len(raw))
	for _, r := range raw {
		out = append(out, flowOf(r))
	}
	slices.SortFunc(out, func(a, b Flow) int {
		if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
			return c
		}
		if c := a.Original.Src.Compare(b.Original.Src); c != 0 {
			return c
		}
		if c := a.Original.Dst.Compare(b.Original.Dst); c != 0 {
			return c
		}
		if a.Original.SrcPort != b.Original.SrcPort {
			return int(a.Original.SrcPort) - int(b.Original.SrcPort)
		}
		return int(a.Original.DstPort) - int(b.Original.DstPort)
	})
	return out, nil
}

func flowOf(r ct.Flow) Flow {
	proto := r.TupleOrig.Proto.Protocol
	f := Flow{
		Protocol:  protocols[proto],
		Timeout:   time.Duration(r.Timeout) * time.Second,
		Original:  tupleOf(r.TupleOrig),
		Reply:     tupleOf(r.TupleReply),
		SeenReply: r.Status.SeenReply(),
		Assured:   r.Status.Assured(),
		Mark:      r.Mark,
		Zone:      r.Zone,
		Use:       r.Use,
	}
	if f.Protocol == "" {
		f.Protocol = fmt.Sprint(proto)
	}
	if tcp := r.ProtoInfo.TCP; tcp != nil && proto == 6 && int(tcp.State) < len(tcpStates) {
		f.State = tcpStates[tcp.State]
	}
	return f
}

func tupleOf(t ct.Tuple) Tuple {
	return Tuple{Src: t.IP.SourceAddress, Dst: t.IP.DestinationAddress,
		SrcPort: t.Proto.SourcePort, DstPort: t.Proto.DestinationPort,
		ICMPType: t.Proto.ICMPType, ICMPCode: t.Proto.ICMPCode, ICMPID: t.Proto.ICMPID}
}
