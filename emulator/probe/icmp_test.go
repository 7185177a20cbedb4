package probe

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
)

// ipv4 wraps payload in a minimal IPv4 header.
func ipv4(src, dst netip.Addr, ttl byte, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(payload)))
	b[8] = ttl
	b[9] = syscall.IPPROTO_ICMP
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b))
	return append(b, payload...)
}

// icmpMsg builds an ICMP message whose bytes 4..7 are rest.
func icmpMsg(typ, code byte, rest uint32, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint32(b[4:], rest)
	b = append(b, body...)
	binary.BigEndian.PutUint16(b[2:], checksum(b))
	return b
}

func TestParseICMP(t *testing.T) {
	me, dst, router := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.1.2"), netip.MustParseAddr("10.0.0.254")
	cookie := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	other := [8]byte{8, 7, 6, 5, 4, 3, 2, 1}
	request := echoRequest(0x1234, 7, cookie, 56)
	reply := func(c [8]byte) []byte {
		b := echoRequest(0x1234, 7, c, 56)
		b[0], b[2], b[3] = icmpEchoReply, 0, 0
		binary.BigEndian.PutUint16(b[2:], checksum(b))
		return b
	}
	quoted := ipv4(me, dst, 1, request)
	quotedOther := ipv4(me, router, 1, request)

	tests := []struct {
		name string
		pkt  []byte
		want icmpPacket
		ok   bool
	}{
		{"reply", ipv4(dst, me, 63, reply(cookie)), icmpPacket{from: dst, ttl: 63, reply: true, id: 0x1234, seq: 7}, true},
		{"reply to someone else's echo", ipv4(dst, me, 63, reply(other)), icmpPacket{}, false},
		{"our own request looped back", ipv4(me, me, 64, request), icmpPacket{}, false},
		{"corrupt reply", ipv4(dst, me, 63, append(reply(cookie)[:60], 0xff, 0xff, 0xff, 0xff)), icmpPacket{}, false},
		{"fragmentation needed", ipv4(router, me, 64, icmpMsg(icmpDestUnreach, icmpFragNeededCode, 1300, quoted[:28])),
			icmpPacket{from: router, ttl: 64, err: &ICMPError{From: router, Type: 3, Code: 4, MTU: 1300}, id: 0x1234, seq: 7}, true},
		{"time exceeded quoting the payload", ipv4(router, me, 64, icmpMsg(icmpTimeExceeded, 0, 0, quoted)),
			icmpPacket{from: router, ttl: 64, err: &ICMPError{From: router, Type: 11}, id: 0x1234, seq: 7}, true},
		{"error about an echo to another host", ipv4(router, me, 64, icmpMsg(icmpDestUnreach, 1, 0, quotedOther)), icmpPacket{}, false},
		{"error quoting too little", ipv4(router, me, 64, icmpMsg(icmpDestUnreach, 1, 0, quoted[:24])), icmpPacket{}, false},
		{"truncated", []byte{0x45, 0, 0}, icmpPacket{}, false},
		{"ipv6", append([]byte{0x60}, make([]byte, 60)...), icmpPacket{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseICMP(tt.pkt, dst, cookie)
			if ok != tt.ok {
				t.Fatalf("parseICMP() ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if (got.err == nil) != (tt.want.err == nil) || got.err != nil && *got.err != *tt.want.err {
				t.Fatalf("parseICMP() err = %v, want %v", got.err, tt.want.err)
			}
			got.err, tt.want.err = nil, nil
			if got != tt.want {
				t.Fatalf("parseICMP() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestICMPError(t *testing.T) {
	router := netip.MustParseAddr("10.0.0.254")
	tests := []struct {
		err  ICMPError
		msg  string
		errn error
	}{
		{ICMPError{From: router, Type: 3, Code: 4, MTU: 1300}, "destination unreachable (fragmentation needed, next-hop mtu 1300) from 10.0.0.254", syscall.EMSGSIZE},
		{ICMPError{From: router, Type: 3, Code: 1}, "destination unreachable (host unreachable) from 10.0.0.254", syscall.EHOSTUNREACH},
		{ICMPError{From: router, Type: 3, Code: 3}, "destination unreachable (port unreachable) from 10.0.0.254", syscall.ECONNREFUSED},
		{ICMPError{From: router, Type: 3, Code: 13}, "destination unreachable (communication administratively prohibited) from 10.0.0.254", syscall.EACCES},
		{ICMPError{From: router, Type: 11}, "time exceeded (ttl exceeded in transit) from 10.0.0.254", syscall.EHOSTUNREACH},
		{ICMPError{From: router, Type: 3, Code: 99}, "destination unreachable (code 99) from 10.0.0.254", nil},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			err := &tt.err
			if got := err.Error(); got != tt.msg {
				t.Errorf("Error() = %q, want %q", got, tt.msg)
			}
			if tt.errn != nil && !errors.Is(err, tt.errn) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.errn)
			}
			if mtu, ok := MTU(err); ok != (tt.err.MTU > 0) || mtu != tt.err.MTU {
				t.Errorf("MTU() = %d, %v", mtu, ok)
			}
		})
	}
}

func TestChecksum(t *testing.T) {
	// RFC 1071's example: 0001 f203 f4f5 f6f7 sums to ddf2, so the checksum is 220d.
	if got := checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != 0x220d {
		t.Errorf("checksum() = %#04x, want 0x220d", got)
	}
	if got := checksum(echoRequest(1, 2, [8]byte{}, 57)); got != 0 {
		t.Errorf("checksum over a request with its checksum = %#04x, want 0", got)
	}
}
