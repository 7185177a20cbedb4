package ipipd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// nexthop is what a tunl0 route tells the encapsulator.
type nexthop struct {
	// gw is the outer destination (the route's RTA_GATEWAY). Zero means the
	// route has no gateway; the kernel's ip_tunnel_xmit then uses the inner
	// destination as the outer one (rt_nexthop), and so do we.
	gw uint32
	// loop marks a gateway that the kernel itself routes through tunl0: the
	// kernel drops such packets (ip_tunnel_xmit: "rt->dst.dev == dev",
	// counted as collisions) rather than encapsulating them forever.
	loop bool
}

// Route is one tunl0 route as the datapath sees it, for status output.
type Route struct {
	Dst     netip.Prefix `json:"dst"`
	Gateway netip.Addr   `json:"gateway,omitzero"` // invalid: outer destination = inner destination
	Loop    bool         `json:"loop,omitempty"`   // gateway routed via tunl0 itself: packets dropped
}

// routeTable is an immutable snapshot of the kernel's routes through the
// tunnel device, swapped atomically when the kernel's table changes, so the
// packet loops read it without locks.
type routeTable struct {
	lens   []uint8                // prefix lengths present, longest first
	byLen  [33]map[uint32]nexthop // masked destination -> next hop
	peers  map[uint32]struct{}    // every gateway: the outer sources we accept
	routes []Route
}

func mask(bits uint8) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

// lookup is the longest-prefix match the kernel's FIB did to pick tunl0; we
// repeat it to recover the route's gateway, which a TUN device never sees.
func (t *routeTable) lookup(dst uint32) (nexthop, bool) {
	for _, l := range t.lens {
		if nh, ok := t.byLen[l][dst&mask(l)]; ok {
			return nh, true
		}
	}
	return nexthop{}, false
}

// acceptPeer is Calico's sanity rule for IPIP (Felix's "Drop IPIP packets from
// non-Calico hosts", an ipset of all host IPs): only outer sources that are
// tunnel endpoints we send to. For gateway-less routes the endpoints are the
// inner destinations themselves, so any address inside such a route counts.
func (t *routeTable) acceptPeer(src uint32) bool {
	if _, ok := t.peers[src]; ok {
		return true
	}
	nh, ok := t.lookup(src)
	return ok && nh.gw == 0
}

// kernelRoute is an IPv4 unicast route parsed from a netlink message.
type kernelRoute struct {
	dst    uint32
	bits   uint8
	gw     uint32
	metric uint32
	oif    int // output device
	mtu    int // the route's mtu metric; 0 for the device's MTU
}

func buildTable(krs []kernelRoute, loops map[uint32]bool) *routeTable {
	// The kernel picks the lowest metric among routes for the same prefix.
	best := map[[2]uint32]kernelRoute{}
	for _, r := range krs {
		k := [2]uint32{r.dst & mask(r.bits), uint32(r.bits)}
		if old, ok := best[k]; !ok || r.metric < old.metric {
			best[k] = r
		}
	}
	t := &routeTable{peers: map[uint32]struct{}{}}
	for k, r := range best {
		l := uint8(k[1])
		if t.byLen[l] == nil {
			t.byLen[l] = map[uint32]nexthop{}
			t.lens = append(t.lens, l)
		}
		nh := nexthop{gw: r.gw, loop: r.gw != 0 && loops[r.gw]}
		t.byLen[l][k[0]] = nh
		if r.gw != 0 {
			t.peers[r.gw] = struct{}{}
		}
		rt := Route{Dst: netip.PrefixFrom(addr4(k[0]), int(l)), Loop: nh.loop}
		if r.gw != 0 {
			rt.Gateway = addr4(r.gw)
		}
		t.routes = append(t.routes, rt)
	}
	slices.SortFunc(t.lens, func(a, b uint8) int { return int(b) - int(a) })
	slices.SortFunc(t.routes, func(a, b Route) int {
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c
		}
		return a.Dst.Bits() - b.Dst.Bits()
	})
	return t
}

func addr4(a uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], a)
	return netip.AddrFrom4(b)
}

