package tui

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/gopacket/gopacket/layers"

	"github.com/labctl/labctl/emulator/capture"
)

// class is what a packet's row is coloured by: the protocols a student
// tells apart when following a packet through a pod network.
type class uint8

const (
	classOther class = iota
	classARP
	classICMP
	classICMPError // unreachable, time exceeded, redirect: something went wrong
	classTCP
	classUDP
	classVXLAN
	classIPIP
)

var classNames = [...]string{
	classOther:     "OTHER",
	classARP:       "ARP",
	classICMP:      "ICMP",
	classICMPError: "ICMP",
	classTCP:       "TCP",
	classUDP:       "UDP",
	classVXLAN:     "VXLAN",
	classIPIP:      "IPIP",
}

func (c class) String() string { return classNames[c] }

// tunnelled reports whether a level carries another packet: VXLAN, or IP
// in IP.
func tunnelled(h *capture.Headers) bool { return h.Inner != nil }

// classify names one level of a packet by its highest known protocol.
func classify(h *capture.Headers) class {
	switch {
	case h.VXLAN != nil:
		return classVXLAN
	case h.Inner != nil && (h.IPv4 != nil || h.IPv6 != nil):
		return classIPIP
	case h.ARP != nil:
		return classARP
	case h.ICMP != nil:
		switch h.ICMP.Type {
		case capture.ICMPUnreachable, capture.ICMPTimeExceeded, capture.ICMPRedirect, capture.ICMPParamProblem:
			return classICMPError
		}
		return classICMP
	case h.ICMPv6 != nil:
		if h.ICMPv6.Type < 128 {
			return classICMPError
		}
		return classICMP
	case h.TCP != nil:
		return classTCP
	case h.UDP != nil:
		return classUDP
	}
	return classOther
}

// protoLabel is the PROTO column: the protocol, and for a tunnel what it
// carries ("VXLAN/ICMP").
func protoLabel(h *capture.Headers) string {
	c := classify(h)
	if tunnelled(h) {
		return c.String() + "/" + classify(h.Innermost()).String()
	}
	return c.String()
}

// summary is a packet's INFO column: addresses and what the packet says,
// shorter than tcpdump's line because PROTO already names the protocol.
// A tunnelled packet shows what it carries first, then the outer addresses.
func summary(h *capture.Headers) string {
	if tunnelled(h) {
		in := h.Innermost()
		outer := fmt.Sprintf("%s > %s", src(h), dst(h))
		if h.VXLAN != nil {
			outer += fmt.Sprintf(" vni %d", h.VXLAN.VNI)
		}
		return levelSummary(in) + "  ‹" + outer + "›"
	}
	return levelSummary(h)
}

func src(h *capture.Headers) netip.Addr {
	if h.IPv4 != nil {
		return h.IPv4.Src
	}
	if h.IPv6 != nil {
		return h.IPv6.Src
	}
	return netip.Addr{}
}

func dst(h *capture.Headers) netip.Addr {
	if h.IPv4 != nil {
		return h.IPv4.Dst
	}
	if h.IPv6 != nil {
		return h.IPv6.Dst
	}
	return netip.Addr{}
}

func ttl(h *capture.Headers) int {
	if h.IPv4 != nil {
		return int(h.IPv4.TTL)
	}
	if h.IPv6 != nil {
		return int(h.IPv6.HopLimit)
	}
	return -1
}

// levelSummary describes one level that carries nothing further.
func levelSummary(h *capture.Headers) string {
	switch {
	case h.ARP != nil:
		a := h.ARP
		switch a.Op {
		case capture.ARPRequest:
			return fmt.Sprintf("who-has %s tell %s", a.TargetIP, a.SenderIP)
		case capture.ARPReply:
			return fmt.Sprintf("%s is-at %s", a.SenderIP, a.SenderMAC)
		}
		return fmt.Sprintf("op %d", a.Op)
	case h.IPv4 != nil && h.IPv4.FragOff != 0:
		return fmt.Sprintf("%s > %s fragment id %d offset %d", src(h), dst(h), h.IPv4.ID, h.IPv4.FragOff)
	case h.ICMP != nil || h.ICMPv6 != nil:
		return fmt.Sprintf("%s > %s %s ttl %d", src(h), dst(h), icmpWords(h), ttl(h))
	case h.TCP != nil:
		t := h.TCP
		return fmt.Sprintf("%s.%d > %s.%d [%s] seq %d len %d ttl %d", src(h), t.SrcPort, dst(h), t.DstPort, t.Flags, t.Seq, t.PayloadLen, ttl(h))
	case h.UDP != nil:
		u := h.UDP
		return fmt.Sprintf("%s.%d > %s.%d len %d ttl %d", src(h), u.SrcPort, dst(h), u.DstPort, max(int(u.Length)-8, 0), ttl(h))
	}
	s := h.String()
	s = strings.TrimPrefix(s, "IP6 ")
	return strings.TrimPrefix(s, "IP ")
}

// icmpWords is what an ICMP message says, in tcpdump's words ("echo
// request seq 1", "host 192.168.2.20 unreachable"), taken from the
// capture package's tcpdump line so both read the same. An echo's id
// (the same for every echo of one ping) is left to the detail pane, so
// that the sequence number fits an 80-column row.
func icmpWords(h *capture.Headers) string {
	line := (&capture.Headers{IPv4: h.IPv4, IPv6: h.IPv6, ICMP: h.ICMP, ICMPv6: h.ICMPv6}).String()
	_, words, ok := strings.Cut(line, ": ICMP")
	if !ok {
		return line
	}
	words = strings.TrimPrefix(strings.TrimPrefix(words, "6,"), " ")
	if i := strings.LastIndex(words, ", length "); i >= 0 {
		words = words[:i]
	}
	return echoID.ReplaceAllString(strings.ReplaceAll(words, ", ", " "), "$1")
}

var echoID = regexp.MustCompile(`(echo (?:request|reply)) id \d+`)

// etherName names an EtherType for the detail pane.
func etherName(t layers.EthernetType) string {
	switch t {
	case layers.EthernetTypeIPv4:
		return "IPv4"
	case layers.EthernetTypeIPv6:
		return "IPv6"
	case layers.EthernetTypeARP:
		return "ARP"
	}
	if s := t.String(); !strings.HasPrefix(s, "Unknown") {
		return s
	}
	return fmt.Sprintf("0x%04x", uint16(t))
}
