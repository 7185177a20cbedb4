package ipipd

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// refSum is RFC 1071 written the obvious way.
func refSum(b []byte, initial uint32) uint16 {
	s := initial
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func TestSum16(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	ones := bytes.Repeat([]byte{0xff}, 300)
	for n := 0; n < 300; n++ {
		for _, off := range []int{0, 1, 3} {
			b := buf[off : off+n]
			init := r.Uint32N(0x10000)
			if got, want := sum16(b, init), refSum(b, init); got != want {
				t.Fatalf("len %d offset %d: sum16 %#04x, want %#04x", n, off, got, want)
			}
		}
		if got, want := sum16(ones[:n], 0xffff), refSum(ones[:n], 0xffff); got != want {
			t.Fatalf("all ones, len %d: sum16 %#04x, want %#04x", n, got, want)
		}
	}
}

func BenchmarkSum16(b *testing.B) {
	buf := make([]byte, 1448)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		sum16(buf, 0)
	}
}

func u32(s string) uint32 {
	a := netip.MustParseAddr(s).As4()
	return binary.BigEndian.Uint32(a[:])
}

func TestRouteTable(t *testing.T) {
	tbl := buildTable([]kernelRoute{
		{dst: u32("10.78.2.0"), bits: 24, gw: u32("10.77.0.2"), metric: 0},
		{dst: u32("10.78.2.0"), bits: 24, gw: u32("10.77.0.7"), metric: 100}, // loses on metric
		{dst: u32("10.78.2.128"), bits: 25, gw: u32("10.77.0.3")},
		{dst: u32("10.78.3.0"), bits: 24, gw: u32("10.78.2.9")}, // gateway behind tunl0
		{dst: u32("10.90.0.0"), bits: 16},                       // no gateway: NBMA
		{dst: 0, bits: 0, gw: u32("10.77.0.4")},                 // default via tunl0
	}, map[uint32]bool{u32("10.78.2.9"): true})
	for _, tc := range []struct {
		dst, gw string
		loop    bool
	}{
		{"10.78.2.1", "10.77.0.2", false},
		{"10.78.2.200", "10.77.0.3", false},
		{"10.78.3.1", "10.78.2.9", true},
		{"10.90.4.5", "0.0.0.0", false},
		{"192.0.2.1", "10.77.0.4", false},
	} {
		nh, ok := tbl.lookup(u32(tc.dst))
		if !ok || nh.gw != u32(tc.gw) || nh.loop != tc.loop {
			t.Errorf("lookup %s: %+v %v, want gateway %s loop %v", tc.dst, nh, ok, tc.gw, tc.loop)
		}
	}
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"10.77.0.2", true}, {"10.77.0.3", true}, {"10.77.0.4", true},
		{"10.77.0.7", false}, // only the winning route's gateway is a peer
		{"10.90.1.1", true},  // inside a gateway-less route
		{"10.77.0.9", false}, // matched by the default route, whose gateway it is not
	} {
		if got := tbl.acceptPeer(u32(tc.src)); got != tc.want {
			t.Errorf("acceptPeer %s: %v, want %v", tc.src, got, tc.want)
		}
	}
	tbl = buildTable([]kernelRoute{{dst: u32("10.78.2.0"), bits: 24, gw: u32("10.77.0.2")}}, nil)
	if tbl.acceptPeer(u32("10.77.0.9")) || !tbl.acceptPeer(u32("10.77.0.2")) {
		t.Error("acceptPeer without a default route")
	}
	if _, ok := tbl.lookup(u32("10.78.1.1")); ok {
		t.Error("lookup outside every route succeeded")
	}
}