// nlClient asks the kernel questions over a blocking netlink socket opened
// in the datapath's namespace: route netlink for routes and links, generic
// netlink for NAPI settings (gro.go).
type nlClient struct {
	fd  int
	seq uint32
	buf []byte
}

func openRTNL() (*nlClient, error) { return openNetlink(unix.NETLINK_ROUTE, "route") }

func openNetlink(proto int, what string) (*nlClient, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("open %s netlink socket: %w", what, err)
	}
	// A wedged kernel answer must not hang the datapath forever.
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set netlink receive timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %s netlink socket: %w", what, err)
	}
	return &nlClient{fd: fd, buf: make([]byte, 1<<16)}, nil
}

func (c *nlClient) Close() error { return unix.Close(c.fd) }

var errDumpInterrupted = errors.New("dump interrupted")

// request sends one request of type typ and collects the answers; onMsg
// sees every answer that is not a netlink control message.
func (c *nlClient) request(typ, flags uint16, body []byte, onMsg func(*syscall.NetlinkMessage) error) error {
	c.seq++
	msg := make([]byte, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:4], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:6], typ)
	binary.NativeEndian.PutUint16(msg[6:8], unix.NLM_F_REQUEST|flags)
	binary.NativeEndian.PutUint32(msg[8:12], c.seq)
	copy(msg[unix.NLMSG_HDRLEN:], body)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send netlink request: %w", err)
	}
	interrupted := false
	for {
		n, _, err := unix.Recvfrom(c.fd, c.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("receive netlink answer: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(c.buf[:n])
		if err != nil {
			return fmt.Errorf("parse netlink answer: %w", err)
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Header.Seq != c.seq {
				continue // a late answer to an earlier, abandoned request
			}
			if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				if interrupted {
					return errDumpInterrupted
				}
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return errors.New("short netlink error")
				}
				if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
					return syscall.Errno(-e)
				}
				return nil
			default:
				if err := onMsg(m); err != nil {
					return err
				}
				if flags&unix.NLM_F_DUMP == 0 {
					return nil
				}
			}
		}
	}
}

// dumpRoutes lists the IPv4 unicast routes of table. A multipath route is
// listed with its next hop through ifindex if it has one, else its first.
func (c *nlClient) dumpRoutes(table uint32, ifindex int) ([]kernelRoute, error) {
	var out []kernelRoute
	body := make([]byte, unix.SizeofRtMsg)
	body[0] = unix.AF_INET
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		out = out[:0]
		err = c.request(unix.RTM_GETROUTE, unix.NLM_F_DUMP, body, func(m *syscall.NetlinkMessage) error {
			out = appendRoute(out, m, table, ifindex)
			return nil
		})
		if !errors.Is(err, errDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dump routes: %w", err)
	}
	return out, nil
}

// routeDevice asks the kernel which device it would send a packet to dst
// through (`ip route get`).
func (c *nlClient) routeDevice(dst uint32) (int, error) {
	body := make([]byte, unix.SizeofRtMsg, unix.SizeofRtMsg+8)
	body[0] = unix.AF_INET
	body[1] = 32
	attr := make([]byte, 8)
	binary.NativeEndian.PutUint16(attr[0:2], 8)
	binary.NativeEndian.PutUint16(attr[2:4], unix.RTA_DST)
	binary.BigEndian.PutUint32(attr[4:8], dst)
	body = append(body, attr...)
	oif := 0
	err := c.request(unix.RTM_GETROUTE, 0, body, func(m *syscall.NetlinkMessage) error {
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			return err
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.RTA_OIF && len(a.Value) >= 4 {
				oif = int(binary.NativeEndian.Uint32(a.Value))
			}
		}
		return nil
	})
	return oif, err
}

// link is what the datapath wants to know about a network device.
type link struct {
	flags uint32 // IFF_*
	oper  uint8  // RFC 2863 operational state (IF_OPER_*)
	kind  string // IFLA_INFO_KIND: "veth", "tun", ...; empty for a device without rtnl_link_ops
	addr  []byte // IFLA_ADDRESS
	alias string // IFLA_IFALIAS
	// From IFLA_STATS64 (struct rtnl_link_stats64).
	rxDropped, txDropped uint64
}

