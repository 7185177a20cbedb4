package ipipd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// decapMsgs is how many packets one recvmmsg takes at most; it is also
	// the window in which TCP segments can be coalesced.
	decapMsgs = 64
	// decapBuf fits any IPv4 packet: the raw socket hands over reassembled
	// fragments and GRO super-packets (gro.go) whole. Only GRO configured
	// beyond 64 KiB (BIG TCP's gro_ipv4_max_size) could build larger ones;
	// they arrive truncated and are dropped.
	decapBuf = maxPacket
	// groMaxSegs bounds a coalesced super-packet, like the kernel's
	// gro_max_size/MAX_SKB_FRAGS do.
	groMaxSegs = 64
	// groOpen is how many flows one batch coalesces at once.
	groOpen = 8

	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpCWR = 0x80
)

// rxPkt is one received packet after the outer header is stripped.
type rxPkt struct {
	start, end int // inner packet within its buffer
	// For TCP segments that may be coalesced (see classify):
	gro   bool
	hl    int // inner IP + TCP header length
	seq   uint32
	plen  int // TCP payload length
	next  int // next packet of the coalesced chain, -1 at the end
	last  int // for a chain's head: its last packet
	total int // for a chain's head: inner length of the whole chain
	segs  int
	open  bool // for a chain's head: more segments may join
	// agg marks a TCP super-packet the kernel's GRO built (see classify),
	// written on whole; mss is the segment size it is cut to again.
	agg bool
	mss int
}

// decapper serves the raw socket: it receives IPIP packets, checks and
// strips them and writes the inner packets to TUN.
type decapper struct {
	d      *Datapath
	fd     int // the TUN queue writes go to; any queue accepts writes
	vnet   bool
	mtu    int       // the TUN device's, read once per batch
	egress *mtuTable // the node's route MTUs, read once per batch
	bufs   [decapMsgs][]byte
	msgs   [decapMsgs]unix.Mmsghdr
	iovs   [decapMsgs]unix.Iovec
	pkts   [decapMsgs]rxPkt
	heads  [decapMsgs]int // packets to write, in arrival order; chains by their head
	open   [groOpen]int   // heads of chains that may still grow
	wiov   [groMaxSegs]unix.Iovec
	t      tally
}

func newDecapper(d *Datapath, fd int, vnet bool) *decapper {
	x := &decapper{d: d, fd: fd, vnet: vnet}
	for i := range x.bufs {
		x.bufs[i] = make([]byte, decapBuf)
		x.iovs[i].Base = &x.bufs[i][0]
		x.iovs[i].SetLen(decapBuf)
		x.msgs[i].Hdr.Iov = &x.iovs[i]
		x.msgs[i].Hdr.Iovlen = 1
	}
	return x
}

func (d *Datapath) decapLoop() error {
	x := newDecapper(d, d.tun.fds[0], d.tun.vnet)
	rc, err := d.raw.SyscallConn()
	if err != nil {
		return fmt.Errorf("receive on raw IPIP socket: %w", err)
	}
	for {
		n := 0
		var rerr unix.Errno
		err := rc.Read(func(fd uintptr) bool {
			for {
				r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd,
					uintptr(unsafe.Pointer(&x.msgs[0])), decapMsgs, unix.MSG_DONTWAIT, 0, 0)
				switch errno {
				case 0:
					n = int(r)
					return true
				case unix.EINTR:
					continue
				case unix.EAGAIN:
					return false
				}
				rerr = errno
				return true
			}
		})
		if d.stopping.Load() {
			return nil
		}
		if err == nil && rerr != 0 {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("receive on raw IPIP socket: %w", err)
		}
		x.t.recvCalls++
		if err := x.batch(d.routes.Load(), n); err != nil {
			return err
		}
		x.t.flush(&d.ctr)
	}
}