// tcpPacket builds an IPv4/TCP packet with timestamps and the given payload.
func tcpPacket(src, dst string, sport, dport uint16, seq uint32, flags byte, payload []byte) []byte {
	p := make([]byte, 20+32+len(payload))
	ip, tcp := p[:20], p[20:]
	ip[0], ip[1], ip[6], ip[8], ip[9] = 0x45, 0x02, ipDF, 63, unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(p)))
	binary.BigEndian.PutUint16(ip[4:6], 0x1000)
	copy(ip[12:16], netip.MustParseAddr(src).AsSlice())
	copy(ip[16:20], netip.MustParseAddr(dst).AsSlice())
	binary.BigEndian.PutUint16(ip[10:12], ipHeaderChecksum(ip))
	binary.BigEndian.PutUint16(tcp[0:2], sport)
	binary.BigEndian.PutUint16(tcp[2:4], dport)
	binary.BigEndian.PutUint32(tcp[4:8], seq)
	binary.BigEndian.PutUint32(tcp[8:12], 0xabcdef01)
	tcp[12], tcp[13] = 8<<4, flags
	binary.BigEndian.PutUint16(tcp[14:16], 502)
	copy(tcp[20:32], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}) // NOP NOP TS
	copy(tcp[32:], payload)
	binary.BigEndian.PutUint16(tcp[16:18], ^sum16(tcp, pseudoSum(ip, unix.IPPROTO_TCP, len(tcp))))
	return p
}

func validTCP(p []byte) bool {
	ihl := int(p[0]&0xf) * 4
	return ipHeaderChecksum(p[:ihl]) == binary.BigEndian.Uint16(p[10:12]) &&
		sum16(p[ihl:], pseudoSum(p, unix.IPPROTO_TCP, len(p)-ihl)) == 0xffff
}

func iovBytes(v unix.Iovec) []byte { return unsafe.Slice(v.Base, v.Len) }