// link describes the device ifindex.
func (c *nlClient) link(ifindex int) (link, error) {
	var l link
	body := make([]byte, unix.SizeofIfInfomsg)
	body[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(body[4:8], uint32(ifindex))
	err := c.request(unix.RTM_GETLINK, 0, body, func(m *syscall.NetlinkMessage) error {
		if m.Header.Type != unix.RTM_NEWLINK || len(m.Data) < unix.SizeofIfInfomsg {
			return nil
		}
		l.flags = binary.NativeEndian.Uint32(m.Data[8:12])
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			return err
		}
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFLA_OPERSTATE:
				if len(a.Value) >= 1 {
					l.oper = a.Value[0]
				}
			case unix.IFLA_LINKINFO:
				forAttrs(a.Value, func(typ uint16, v []byte) {
					if typ == unix.IFLA_INFO_KIND {
						l.kind = string(bytes.TrimRight(v, "\x00"))
					}
				})
			case unix.IFLA_ADDRESS:
				l.addr = bytes.Clone(a.Value)
			case unix.IFLA_IFALIAS:
				l.alias = string(bytes.TrimRight(a.Value, "\x00"))
			case unix.IFLA_STATS64:
				// rx_packets, tx_packets, rx_bytes, tx_bytes, rx_errors,
				// tx_errors, rx_dropped, tx_dropped, ...: u64 each.
				if len(a.Value) >= 8*8 {
					l.rxDropped = binary.NativeEndian.Uint64(a.Value[6*8:])
					l.txDropped = binary.NativeEndian.Uint64(a.Value[7*8:])
				}
			}
		}
		return nil
	})
	return l, err
}

// forAttrs calls fn for each netlink attribute in b (type without the
// nested and byte-order flags).
func forAttrs(b []byte, fn func(typ uint16, v []byte)) {
	for len(b) >= unix.SizeofNlAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < unix.SizeofNlAttr || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:4])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[unix.SizeofNlAttr:l])
		b = b[min(len(b), (l+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1)):]
	}
}

// appendAttr appends a netlink attribute to b.
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	l := unix.SizeofNlAttr + len(v)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%unix.NLA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

func appendAttrU32(b []byte, typ uint16, v uint32) []byte {
	return appendAttr(b, typ, binary.NativeEndian.AppendUint32(nil, v))
}

// appendRoute adds m to out if it is an IPv4 unicast route in table.
// Multipath routes contribute their first next hop on ifindex, or else
// their first: the kernel would hash flows over them, Calico never
// installs them.
func appendRoute(out []kernelRoute, m *syscall.NetlinkMessage, table uint32, ifindex int) []kernelRoute {
	if len(m.Data) < unix.SizeofRtMsg {
		return out
	}
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
	d := m.Data
	family, dstLen, tos, rtTable, rtType := d[0], d[1], d[3], d[4], d[7]
	flags := binary.NativeEndian.Uint32(d[8:12])
	if family != unix.AF_INET || rtType != unix.RTN_UNICAST || tos != 0 ||
		flags&unix.RTM_F_CLONED != 0 || dstLen > 32 {
		return out
	}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return out
	}
	r := kernelRoute{bits: dstLen}
	tbl := uint32(rtTable)
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_TABLE:
			if len(a.Value) >= 4 {
				tbl = binary.NativeEndian.Uint32(a.Value)
			}
		case unix.RTA_DST:
			if len(a.Value) == 4 {
				r.dst = binary.BigEndian.Uint32(a.Value)
			}
		case unix.RTA_GATEWAY:
			if len(a.Value) == 4 {
				r.gw = binary.BigEndian.Uint32(a.Value)
			}
		case unix.RTA_OIF:
			if len(a.Value) >= 4 {
				r.oif = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.RTA_PRIORITY:
			if len(a.Value) >= 4 {
				r.metric = binary.NativeEndian.Uint32(a.Value)
			}
		case unix.RTA_METRICS:
			forAttrs(a.Value, func(typ uint16, v []byte) {
				if typ == unix.RTAX_MTU && len(v) >= 4 {
					r.mtu = int(binary.NativeEndian.Uint32(v))
				}
			})
		case unix.RTA_MULTIPATH:
			if gw, oif, ok := multipathHop(a.Value, ifindex); ok {
				r.gw, r.oif = gw, oif
			}
		}
	}
	if tbl != table {
		return out
	}
	r.dst &= mask(r.bits)
	return append(out, r)
}