// batch checks and strips n received packets, coalesces what it can and
// writes the result to TUN, preserving the order of every flow.
func (x *decapper) batch(t *routeTable, n int) error {
	if mtu := x.d.mtu.Load(); mtu > 0 {
		x.mtu = int(mtu)
	}
	x.egress = x.d.egress.Load()
	nh := 0
	nopen := 0
	for i := range n {
		p := &x.pkts[i]
		if x.msgs[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
			x.t.truncated++
			continue
		}
		if !x.strip(t, i, int(x.msgs[i].Len)) {
			continue
		}
		buf := x.bufs[i]
		if x.vnet {
			x.classify(buf, p)
		}
		if !p.gro {
			// A TCP packet that cannot join (a pure ACK, a FIN) must not
			// overtake the chain of its own flow: close that chain.
			if x.vnet {
				for j := 0; j < nopen; j++ {
					if sameFlow(x.bufs[x.open[j]][x.pkts[x.open[j]].start:], buf[p.start:]) {
						x.pkts[x.open[j]].open = false
					}
				}
			}
			x.heads[nh] = i
			nh++
			continue
		}
		joined := false
		for j := 0; j < nopen; j++ {
			h := x.open[j]
			hp := &x.pkts[h]
			if !hp.open || !sameFlow(x.bufs[h][hp.start:], buf[p.start:]) {
				continue
			}
			if x.canJoin(h, i) {
				x.join(h, i)
				joined = true
			} else {
				hp.open = false
			}
			break
		}
		if joined {
			continue
		}
		p.next, p.last, p.total, p.segs = -1, i, p.end-p.start, 1
		p.open = p.plen > 0 && buf[p.start+33]&tcpPSH == 0
		x.heads[nh] = i
		nh++
		if p.open {
			// Replace a closed chain, else the oldest one.
			slot := -1
			for j := 0; j < nopen; j++ {
				if !x.pkts[x.open[j]].open {
					slot = j
					break
				}
			}
			if slot < 0 {
				if nopen < groOpen {
					slot = nopen
					nopen++
				} else {
					x.pkts[x.open[0]].open = false
					copy(x.open[:], x.open[1:])
					slot = groOpen - 1
				}
			}
			x.open[slot] = i
		}
	}
	for _, h := range x.heads[:nh] {
		if err := x.write(h); err != nil {
			return err
		}
	}
	return nil
}

// strip validates received packet i and records where its inner packet is.
// The kernel checked the outer header's checksum and reassembled fragments
// before the raw socket saw it.
func (x *decapper) strip(t *routeTable, i, n int) bool {
	b := x.bufs[i][:n]
	p := &x.pkts[i]
	p.gro, p.agg = false, false
	if n < 20 || b[0]>>4 != 4 || b[9] != unix.IPPROTO_IPIP {
		x.t.malformed++
		return false
	}
	ohl := int(b[0]&0xf) * 4
	olen := int(binary.BigEndian.Uint16(b[2:4]))
	if ohl < 20 || olen < ohl || olen > n {
		x.t.malformed++
		return false
	}
	if !x.d.cfg.AcceptAnyPeer && !t.acceptPeer(binary.BigEndian.Uint32(b[12:16])) {
		x.t.unknownPeer++
		return false
	}
	in := b[ohl:olen]
	// IPIP carries IPv4 only (ipip_tpi: ETH_P_IP); a TUN device without
	// packet info would take a 6 for IPv6.
	if len(in) < 20 || in[0]>>4 != 4 {
		x.t.malformed++
		return false
	}
	ihl := int(in[0]&0xf) * 4
	ilen := int(binary.BigEndian.Uint16(in[2:4]))
	if ihl < 20 || ilen < ihl || ilen > len(in) {
		x.t.malformed++
		return false
	}
	// INET_ECN_decapsulate (RFC 6040): congestion the outer header met is
	// copied to an ECN-capable inner packet; a packet that cannot carry it
	// is dropped.
	if b[1]&3 == 3 {
		switch in[1] & 3 {
		case 0:
			x.t.ecn++
			return false
		case 1, 2:
			old := binary.BigEndian.Uint16(in[0:2])
			in[1] |= 3
			updateChecksum(in[10:12], old, binary.BigEndian.Uint16(in[0:2]))
		}
	}
	p.start, p.end = ohl, ohl+ilen
	return true
}

// updateChecksum adjusts a checksum for one 16-bit word changing from old to
// new (RFC 1624 eqn. 3), as the kernel's IP_ECN_set_ce does, so a packet
// that arrived corrupt stays detectably corrupt.
func updateChecksum(field []byte, old, new uint16) {
	hc := binary.BigEndian.Uint16(field)
	s := uint32(^hc) + uint32(^old) + uint32(new)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	binary.BigEndian.PutUint16(field, ^uint16(s))
}

