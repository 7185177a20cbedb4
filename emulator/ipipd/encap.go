package ipipd

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	outerLen = 20 // the outer IPv4 header we send: no options, like ip_tunnel
	// encapReads is how many TUN reads one batch takes at most. With
	// offload each can be a 64 KiB super-packet.
	encapReads = 32
	// encapMsgs bounds one sendmmsg (the kernel caps vlen at UIO_MAXIOV).
	encapMsgs = 1024
	// segSlot holds the headers of one segment cut from a super-packet:
	// outer IPv4 + inner IPv4 (with options) + TCP (with options).
	segSlot = outerLen + 60 + 60 + 4

	ipDF = 0x40 // in the high byte of frag_off
	ipMF = 0x20
)

// encapper serves one TUN queue: it reads packets, wraps them and sends them.
// All its buffers are allocated once.
type encapper struct {
	d       *Datapath
	q       int
	readOff int // where a read lands in a buffer: the packet starts at outerLen
	vnet    bool

	bufs [encapReads][]byte
	lens [encapReads]int

	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec // two per message: headers, payload
	addrs []unix.RawSockaddrInet4
	sizes []int // inner bytes per message, for the counters
	hdrs  []byte
	n     int // messages pending

	id uint16
	t  tally
}

func newEncapper(d *Datapath, q int, vnet bool) *encapper {
	e := &encapper{
		d:     d,
		q:     q,
		vnet:  vnet,
		msgs:  make([]unix.Mmsghdr, encapMsgs),
		iovs:  make([]unix.Iovec, 2*encapMsgs),
		addrs: make([]unix.RawSockaddrInet4, encapMsgs),
		sizes: make([]int, encapMsgs),
		hdrs:  make([]byte, segSlot*encapMsgs),
		id:    uint16(q) << 12,
	}
	e.readOff = outerLen
	if e.vnet {
		e.readOff = outerLen - vnetHdrLen
	}
	for i := range e.bufs {
		e.bufs[i] = make([]byte, outerLen+maxPacket)
	}
	for i := range e.msgs {
		e.addrs[i].Family = unix.AF_INET
		h := &e.msgs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&e.addrs[i]))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &e.iovs[2*i]
	}
	return e
}

func (d *Datapath) encapLoop(q int) error {
	e := newEncapper(d, q, d.tun.vnet)
	rc, err := d.tun.queues[q].SyscallConn()
	if err != nil {
		return tunError("read", q, err)
	}
	for {
		n := 0
		var rerr syscall.Errno
		err := rc.Read(func(fd uintptr) bool {
			for n < encapReads {
				b := e.bufs[n][e.readOff:]
				r, _, errno := unix.Syscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
				switch errno {
				case 0:
					e.lens[n] = int(r)
					n++
					continue
				case unix.EINTR:
					continue
				case unix.EAGAIN:
					return n > 0
				}
				rerr = errno
				return true
			}
			return true
		})
		if d.stopping.Load() {
			return nil
		}
		if err != nil {
			// The poller reports a detached queue as EPOLLERR ("not
			// pollable"); a read tells why (EBADFD: the device is gone).
			b := e.bufs[0][e.readOff:]
			if _, _, errno := unix.Syscall(unix.SYS_READ, uintptr(d.tun.fds[q]), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b))); errno != 0 && errno != unix.EAGAIN {
				err = errno
			}
			return tunError("read", q, err)
		}
		e.t.tunReads += uint64(n)
		t := d.routes.Load()
		for i := range n {
			if err := e.packet(t, e.bufs[i], e.lens[i]); err != nil {
				return err
			}
		}
		if err := e.flush(); err != nil {
			return err
		}
		e.t.flush(&d.ctr)
		if rerr != 0 {
			return tunError("read", q, rerr)
		}
	}
}