// TestSegment checks the userspace TSO against what tcp_gso_segment makes.
func TestSegment(t *testing.T) {
	payload := make([]byte, 5000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	super := tcpPacket("10.78.1.2", "10.78.2.2", 40000, 5201, 1000, tcpACK|tcpPSH|tcpFIN|0x80, payload)
	e := newEncapper(&Datapath{}, 0, true)
	if err := e.segment(super, 1448, u32("10.77.0.2")); err != nil {
		t.Fatal(err)
	}
	if e.n != 4 {
		t.Fatalf("%d segments, want 4", e.n)
	}
	var got []byte
	for i := range e.n {
		h := &e.msgs[i].Hdr
		var pkt []byte
		for _, v := range e.iovs[2*i : 2*i+int(h.Iovlen)] {
			pkt = append(pkt, iovBytes(v)...)
		}
		outer, in := pkt[:20], pkt[20:]
		if outer[0] != 0x45 || outer[9] != 4 || outer[8] != 63 || outer[6] != ipDF || outer[1] != 2 ||
			!bytes.Equal(outer[16:20], []byte{10, 77, 0, 2}) || !bytes.Equal(e.addrs[i].Addr[:], []byte{10, 77, 0, 2}) {
			t.Errorf("segment %d: outer header % x", i, outer)
		}
		if int(binary.BigEndian.Uint16(in[2:4])) != len(in) || !validTCP(in) {
			t.Errorf("segment %d: length %d of %d or checksums wrong", i, binary.BigEndian.Uint16(in[2:4]), len(in))
		}
		if id := binary.BigEndian.Uint16(in[4:6]); id != 0x1000+uint16(i) {
			t.Errorf("segment %d: IP ID %#x", i, id)
		}
		if seq := binary.BigEndian.Uint32(in[24:28]); seq != 1000+uint32(1448*i) {
			t.Errorf("segment %d: seq %d", i, seq)
		}
		wantFlags := byte(tcpACK)
		if i == 0 {
			wantFlags |= 0x80
		}
		if i == 3 {
			wantFlags |= tcpPSH | tcpFIN
		}
		if in[33] != wantFlags {
			t.Errorf("segment %d: flags %#x, want %#x", i, in[33], wantFlags)
		}
		got = append(got, in[52:]...)
	}
	if !bytes.Equal(got, payload) {
		t.Error("segments do not reassemble to the payload")
	}
}

func TestCompleteChecksum(t *testing.T) {
	p := tcpPacket("10.0.0.1", "10.0.0.2", 1, 2, 3, tcpACK, []byte("hello, world"))
	want := binary.BigEndian.Uint16(p[36:38])
	// CHECKSUM_PARTIAL: the field holds the pseudo-header sum.
	binary.BigEndian.PutUint16(p[36:38], sum16(nil, pseudoSum(p, unix.IPPROTO_TCP, len(p)-20)))
	if !completeChecksum(p, 20, 16) || binary.BigEndian.Uint16(p[36:38]) != want {
		t.Errorf("completed checksum %#x, want %#x", binary.BigEndian.Uint16(p[36:38]), want)
	}
	if completeChecksum(p, len(p)-1, 16) {
		t.Error("checksum offset outside the packet accepted")
	}
}

// TestCoalesce feeds received IPIP packets through the decapsulator and
// reads what it writes to "TUN" (a SOCK_SEQPACKET pair keeps writes apart).
func TestCoalesce(t *testing.T) {
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	if err := unix.SetsockoptInt(sp[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20); err != nil {
		t.Fatal(err)
	}
	x := newDecapper(&Datapath{cfg: Config{AcceptAnyPeer: true}}, sp[0], true)

	seg := func(flow int, seq uint32, flags byte, n int) []byte {
		b := bytes.Repeat([]byte{byte(seq)}, n)
		return tcpPacket("10.78.1.2", "10.78.2.2", uint16(40000+flow), 5201, seq, flags, b)
	}
	corrupt := seg(1, 1000+3*1000, tcpACK, 1000)
	corrupt[60] ^= 1
	in := [][]byte{
		seg(1, 1000, tcpACK, 1000),        // 0: flow 1 head
		seg(2, 5000, tcpACK, 1000),        // 1: flow 2 head
		seg(1, 2000, tcpACK, 1000),        // 2: joins 0
		seg(2, 6000, tcpACK, 1000),        // 3: joins 1
		seg(1, 3000, tcpACK|tcpPSH, 1000), // 4: joins 0 and ends it
		corrupt,                           // 5: bad checksum: alone
		seg(2, 7000, tcpACK, 0),           // 6: pure ACK of flow 2: alone, closes flow 2
		seg(2, 7000, tcpACK, 500),         // 7: flow 2 again: new head
		seg(2, 7500, tcpACK, 500),         // 8: joins 7
		seg(2, 8000, tcpACK, 600),         // 9: larger than the head's segments: new head
		seg(3, 100, tcpACK|tcpSYN, 0),     // 10: SYN: alone
		seg(4, 100, tcpACK, 1000),         // 11: alone (single)
		seg(4, 1100, tcpACK, 400),         // 12: short: joins 11 and ends it
		seg(4, 1500, tcpACK, 1000),        // 13: new head after the short one
		[]byte{0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, // 14: non-TCP
	}
	for i, p := range in {
		b := x.bufs[i]
		copy(b, []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 4, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2})
		binary.BigEndian.PutUint16(b[2:4], uint16(20+len(p)))
		copy(b[20:], p)
		x.msgs[i].Len = uint32(20 + len(p))
	}
	if err := x.batch(&routeTable{}, len(in)); err != nil {
		t.Fatal(err)
	}
	type write struct {
		segs, gsoSize int
		seq           uint32
		payload       int
	}
	want := []write{
		{3, 1000, 1000, 3000},
		{2, 1000, 5000, 2000},
		{1, 0, 4000, 1000},
		{1, 0, 7000, 0},
		{2, 500, 7000, 1000},
		{1, 0, 8000, 600},
		{1, 0, 100, 0},
		{2, 1000, 100, 1400},
		{1, 0, 1500, 1000},
		{1, 0, 0, 0},
	}
	buf := make([]byte, 1<<16)
	for i, w := range want {
		n, err := unix.Read(sp[1], buf)
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		vh, p := buf[:vnetHdrLen], buf[vnetHdrLen:n]
		if i == len(want)-1 {
			if p[9] != 17 || vh[1] != vnetGSONone {
				t.Errorf("write %d: want the UDP packet unchanged", i)
			}
			break
		}
		seq := binary.BigEndian.Uint32(p[24:28])
		gsoSize := int(binary.NativeEndian.Uint16(vh[4:6]))
		if int(binary.BigEndian.Uint16(p[2:4])) != len(p) || ipHeaderChecksum(p[:20]) != binary.BigEndian.Uint16(p[10:12]) {
			t.Errorf("write %d: bad IP length or checksum", i)
		}
		if w.segs == 1 {
			if vh[1] != vnetGSONone || seq != w.seq || len(p)-52 != w.payload {
				t.Errorf("write %d: gso %d seq %d payload %d, want a single segment seq %d payload %d", i, vh[1], seq, len(p)-52, w.seq, w.payload)
			}
			continue
		}
		if vh[0] != vnetFNeedsCsum || vh[1] != vnetGSOTCPv4 || gsoSize != w.gsoSize || seq != w.seq || len(p)-52 != w.payload ||
			binary.NativeEndian.Uint16(vh[2:4]) != 52 || binary.NativeEndian.Uint16(vh[6:8]) != 20 || binary.NativeEndian.Uint16(vh[8:10]) != 16 {
			t.Errorf("write %d: vnet % x seq %d payload %d, want %d segments of %d from seq %d, %d bytes", i, vh, seq, len(p)-52, w.segs, w.gsoSize, w.seq, w.payload)
			continue
		}
		// Completing the partial checksum must give a valid segment.
		if !completeChecksum(p, 20, 16) || !validTCP(p) {
			t.Errorf("write %d: checksum does not complete", i)
		}
		for j := 0; j < w.payload; j++ {
			if want := byte(w.seq + uint32(j/w.gsoSize*w.gsoSize)); p[52+j] != want {
				t.Errorf("write %d: payload byte %d is %d, want %d", i, j, p[52+j], want)
				break
			}
		}
		if i == 0 && p[33] != tcpACK|tcpPSH {
			t.Errorf("write 0: flags %#x, want ACK|PSH from its last segment", p[33])
		}
	}
	if n, _, err := unix.Recvfrom(sp[1], buf, unix.MSG_DONTWAIT); err == nil {
		t.Errorf("unexpected extra write of %d bytes", n)
	}
	if x.t.decapPackets != uint64(len(in)) {
		t.Errorf("decapsulated %d, want %d", x.t.decapPackets, len(in))
	}
}

// TestGROSuperPacket feeds the decapsulator what the raw socket gets behind
// an underlay device doing GRO: TCP super-packets whose checksum field holds
// the pseudo-header sum (tcp4_gro_complete). Each must reach "TUN" whole as
// one TCPv4 GSO packet that segments back into valid MTU-sized segments,
// after anything of its flow that arrived before it.
func TestGROSuperPacket(t *testing.T) {
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	if err := unix.SetsockoptInt(sp[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20); err != nil {
		t.Fatal(err)
	}
	d := &Datapath{cfg: Config{AcceptAnyPeer: true}}
	d.mtu.Store(1480)
	x := newDecapper(d, sp[0], true)

	const mss = 1480 - 52 // timestamps: 20 + 32 bytes of headers
	payload := func(seq uint32, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte((seq + uint32(i)) * 13)
		}
		return b
	}
	// gro merges segments as GRO does: one header, the payloads behind it,
	// PSH from any segment, the checksum left partial.
	gro := func(flow int, seq uint32, n int, flags byte) []byte {
		p := tcpPacket("10.78.1.2", "10.78.2.2", uint16(40000+flow), 5201, seq, flags, payload(seq, n))
		binary.BigEndian.PutUint16(p[36:38], sum16(nil, pseudoSum(p, unix.IPPROTO_TCP, len(p)-20)))
		return p
	}
	seg := func(flow int, seq uint32, n int) []byte {
		return tcpPacket("10.78.1.2", "10.78.2.2", uint16(40000+flow), 5201, seq, tcpACK, payload(seq, n))
	}
	corrupt := seg(3, 100, 1000)
	corrupt[70] ^= 0xff
	in := [][]byte{
		seg(1, 1000, mss),                            // 0: flow 1 head
		seg(1, 1000+mss, mss),                        // 1: joins 0
		gro(1, 1000+2*mss, 3*mss+100, tcpACK|tcpPSH), // 2: super-packet: after the chain
		gro(2, 5000, 2*100, tcpACK),                  // 3: two small segments merged: no GSO needed
		corrupt,                                      // 4: neither valid nor partial: as it is
		gro(1, 1000+5*mss+100, 2*mss, tcpACK),        // 5: truncated by the socket: dropped
	}
	for i, p := range in {
		b := x.bufs[i]
		copy(b, []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 4, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2})
		binary.BigEndian.PutUint16(b[2:4], uint16(20+len(p)))
		copy(b[20:], p)
		x.msgs[i].Len = uint32(20 + len(p))
		x.msgs[i].Hdr.Flags = 0
	}
	x.msgs[5].Hdr.Flags = unix.MSG_TRUNC
	if err := x.batch(&routeTable{}, len(in)); err != nil {
		t.Fatal(err)
	}

	buf := make([]byte, 1<<17)
	read := func(what string) (vh, p []byte) {
		t.Helper()
		n, err := unix.Read(sp[1], buf)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return slices.Clone(buf[:vnetHdrLen]), slices.Clone(buf[vnetHdrLen:n])
	}
	u16 := func(b []byte) int { return int(binary.NativeEndian.Uint16(b)) }

	// The chain of flow 1 comes first, coalesced as before.
	vh, p := read("chain")
	if vh[1] != vnetGSOTCPv4 || binary.BigEndian.Uint32(p[24:28]) != 1000 || len(p)-52 != 2*mss {
		t.Errorf("chain: vnet % x, seq %d, payload %d", vh, binary.BigEndian.Uint32(p[24:28]), len(p)-52)
	}

	vh, p = read("super-packet")
	if !bytes.Equal(p, in[2]) {
		t.Error("super-packet changed on its way to TUN")
	}
	if vh[0] != vnetFNeedsCsum || vh[1] != vnetGSOTCPv4 || u16(vh[2:4]) != 52 || u16(vh[4:6]) != mss ||
		u16(vh[6:8]) != 20 || u16(vh[8:10]) != 16 {
		t.Errorf("super-packet: vnet header % x, want NEEDS_CSUM, TCPv4 GSO of %d, headers 52, checksum at 20+16", vh, mss)
	}
	// Segmented as the kernel's GSO will: MTU-sized segments with valid
	// checksums, the payload intact, PSH on the last one only.
	e := newEncapper(&Datapath{}, 0, true)
	if err := e.segment(p, u16(vh[4:6]), u32("10.77.0.1")); err != nil {
		t.Fatal(err)
	}
	if e.n != 4 {
		t.Fatalf("super-packet segments into %d, want 4", e.n)
	}
	var got []byte
	for i := range e.n {
		var s []byte
		for _, v := range e.iovs[2*i : 2*i+int(e.msgs[i].Hdr.Iovlen)] {
			s = append(s, iovBytes(v)...)
		}
		s = s[outerLen:]
		if len(s) > 1480 || !validTCP(s) || (s[33]&tcpPSH != 0) != (i == 3) {
			t.Errorf("segment %d: %d bytes, valid %v, flags %#x", i, len(s), validTCP(s), s[33])
		}
		got = append(got, s[52:]...)
	}
	if !bytes.Equal(got, payload(1000+2*mss, 3*mss+100)) {
		t.Error("segments do not reassemble to the super-packet's payload")
	}

	vh, p = read("small super-packet")
	if vh[0] != vnetFNeedsCsum || vh[1] != vnetGSONone || u16(vh[6:8]) != 20 || u16(vh[8:10]) != 16 {
		t.Errorf("small super-packet: vnet header % x, want NEEDS_CSUM without GSO", vh)
	}
	if !completeChecksum(p, 20, 16) || !validTCP(p) {
		t.Error("small super-packet: checksum does not complete")
	}

	vh, p = read("corrupt")
	if vh[0] != 0 || vh[1] != vnetGSONone || !bytes.Equal(p, corrupt) {
		t.Errorf("corrupt packet: vnet header % x, changed %v; want it passed on unvouched for", vh, !bytes.Equal(p, corrupt))
	}
	if n, _, err := unix.Recvfrom(sp[1], buf, unix.MSG_DONTWAIT); err == nil {
		t.Errorf("unexpected extra write of %d bytes (the truncated packet?)", n)
	}
	if x.t.groPackets != 2 || x.t.truncated != 1 || x.t.decapPackets != 2+4+1+1 {
		t.Errorf("counted %d super-packets, %d truncated, %d packets; want 2, 1, 8", x.t.groPackets, x.t.truncated, x.t.decapPackets)
	}
}

// TestMTUTable checks the MTUs super-packets are cut to: the longest
// matching route's mtu metric, else its device's, the lowest metric
// winning, never more than tunl0's.
func TestMTUTable(t *testing.T) {
	links := map[int]int{1: 1500, 2: 1450, 3: 1480, 4: 9000}
	tbl := buildMTUTable([]kernelRoute{
		{dst: 0, bits: 0, oif: 4},                              // default via a jumbo device
		{dst: u32("10.78.2.0"), bits: 24, oif: 2},              // pods behind the bridge
		{dst: u32("10.78.3.0"), bits: 24, oif: 1, mtu: 1400},   // mtu metric
		{dst: u32("10.78.4.0"), bits: 24, oif: 1, metric: 100}, // loses to the next
		{dst: u32("10.78.4.0"), bits: 24, oif: 2, metric: 10},
		{dst: u32("10.78.5.0"), bits: 24, oif: 7}, // device unknown: no entry
	}, links)
	for _, tc := range []struct {
		dst  string
		want int
	}{
		{"10.78.2.9", 1450}, {"10.78.3.9", 1400}, {"10.78.4.9", 1450}, {"10.78.5.9", 9000}, {"192.0.2.1", 9000},
	} {
		if got := tbl.lookup(u32(tc.dst)); got != tc.want {
			t.Errorf("lookup(%s) = %d, want %d", tc.dst, got, tc.want)
		}
	}
	if (*mtuTable)(nil).lookup(1) != 0 {
		t.Error("nil table answers")
	}

	d := &Datapath{}
	x := newDecapper(d, -1, true)
	x.mtu, x.egress = 1480, tbl
	for _, tc := range []struct {
		dst string
		mss int
	}{
		{"10.78.2.2", 1450 - 52}, // the pods' MTU is smaller than tunl0's
		{"192.0.2.1", 1480 - 52}, // tunl0's is the smaller
	} {
		p := tcpPacket("10.78.1.2", tc.dst, 1, 2, 3, tcpACK, make([]byte, 5000))
		var r rxPkt
		x.aggregate(&r, p, 52)
		if r.mss != tc.mss || r.plen != 5000 {
			t.Errorf("to %s: mss %d, payload %d; want %d, 5000", tc.dst, r.mss, r.plen, tc.mss)
		}
	}
}