// classify marks a TCP segment that may be coalesced: the conditions under
// which the kernel's inet_gro_receive and tcp_gro_receive would merge it,
// checksums verified first (GRO never merges unverified segments).
//
// It also recognises a super-packet the kernel's GRO already merged on the
// underlay device (gro.go): tcp4_gro_complete leaves the pseudo-header sum
// in its checksum field, CHECKSUM_PARTIAL, after verifying every segment.
// The raw socket reports neither that nor the segment size, so a TCP packet
// whose checksum field holds exactly the pseudo-header sum is taken for
// one. Packets longer than the MTU can only be super-packets (or outer
// fragments reassembled), so they are checked that way first, sparing a
// sum over 64 KiB; shorter ones only when their checksum fails, which
// costs nothing in the common case. A corrupt packet whose checksum field
// happens to equal the pseudo-header sum (one in 65536 corrupt packets)
// would pass as good, the price of not being told.
func (x *decapper) classify(buf []byte, p *rxPkt) {
	in := buf[p.start:p.end]
	if in[0] != 0x45 || in[9] != unix.IPPROTO_TCP || in[6]&^ipDF != 0 || in[7] != 0 {
		return // options, fragments (GRO takes neither)
	}
	if len(in) < 40 {
		return
	}
	thl := int(in[32]>>4) * 4
	hl := 20 + thl
	if thl < 20 || hl > len(in) {
		return
	}
	if ipHeaderChecksum(in[:20]) != binary.BigEndian.Uint16(in[10:12]) {
		return
	}
	pseudo := pseudoSum(in, unix.IPPROTO_TCP, len(in)-20)
	partial := binary.BigEndian.Uint16(in[36:38]) == sum16(nil, pseudo)
	if partial && len(in) > x.mtu {
		x.aggregate(p, in, hl)
		return
	}
	if sum16(in[20:], pseudo) != 0xffff {
		if partial {
			x.aggregate(p, in, hl)
		}
		return
	}
	if f := in[33]; f != tcpACK && f != tcpACK|tcpPSH {
		return // SYN, FIN, RST, URG, ECE, CWR: never merged
	}
	p.gro = true
	p.hl = hl
	p.seq = binary.BigEndian.Uint32(in[24:28])
	p.plen = len(in) - hl
}

// aggregate marks p as a GRO super-packet. GRO keeps the segment size in
// the skb, which the raw socket does not pass on, so the packet is cut to
// the largest segments the node can forward on: the MTU of its route
// towards the inner destination, and no more than tunl0's, which the
// segments crossed the wire within. That is the size TCP sent when pods
// and tunnel share an MTU (TCP fills its path MTU); when a smaller MTU
// somewhere held the sender to smaller segments, they are cut larger again,
// which TCP does not mind, where a size over the route's MTU would make the
// kernel refuse to forward the packet (DF set: "fragmentation needed").
func (x *decapper) aggregate(p *rxPkt, in []byte, hl int) {
	p.agg = true
	p.hl = hl
	p.plen = len(in) - hl
	mtu := x.mtu
	if m := x.egress.lookup(binary.BigEndian.Uint32(in[16:20])); m > 0 && (m < mtu || mtu <= 0) {
		mtu = m
	}
	p.mss = mtu - hl
}

// sameFlow compares the addresses and ports of two IPv4 packets (the
// protocol is TCP for both when it matters).
func sameFlow(a, b []byte) bool {
	if len(a) < 24 || len(b) < 24 || a[9] != b[9] {
		return false
	}
	ah, bh := int(a[0]&0xf)*4, int(b[0]&0xf)*4
	if len(a) < ah+4 || len(b) < bh+4 {
		return false
	}
	return bytes.Equal(a[12:20], b[12:20]) && bytes.Equal(a[ah:ah+4], b[bh:bh+4])
}

// canJoin says whether packet i continues chain h: tcp_gro_receive's
// conditions. Same TOS, TTL and DF; same header length, ACK number, flags
// and window and identical options; payload no larger than the first
// segment's, following the previous segment exactly, which must have been
// full-sized.
func (x *decapper) canJoin(h, i int) bool {
	hp, p := &x.pkts[h], &x.pkts[i]
	hb, pb := x.bufs[h][hp.start:], x.bufs[i][p.start:]
	lp := &x.pkts[hp.last]
	if p.hl != hp.hl || p.plen == 0 || p.plen > hp.plen || lp.plen != hp.plen {
		return false
	}
	if hp.segs >= groMaxSegs || hp.total+p.plen > maxPacket {
		return false
	}
	if p.seq != lp.seq+uint32(lp.plen) {
		return false
	}
	if hb[1] != pb[1] || hb[8] != pb[8] || hb[6] != pb[6] {
		return false
	}
	// TCP starts at 20: ACK number 28..32, data offset 32, flags 33 (PSH
	// may end a chain), window 34..36, checksum 36..38 (differs, verified
	// in classify), urgent pointer 38..40, options 40..hl.
	if !bytes.Equal(hb[28:33], pb[28:33]) || !bytes.Equal(hb[34:36], pb[34:36]) ||
		!bytes.Equal(hb[38:hp.hl], pb[38:p.hl]) {
		return false
	}
	return hb[33] == tcpACK
}

func (x *decapper) join(h, i int) {
	hp, p := &x.pkts[h], &x.pkts[i]
	x.pkts[hp.last].next = i
	p.next = -1
	hp.last = i
	hp.total += p.plen
	hp.segs++
	if x.bufs[i][p.start+33]&tcpPSH != 0 || p.plen < hp.plen {
		hp.open = false // tcp_gro_receive flushes on PSH and on a short segment
	}
}

