package trace

import (
	"encoding/binary"
	"hash/fnv"
	"net/netip"

	"github.com/gopacket/gopacket/layers"

	"github.com/labctl/labctl/emulator/capture"
)

// obs is one captured packet, with what matching needs of it.
type obs struct {
	idx   int // in the recording, which is in time order
	pkt   capture.Packet
	place Place
	// levels are the packet's headers, outermost first; inner is the
	// deepest one with an IPv4 header, at depth (0: not tunnelled).
	levels []*capture.Headers
	inner  *capture.Headers
	depth  int
	// sig identifies the packet whatever NAT, tunnels and routers did to
	// it on the way (see signature); ok is false for packets it cannot
	// identify (not IPv4, later fragments).
	sig uint64
	ok  bool
	// echo identifies an ICMP echo by its sequence number and data, so
	// that a reply matches its request.
	echo uint64
}

func newObs(idx int, p capture.Packet, place Place) *obs {
	o := &obs{idx: idx, pkt: p, place: place}
	for h := &p.Headers; h != nil; h = h.Inner {
		o.levels = append(o.levels, h)
		if h.IPv4 != nil {
			o.inner, o.depth = h, len(o.levels)-1
		}
	}
	if o.inner == nil || p.Decoded == nil {
		return o
	}
	var ip *layers.IPv4
	for _, l := range p.Decoded.Layers() {
		if v, ok := l.(*layers.IPv4); ok {
			ip = v // the last one is the innermost: ICMP errors quote as payload
		}
	}
	if ip != nil {
		o.sig, o.echo, o.ok = signature(ip)
	}
	return o
}

// outer returns the level around the packet, nil when it is not tunnelled.
func (o *obs) outer() *capture.Headers {
	if o.depth == 0 {
		return nil
	}
	return o.levels[o.depth-1]
}

// hashedData is how much of a payload identifies a packet: enough for
// ping's random data or a probe's, and safe from the snapshot length.
const hashedData = 64

// signature hashes what no router, tunnel or NAT on the way changes: the IP
// identification and protocol, and the transport header without ports and
// checksum (TCP sequence and acknowledgement numbers and flags, UDP
// length, ICMP type, code and sequence), and the start of the payload.
// Addresses, ports, TTL, checksums and the ICMP echo identifier are left
// out: those are what NAT and routing rewrite. So are the IP length and
// fragment flags, so that a first fragment still matches its packet; later
// fragments carry no transport header and are not matched.
func signature(ip *layers.IPv4) (sig, echo uint64, ok bool) {
	if ip.FragOffset != 0 {
		return 0, 0, false
	}
	h := fnv.New64a()
	var b2 [2]byte
	binary.BigEndian.PutUint16(b2[:], ip.Id)
	h.Write(b2[:])
	h.Write([]byte{byte(ip.Protocol)})
	b := ip.Payload
	switch ip.Protocol {
	case layers.IPProtocolTCP:
		if len(b) < 20 {
			return 0, 0, false
		}
		h.Write(b[4:14]) // sequence, acknowledgement, data offset, flags
		if off := int(b[12]>>4) * 4; off >= 20 && off <= len(b) {
			h.Write(clip(b[off:]))
		}
	case layers.IPProtocolUDP:
		if len(b) < 8 {
			return 0, 0, false
		}
		h.Write(b[4:6])
		h.Write(clip(b[8:]))
	case layers.IPProtocolICMPv4:
		if len(b) < 8 {
			return 0, 0, false
		}
		h.Write(b[0:2])
		switch b[0] {
		case capture.ICMPEchoRequest, capture.ICMPEchoReply:
			h.Write(b[6:8])
			h.Write(clip(b[8:]))
			e := fnv.New64a()
			e.Write(b[6:8])
			e.Write(clip(b[8:]))
			echo = e.Sum64()
		default:
			h.Write(b[4:8]) // the next-hop MTU of "fragmentation needed"
			h.Write(quotedIdentity(b[8:]))
		}
	default:
		h.Write(clip(b))
	}
	return h.Sum64(), echo, true
}

// quotedIdentity is what NAT leaves alone of the packet an ICMP error
// quotes: conntrack rewrites the quoted addresses and ports as it
// rewrites the error itself.
func quotedIdentity(q []byte) []byte {
	if len(q) < 20 || q[0]>>4 != 4 {
		return nil
	}
	out := []byte{q[4], q[5], q[9]} // identification, protocol
	ihl := int(q[0]&0x0f) * 4
	if ihl < 20 || len(q) < ihl {
		return out
	}
	l4 := q[ihl:]
	switch layers.IPProtocol(q[9]) {
	case layers.IPProtocolTCP:
		if len(l4) >= 8 {
			out = append(out, l4[4:8]...) // sequence
		}
	case layers.IPProtocolICMPv4:
		if len(l4) >= 8 {
			out = append(out, l4[0], l4[1], l4[6], l4[7]) // type, code, sequence
		}
	}
	return out
}

func clip(b []byte) []byte { return b[:min(len(b), hashedData)] }

// tuple is a packet's addresses and ports (the ICMP echo identifier for
// pings): what NAT rewrites.
type tuple struct {
	proto            layers.IPProtocol
	src, dst         netip.Addr
	srcPort, dstPort uint16
}

func (o *obs) tuple() tuple {
	h := o.inner
	t := tuple{proto: h.IPv4.Protocol, src: h.IPv4.Src, dst: h.IPv4.Dst}
	switch {
	case h.TCP != nil:
		t.srcPort, t.dstPort = h.TCP.SrcPort, h.TCP.DstPort
	case h.UDP != nil:
		t.srcPort, t.dstPort = h.UDP.SrcPort, h.UDP.DstPort
	case h.ICMP != nil && (h.ICMP.Type == capture.ICMPEchoRequest || h.ICMP.Type == capture.ICMPEchoReply):
		t.srcPort, t.dstPort = h.ICMP.ID, h.ICMP.ID
	}
	return t
}

func (t tuple) reversed() tuple {
	return tuple{proto: t.proto, src: t.dst, dst: t.src, srcPort: t.dstPort, dstPort: t.srcPort}
}

// quotes says whether an ICMP error quotes a packet with this tuple.
func quotes(q *capture.Quoted, t tuple) bool {
	if q == nil || q.Src != t.src || q.Dst != t.dst || q.Protocol != t.proto {
		return false
	}
	if t.proto == layers.IPProtocolTCP || t.proto == layers.IPProtocolUDP {
		return q.SrcPort == t.srcPort && q.DstPort == t.dstPort
	}
	return true
}

// isError says whether an ICMP message reports a failure (the kinds a
// router or host sends back about a packet; redirects are advice).
func isError(icmp *capture.ICMP) bool {
	if icmp == nil {
		return false
	}
	switch icmp.Type {
	case capture.ICMPUnreachable, capture.ICMPTimeExceeded, capture.ICMPParamProblem:
		return true
	}
	return false
}