// packet handles one read of n bytes at buf[e.readOff:].
func (e *encapper) packet(t *routeTable, buf []byte, n int) error {
	var vh []byte
	if e.vnet {
		if n < vnetHdrLen {
			e.t.notIPv4++
			return nil
		}
		vh = buf[outerLen-vnetHdrLen : outerLen]
		n -= vnetHdrLen
	}
	pkt := buf[outerLen : outerLen+n]
	if n < 20 || pkt[0]>>4 != 4 || int(pkt[0]&0xf)*4 < 20 || int(pkt[0]&0xf)*4 > n {
		e.t.notIPv4++
		return nil
	}
	// A TUN device never learns the next hop the FIB chose; look the route
	// up again. The kernel's lookup had more inputs (policy rules, other
	// tables): we follow Config.Table only.
	dst := binary.BigEndian.Uint32(pkt[16:20])
	nh, ok := t.lookup(dst)
	if !ok {
		e.t.noRoute++
		return nil
	}
	if nh.loop {
		e.t.loop++
		return nil
	}
	outer := nh.gw
	if outer == 0 {
		outer = dst
	}
	if vh != nil {
		flags, gsoType := vh[0], vh[1]
		if gsoType&^vnetGSOECN == vnetGSOTCPv4 {
			gsoSize := int(binary.NativeEndian.Uint16(vh[4:6]))
			return e.segment(pkt, gsoSize, outer)
		}
		if gsoType != vnetGSONone {
			e.t.notIPv4++ // we never offered other GSO types
			return nil
		}
		if flags&vnetFNeedsCsum != 0 {
			start := int(binary.NativeEndian.Uint16(vh[6:8]))
			off := int(binary.NativeEndian.Uint16(vh[8:10]))
			if !completeChecksum(pkt, start, off) {
				e.t.notIPv4++
				return nil
			}
		}
	}
	if e.n == encapMsgs {
		if err := e.flush(); err != nil {
			return err
		}
	}
	e.outerHeader(buf[:outerLen], pkt, outer)
	e.add(buf[:outerLen+n], nil, outer, n)
	return nil
}

// completeChecksum does what skb_checksum_help does for a CHECKSUM_PARTIAL
// packet: the field at start+off holds the pseudo-header sum, the rest is
// ours to add.
func completeChecksum(pkt []byte, start, off int) bool {
	if start+off+2 > len(pkt) || start > len(pkt) {
		return false
	}
	c := ^sum16(pkt[start:], 0)
	if c == 0 {
		c = 0xffff // CSUM_MANGLED_0: zero means "no checksum" to UDP
	}
	binary.BigEndian.PutUint16(pkt[start+off:], c)
	return true
}

// outerHeader writes the header ip_tunnel_xmit would put in front of inner
// on the kernel's tunl0 (see the package comment). Total length, checksum
// and source address are left zero for the kernel to fill in.
func (e *encapper) outerHeader(h, inner []byte, dst uint32) {
	e.id++
	if e.id == 0 {
		e.id = 1 // zero would ask the kernel for an ID, or none at all with DF
	}
	tos := inner[1]
	ecn := tos & 3
	if ecn == 3 {
		ecn = 2 // INET_ECN_encapsulate: CE leaves as ECT(0)
	}
	h[0] = 0x45
	h[1] = ecn
	h[2], h[3] = 0, 0
	binary.BigEndian.PutUint16(h[4:6], e.id)
	h[6] = inner[6] & ipDF
	h[7] = 0
	h[8] = inner[8]
	h[9] = unix.IPPROTO_IPIP
	h[10], h[11] = 0, 0
	h[12], h[13], h[14], h[15] = 0, 0, 0, 0
	binary.BigEndian.PutUint32(h[16:20], dst)
}

// add queues one message of up to two parts; the caller made room.
func (e *encapper) add(head, payload []byte, dst uint32, innerLen int) {
	i := e.n
	e.n++
	binary.BigEndian.PutUint32(e.addrs[i].Addr[:], dst)
	iov := e.iovs[2*i : 2*i+2]
	iov[0].Base = &head[0]
	iov[0].SetLen(len(head))
	h := &e.msgs[i].Hdr
	h.Iovlen = 1
	if len(payload) > 0 {
		iov[1].Base = &payload[0]
		iov[1].SetLen(len(payload))
		h.Iovlen = 2
	}
	e.sizes[i] = innerLen
}