// write hands packet or chain h to TUN. A chain becomes one TCPv4 GSO packet
// with a partial checksum, exactly what GRO would have built: the kernel
// forwards it as one packet to the pod's veth (or delivers it to a local
// socket) and segments it only if it must.
func (x *decapper) write(h int) error {
	p := &x.pkts[h]
	buf := x.bufs[h]
	var r uintptr
	var errno unix.Errno
	segs := 1
	switch {
	case x.vnet && p.agg:
		// As GRO built it: the checksum field already holds the
		// pseudo-header sum, the IP header the total length.
		vh := buf[p.start-vnetHdrLen : p.start]
		clear(vh)
		vh[0] = vnetFNeedsCsum
		if p.mss > 0 && p.plen > p.mss {
			vh[1] = vnetGSOTCPv4
			if buf[p.start+33]&tcpCWR != 0 {
				vh[1] |= vnetGSOECN
			}
			binary.NativeEndian.PutUint16(vh[2:4], uint16(p.hl))
			binary.NativeEndian.PutUint16(vh[4:6], uint16(p.mss))
			segs = (p.plen + p.mss - 1) / p.mss
		}
		binary.NativeEndian.PutUint16(vh[6:8], 20)
		binary.NativeEndian.PutUint16(vh[8:10], 16)
		b := buf[p.start-vnetHdrLen : p.end]
		r, _, errno = unix.Syscall(unix.SYS_WRITE, uintptr(x.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	case !x.vnet:
		b := buf[p.start:p.end]
		r, _, errno = unix.Syscall(unix.SYS_WRITE, uintptr(x.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	case !p.gro || p.segs == 1:
		// The virtio_net_hdr goes where the outer header was.
		vh := buf[p.start-vnetHdrLen : p.start]
		clear(vh)
		if p.gro {
			vh[0] = vnetFDataValid // classify verified the checksum
		}
		b := buf[p.start-vnetHdrLen : p.end]
		r, _, errno = unix.Syscall(unix.SYS_WRITE, uintptr(x.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	default:
		in := buf[p.start:]
		vh := buf[p.start-vnetHdrLen : p.start]
		vh[0] = vnetFNeedsCsum
		vh[1] = vnetGSOTCPv4
		binary.NativeEndian.PutUint16(vh[2:4], uint16(p.hl))
		binary.NativeEndian.PutUint16(vh[4:6], uint16(p.plen))
		binary.NativeEndian.PutUint16(vh[6:8], 20)
		binary.NativeEndian.PutUint16(vh[8:10], 16)
		binary.BigEndian.PutUint16(in[2:4], uint16(p.total))
		binary.BigEndian.PutUint16(in[10:12], 0)
		binary.BigEndian.PutUint16(in[10:12], ipHeaderChecksum(in[:20]))
		if x.bufs[p.last][x.pkts[p.last].start+33]&tcpPSH != 0 {
			in[33] |= tcpPSH
		}
		// CHECKSUM_PARTIAL: the field holds the pseudo-header sum, the
		// kernel (or nobody, if the packet stays on this host) adds the rest.
		binary.BigEndian.PutUint16(in[36:38], sum16(nil, pseudoSum(in, unix.IPPROTO_TCP, p.total-20)))
		k := 0
		x.wiov[k].Base = &buf[p.start-vnetHdrLen]
		x.wiov[k].SetLen(vnetHdrLen + p.end - p.start)
		k++
		for j := p.next; j >= 0; j = x.pkts[j].next {
			q := &x.pkts[j]
			x.wiov[k].Base = &x.bufs[j][q.start+q.hl]
			x.wiov[k].SetLen(q.plen)
			k++
		}
		r, _, errno = unix.Syscall(unix.SYS_WRITEV, uintptr(x.fd), uintptr(unsafe.Pointer(&x.wiov[0])), uintptr(k))
	}
	_ = r
	x.t.tunWrites++
	if x.vnet && p.gro {
		segs = p.segs
	}
	switch errno {
	case 0:
		x.t.decapPackets += uint64(segs)
		switch {
		case x.vnet && p.agg:
			x.t.groPackets++
			x.t.decapBytes += uint64(p.plen + segs*p.hl)
		case x.vnet && p.gro && p.segs > 1:
			x.t.decapBytes += uint64(p.total + (p.segs-1)*p.hl)
		default:
			x.t.decapBytes += uint64(p.end - p.start)
		}
	case unix.EBADFD:
		return tunError("write", 0, errno)
	default:
		x.t.writeError += uint64(segs)
	}
	return nil
}
