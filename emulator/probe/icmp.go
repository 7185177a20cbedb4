package probe

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
)

// ICMPv4 message types the probes send or understand.
const (
	icmpEchoReply      = 0
	icmpDestUnreach    = 3
	icmpEchoRequest    = 8
	icmpTimeExceeded   = 11
	icmpParamProblem   = 12
	icmpFragNeededCode = 4
)

// ICMPError is an ICMP error message that came back for one of our echoes:
// a router or the destination said why the echo got no reply.
type ICMPError struct {
	From netip.Addr // who sent the error: a router on the path, or the destination
	Type int
	Code int
	// MTU is the next-hop MTU of a "fragmentation needed" message: the largest
	// IP packet (headers included) that fits the link where the echo stopped.
	MTU int
}

func (e *ICMPError) Error() string {
	s := icmpName(e.Type, e.Code)
	if e.MTU > 0 {
		s = strings.TrimSuffix(s, ")") + fmt.Sprintf(", next-hop mtu %d)", e.MTU)
	}
	return s + " from " + e.From.String()
}

// Unwrap maps the message to the errno the kernel reports for it on a
// connected socket, so callers can test errors.Is(err, syscall.EMSGSIZE)
// whether the local kernel or a router refused a too large packet.
func (e *ICMPError) Unwrap() error {
	switch e.Type {
	case icmpDestUnreach:
		switch e.Code {
		case 0, 6, 11:
			return syscall.ENETUNREACH
		case 1, 7, 12:
			return syscall.EHOSTUNREACH
		case 2:
			return syscall.ENOPROTOOPT
		case 3:
			return syscall.ECONNREFUSED
		case icmpFragNeededCode:
			return syscall.EMSGSIZE
		case 9, 10, 13:
			return syscall.EACCES
		}
	case icmpTimeExceeded:
		return syscall.EHOSTUNREACH
	case icmpParamProblem:
		return syscall.EPROTO
	}
	return nil
}

var unreachCodes = [...]string{
	0:  "network unreachable",
	1:  "host unreachable",
	2:  "protocol unreachable",
	3:  "port unreachable",
	4:  "fragmentation needed",
	5:  "source route failed",
	6:  "destination network unknown",
	7:  "destination host unknown",
	8:  "source host isolated",
	9:  "network administratively prohibited",
	10: "host administratively prohibited",
	11: "network unreachable for tos",
	12: "host unreachable for tos",
	13: "communication administratively prohibited",
	14: "host precedence violation",
	15: "precedence cutoff in effect",
}

func icmpName(typ, code int) string {
	switch typ {
	case icmpDestUnreach:
		if code >= 0 && code < len(unreachCodes) {
			return "destination unreachable (" + unreachCodes[code] + ")"
		}
		return fmt.Sprintf("destination unreachable (code %d)", code)
	case icmpTimeExceeded:
		if code == 1 {
			return "time exceeded (fragment reassembly)"
		}
		return "time exceeded (ttl exceeded in transit)"
	case icmpParamProblem:
		return fmt.Sprintf("parameter problem (code %d)", code)
	}
	return fmt.Sprintf("icmp type %d code %d", typ, code)
}

// checksum is the Internet checksum of RFC 1071.
func checksum(b []byte) uint16 {
	var sum uint32
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// echoRequest builds an ICMP echo request; the payload starts with a
// per-call cookie so replies to someone else's echo with the same id and
// sequence (another program, another lab) are not taken for ours.
func echoRequest(id, seq uint16, cookie [8]byte, size int) []byte {
	b := make([]byte, 8+size)
	b[0] = icmpEchoRequest
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	for i := range size {
		b[8+i] = cookie[i%len(cookie)]
	}
	binary.BigEndian.PutUint16(b[2:], checksum(b))
	return b
}

// icmpPacket is what a raw ICMP socket read says about one of our echoes.
type icmpPacket struct {
	from    netip.Addr
	ttl     int
	reply   bool       // an echo reply; otherwise an error quoting our request
	err     *ICMPError // set for error messages
	id, seq uint16
}

// parseICMP reads an IPv4 packet as a raw ICMP socket delivers it, header
// included. It reports echo replies, and ICMP errors that quote an echo
// request sent to dst; everything else a raw socket sees is none of ours.
func parseICMP(b []byte, dst netip.Addr, cookie [8]byte) (icmpPacket, bool) {
	ip, body, ok := splitIPv4(b)
	if !ok || ip[9] != syscall.IPPROTO_ICMP || len(body) < 8 {
		return icmpPacket{}, false
	}
	p := icmpPacket{
		from: netip.AddrFrom4([4]byte(ip[12:16])),
		ttl:  int(ip[8]),
	}
	switch typ := int(body[0]); typ {
	case icmpEchoReply:
		if checksum(body) != 0 || !hasCookie(body[8:], cookie) {
			return icmpPacket{}, false
		}
		p.reply = true
		p.id = binary.BigEndian.Uint16(body[4:])
		p.seq = binary.BigEndian.Uint16(body[6:])
		return p, true
	case icmpDestUnreach, icmpTimeExceeded, icmpParamProblem:
		inner, quoted, ok := splitIPv4(body[8:])
		// Routers quote at least the echo header; Linux quotes the payload too.
		if !ok || inner[9] != syscall.IPPROTO_ICMP || len(quoted) < 8 || quoted[0] != icmpEchoRequest ||
			netip.AddrFrom4([4]byte(inner[16:20])) != dst || !hasCookie(quoted[8:], cookie) {
			return icmpPacket{}, false
		}
		p.err = &ICMPError{From: p.from, Type: typ, Code: int(body[1])}
		if typ == icmpDestUnreach && p.err.Code == icmpFragNeededCode {
			p.err.MTU = int(binary.BigEndian.Uint16(body[6:]))
		}
		p.id = binary.BigEndian.Uint16(quoted[4:])
		p.seq = binary.BigEndian.Uint16(quoted[6:])
		return p, true
	}
	return icmpPacket{}, false
}

// hasCookie checks the part of the cookie that fits in the payload.
func hasCookie(payload []byte, cookie [8]byte) bool {
	for i := 0; i < len(payload) && i < len(cookie); i++ {
		if payload[i] != cookie[i] {
			return false
		}
	}
	return true
}

// splitIPv4 returns the IPv4 header and what follows it, cut to the total
// length the header claims when the packet was not truncated.
func splitIPv4(b []byte) (hdr, body []byte, ok bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return nil, nil, false
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl {
		return nil, nil, false
	}
	if total := int(binary.BigEndian.Uint16(b[2:])); total >= ihl && total < len(b) {
		b = b[:total]
	}
	return b[:ihl], b[ihl:], true
}