// multipathHop returns the gateway and device of the first rtnexthop in b
// that leaves through ifindex, or else of the first one.
func multipathHop(b []byte, ifindex int) (gw uint32, oif int, ok bool) {
	for len(b) >= unix.SizeofRtNexthop {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < unix.SizeofRtNexthop || l > len(b) {
			break
		}
		idx := int(int32(binary.NativeEndian.Uint32(b[4:8])))
		var hopGW uint32
		forAttrs(b[unix.SizeofRtNexthop:l], func(typ uint16, v []byte) {
			if typ == unix.RTA_GATEWAY && len(v) == 4 {
				hopGW = binary.BigEndian.Uint32(v)
			}
		})
		if idx == ifindex {
			return hopGW, idx, true
		}
		if !ok {
			gw, oif, ok = hopGW, idx, true
		}
		b = b[min(len(b), (l+3)&^3):]
	}
	return gw, oif, ok
}

// dumpLinkMTUs returns the MTU of every device, by index.
func (c *nlClient) dumpLinkMTUs() (map[int]int, error) {
	mtus := map[int]int{}
	body := make([]byte, unix.SizeofIfInfomsg)
	body[0] = unix.AF_UNSPEC
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		clear(mtus)
		err = c.request(unix.RTM_GETLINK, unix.NLM_F_DUMP, body, func(m *syscall.NetlinkMessage) error {
			if m.Header.Type != unix.RTM_NEWLINK || len(m.Data) < unix.SizeofIfInfomsg {
				return nil
			}
			idx := int(int32(binary.NativeEndian.Uint32(m.Data[4:8])))
			forAttrs(m.Data[unix.SizeofIfInfomsg:], func(typ uint16, v []byte) {
				if typ == unix.IFLA_MTU && len(v) >= 4 {
					mtus[idx] = int(binary.NativeEndian.Uint32(v))
				}
			})
			return nil
		})
		if !errors.Is(err, errDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dump links: %w", err)
	}
	return mtus, nil
}

// mtuTable is the MTU the node's routing table puts on the way to each
// destination (the route's mtu metric, else its device's), for cutting GRO
// super-packets into segments the node can forward (decap.go).
type mtuTable struct {
	lens  []uint8
	byLen [33]map[uint32]int
}

func buildMTUTable(krs []kernelRoute, links map[int]int) *mtuTable {
	best := map[[2]uint32]kernelRoute{}
	for _, r := range krs {
		k := [2]uint32{r.dst, uint32(r.bits)}
		if old, ok := best[k]; !ok || r.metric < old.metric {
			best[k] = r
		}
	}
	t := &mtuTable{}
	for k, r := range best {
		mtu := r.mtu
		if mtu == 0 {
			mtu = links[r.oif]
		}
		if mtu == 0 {
			continue
		}
		l := uint8(k[1])
		if t.byLen[l] == nil {
			t.byLen[l] = map[uint32]int{}
			t.lens = append(t.lens, l)
		}
		t.byLen[l][k[0]] = mtu
	}
	slices.SortFunc(t.lens, func(a, b uint8) int { return int(b) - int(a) })
	return t
}

// lookup returns the MTU towards dst, 0 if no route is known.
func (t *mtuTable) lookup(dst uint32) int {
	if t == nil {
		return 0
	}
	for _, l := range t.lens {
		if mtu, ok := t.byLen[l][dst&mask(l)]; ok {
			return mtu
		}
	}
	return 0
}

// openRouteEvents subscribes to RTNLGRP_IPV4_ROUTE and RTNLGRP_LINK in the
// current namespace: route changes change the table, link changes the
// tunnel MTU and, when a device goes down and up, its NAPI settings (gro.go).
// The socket is non-blocking so the Go poller can wait on it and a deadline
// can wake it at shutdown.
func openRouteEvents() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open route event socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_LINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("subscribe to route and link events: %w", err)
	}
	return os.NewFile(uintptr(fd), "rtnetlink-events"), nil
}