// segment cuts a TSO super-packet into the segments the kernel's
// tcp_gso_segment would make: the same headers on every gso-sized slice of
// payload, sequence numbers advanced, IP IDs counting up, FIN and PSH only
// on the last segment, CWR only on the first, and both checksums complete.
// Each segment goes out as two iovecs, its headers and its payload slice, so
// the payload is copied only by the kernel.
func (e *encapper) segment(pkt []byte, mss int, outer uint32) error {
	if len(pkt) < 20 || pkt[9] != unix.IPPROTO_TCP {
		e.t.notIPv4++
		return nil
	}
	ihl := int(pkt[0]&0xf) * 4
	if len(pkt) < ihl+20 {
		e.t.notIPv4++
		return nil
	}
	thl := int(pkt[ihl+12]>>4) * 4
	hl := ihl + thl
	if thl < 20 || len(pkt) < hl || mss <= 0 {
		e.t.notIPv4++
		return nil
	}
	payload := pkt[hl:]
	seq := binary.BigEndian.Uint32(pkt[ihl+4:])
	id := binary.BigEndian.Uint16(pkt[4:])
	flags := pkt[ihl+13]
	for off, i := 0, 0; off < len(payload) || i == 0; off, i = off+mss, i+1 {
		end := min(off+mss, len(payload))
		if e.n == encapMsgs {
			if err := e.flush(); err != nil {
				return err
			}
		}
		slot := e.hdrs[e.n*segSlot : e.n*segSlot+outerLen+hl]
		h := slot[outerLen:]
		copy(h, pkt[:hl])
		ip, tcp := h[:ihl], h[ihl:]
		segLen := hl + end - off
		binary.BigEndian.PutUint16(ip[2:4], uint16(segLen))
		binary.BigEndian.PutUint16(ip[4:6], id+uint16(i))
		binary.BigEndian.PutUint16(ip[10:12], 0)
		binary.BigEndian.PutUint16(ip[10:12], ipHeaderChecksum(ip))
		binary.BigEndian.PutUint32(tcp[4:8], seq+uint32(off))
		f := flags
		if end < len(payload) {
			f &^= tcpFIN | tcpPSH
		}
		if i > 0 {
			f &^= tcpCWR
		}
		tcp[13] = f
		tcp[16], tcp[17] = 0, 0
		s := sum16(tcp, pseudoSum(ip, unix.IPPROTO_TCP, thl+end-off))
		s = sum16(payload[off:end], uint32(s))
		binary.BigEndian.PutUint16(tcp[16:18], ^s)
		e.outerHeader(slot[:outerLen], ip, outer)
		e.add(slot, payload[off:end], outer, segLen)
		if end == len(payload) {
			break
		}
	}
	return nil
}

// flush sends the pending messages. A message the kernel refuses is counted
// and skipped; sendmmsg reports it by stopping there, so the next call
// starts with it.
func (e *encapper) flush() error {
	off := 0
	for off < e.n {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(e.d.sendFD),
			uintptr(unsafe.Pointer(&e.msgs[off])), uintptr(e.n-off), 0, 0, 0)
		e.t.sendCalls++
		switch errno {
		case 0:
			for _, s := range e.sizes[off : off+int(r)] {
				e.t.encapBytes += uint64(s)
			}
			e.t.encapPackets += uint64(r)
			off += int(r)
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.ENOBUFS:
			// The send buffer is full of packets a real NIC has not sent
			// yet; wait like a blocking socket would.
			if e.d.stopping.Load() {
				e.n = 0
				return nil
			}
			pfd := []unix.PollFd{{Fd: int32(e.d.sendFD), Events: unix.POLLOUT}}
			_, _ = unix.Poll(pfd, 100)
			continue
		case unix.EMSGSIZE:
			// The kernel's tunl0 would fragment the outer packet or, with
			// DF, send ICMP "fragmentation needed"; the TUN MTU (underlay
			// MTU - 20) keeps inner packets small enough that this
			// happens only if the MTUs are misconfigured.
			e.t.tooBig++
		case unix.EBADF, unix.ENOTSOCK, unix.EFAULT:
			e.n = 0
			return fmt.Errorf("send on raw IPIP socket: %w", errno)
		default:
			e.t.sendError++
		}
		off++
	}
	e.n = 0
	return nil
}
