package ipipd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Receive offload: letting the kernel's GRO merge the IPIP packets of a TCP
// stream before the raw socket sees them, without touching any other
// traffic of the node.
//
// Without it every wire packet costs an ip_rcv, a raw-socket delivery with a
// wake-up and a recvmmsg slot, and the datapath wakes for every few packets.
// GRO merges them, exactly as a physical NIC's driver does: the core IPIP
// offload (ipip_gro_receive, SKB_GSO_IPXIP4 in af_inet.c, not in the missing
// ipip module) merges the inner TCP segments behind one outer header, and
// the raw socket receives one super-packet of up to 64 KiB whose inner TCP
// checksum field holds the pseudo-header sum (tcp4_gro_complete). decap.go
// writes it to TUN as one TCPv4 GSO packet. The wire is not touched.
//
// A veth does GRO only on its NAPI path, and it sends a packet there only
// if the sending end has no TSO (veth_skb_is_eligible_for_gro) or the
// receiving end has an XDP program. The underlay veth's own end (in the
// underlay namespace) has TSO, and must keep it: everything else the node
// receives, host-gw and VXLAN pod traffic among it, arrives through the same
// device as 64 KiB GSO packets in one piece. An XDP program on eth0, which
// an earlier version used, makes veth take GSO off the peer (veth_xdp_set),
// so the underlay bridge cuts every packet to the MTU and pushes it through
// eth0's NAPI ring one by one. Measured with a host-gw stream into the node
// (2 CPUs): 13-15 Gbit/s untouched, and as much with GRO or a threaded
// NAPI on eth0; 2-3.5 with an XDP_PASS program alone (and the same with
// the peer's TSO taken off by hand, no program); 6.5 with XDP and GRO, GRO
// merging again what the bridge had cut; 5-6 with some 90,000
// retransmissions in 2 s once the NAPI was also threaded, because the
// 256-slot ring then overflowed (the underlay's tx_dropped).
//
// So IPIP gets a receive path of its own: a veth pair inside the node,
// <device>-rx -> <device>-gro, and a tc (TCX) ingress program on the
// underlay device (steer.go) that redirects IPv4 protocol-4 packets into
// <device>-rx and returns every other packet to the normal path untouched.
// <device>-rx has TSO off, so its packets take <device>-gro's NAPI path;
// <device>-gro has GRO on, a threaded NAPI (the redirects come from the
// underlay's softirq one packet at a time, and a NAPI polled in the same
// softirq would see one packet per poll, merging nothing) with a
// gro_flush_timeout as NIC interrupt coalescing has, and the underlay
// device's MAC address, so the frames are the host's (PACKET_HOST); a
// qdisc on <device>-rx holds packets while the ring is full, where veth
// would drop them. The kernel receives the merged packets from
// <device>-gro: the raw socket does not care which device a packet came
// in by, and the reverse-path filter, which does (the route back to a peer
// leads out of the underlay device), is loose on <device>-gro (makePair).
// A capture on the underlay device still sees the wire's packets; one on
// <device>-gro sees what GRO made of them.
//
// Close detaches the program (closing its link) and deletes the pair. A
// datapath that dies without Close loses the program with its file
// descriptors, so the underlay device is back to normal at once; the idle
// pair stays until the next datapath of the device replaces it, or the
// namespace goes.

const (
	// groFlushTimeout bounds how long GRO may hold a partly merged packet
	// waiting for more segments of its flow: a NIC's rx-usecs. A segment
	// with PSH, a pure ACK or a non-TCP packet is never held.
	groFlushTimeout = 50 * time.Microsecond

	// offloadMTU is the pair's MTU: the largest, so no packet the
	// underlay device accepted is too big for it.
	offloadMTU = 65535
	// offloadQdisc queues redirected packets on the rx end while the gro
	// end's ring is full: veth then stops the queue instead of dropping
	// (Linux 6.17+; before, it drops either way). Under a TCP stream the
	// threaded NAPI is sometimes behind by more than the ring's 256 slots.
	offloadQdisc = "pfifo_fast"
	// offloadAlias marks the pair as the datapath's (IFLA_IFALIAS), so
	// a later datapath replaces a pair a dead one left, and nothing else.
	offloadAlias = "labctl ipip datapath: receive offload for "

	vethInfoPeer = 1          // VETH_INFO_PEER, include/uapi/linux/veth.h
	sizeofTcmsg  = 20         // struct tcmsg, include/uapi/linux/rtnetlink.h
	tcHRoot      = 0xffffffff // TC_H_ROOT, include/uapi/linux/pkt_sched.h

	// netdev generic netlink family (include/uapi/linux/netdev.h).
	netdevCmdNapiGet           = 11
	netdevCmdNapiSet           = 14
	netdevANapiIfindex         = 1
	netdevANapiID              = 2
	netdevANapiGroFlushTimeout = 6
	netdevANapiThreaded        = 8

	genlHdrLen = 4 // struct genlmsghdr: cmd, version, reserved
)

// offloadAddr is the gro end's address: any address will do for the
// reverse-path filter (see makePair), and a loopback one is an address
// nothing can reach the node by: the kernel never answers ARP for it
// and drops packets to it that arrive from outside.
var offloadAddr = [4]byte{127, 0, 0, 4}

// Steering is what the receive offload of one underlay device did: the
// counts of its steering program and the losses between it and GRO.
type Steering struct {
	// Device is the underlay device the program is attached to ("eth0"),
	// Target the device the kernel receives IPIP from ("tunl0-gro").
	Device string `json:"device"`
	Target string `json:"target"`
	// Passed counts what the program left to the normal path, untouched:
	// everything but IPIP. Packets as the device received them: a GSO
	// super-packet counts once.
	PassedPackets uint64 `json:"passedPackets"`
	PassedBytes   uint64 `json:"passedBytes"`
	// Steered counts the IPIP packets sent to Target.
	SteeredPackets uint64 `json:"steeredPackets"`
	SteeredBytes   uint64 `json:"steeredBytes"`
	// Dropped counts steered packets lost before GRO: the pair's ring full
	// or a device down (the pair's tx_dropped and rx_dropped). The program
	// itself drops nothing.
	Dropped uint64 `json:"dropped"`
}

// rxOffload is the receive offload of one underlay device. Its sockets
// and BPF objects were opened in the datapath's namespace, so it works from
// any thread once set up; mu serialises its netlink conversations.
type rxOffload struct {
	under    string // the underlay device
	underIdx int
	rxName   string // the pair end IPIP is redirected into
	groName  string // the pair end with GRO, where the kernel receives it
	rxIdx    int
	groIdx   int
	cpus     int // values per key of the per-CPU counters

	mu       sync.Mutex
	rtnl     *nlClient
	genl     *nlClient
	family   uint16
	sock     int // for ethtool ioctls
	counters int // BPF map
	link     int // BPF link holding the steering program on the underlay device
	pair     bool
	last     Steering // as last read, kept for Stats after close
}

// offloadNames are the pair's names for the TUN device dev: "tunl0-rx"
// and "tunl0-gro", the prefix cut to fit IFNAMSIZ.
func offloadNames(dev string) (rx, gro string) {
	p := dev[:min(len(dev), unix.IFNAMSIZ-1-len("-gro"))]
	return p + "-rx", p + "-gro"
}

// enableOffload sets up receive offload for IPIP arriving on the underlay
// device ifindex, or says why it cannot; the datapath works without it,
// only slower. It must run on a thread in the datapath's namespace: the
// pair, its sysctls, the BPF link and the sockets belong to the namespace
// of the calling thread.
func enableOffload(dev string, ifindex int) (*rxOffload, error) {
	name, err := ifName(ifindex)
	if err != nil {
		return nil, fmt.Errorf("ifindex %d: %w", ifindex, err)
	}
	o := &rxOffload{under: name, underIdx: ifindex, sock: -1, counters: -1, link: -1}
	o.rxName, o.groName = offloadNames(dev)
	o.last = Steering{Device: name, Target: o.groName}
	if err := o.enable(dev); err != nil {
		o.close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return o, nil
}

func (o *rxOffload) enable(dev string) (err error) {
	if o.cpus, err = possibleCPUs(); err != nil {
		return err
	}
	if o.rtnl, err = openRTNL(); err != nil {
		return err
	}
	l, err := o.rtnl.link(o.underIdx)
	if err != nil {
		return err
	}
	if l.kind != "veth" {
		// A physical NIC runs NAPI and GRO already; other virtual
		// devices are not what labctl builds.
		return fmt.Errorf("not a veth (kind %q)", l.kind)
	}
	if len(l.addr) != 6 {
		return fmt.Errorf("no Ethernet address (%x)", l.addr)
	}
	if o.sock, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return fmt.Errorf("open ethtool socket: %w", err)
	}
	if o.genl, err = openNetlink(unix.NETLINK_GENERIC, "generic"); err != nil {
		return err
	}
	if o.family, err = o.genl.genlFamily("netdev"); err != nil {
		return fmt.Errorf("netdev generic netlink family: %w", err)
	}
	if err := o.makePair(dev, l.addr); err != nil {
		return err
	}
	if n, err := o.tune(); err != nil {
		return fmt.Errorf("make the NAPIs of %q threaded (Linux 6.17+): %w", o.groName, err)
	} else if n == 0 {
		return fmt.Errorf("%q has no NAPI", o.groName)
	}
	if o.counters, err = newPerCPUArray("ipipd_steer", steerValue, steerSlots); err != nil {
		return err
	}
	prog, err := steerProgram(o.counters, o.rxIdx)
	if err != nil {
		return err
	}
	fd, err := loadProgram("ipipd_steer", unix.BPF_PROG_TYPE_SCHED_CLS, unix.BPF_TCX_INGRESS, prog)
	if err != nil {
		return err
	}
	o.link, err = attachLink(fd, o.underIdx, unix.BPF_TCX_INGRESS, 0)
	unix.Close(fd) // the link holds the program
	if err != nil {
		return fmt.Errorf("tc ingress (TCX, Linux 6.6+): %w", err)
	}
	return nil
}

// makePair creates the veth pair, replacing one a dead datapath left, and
// readies it: no IPv6 (like tunl0), a queue and TSO off on the rx end;
// GRO, a loose reverse-path filter and the address offloadAddr on the gro
// end; both up.
func (o *rxOffload) makePair(dev string, mac []byte) error {
	for _, n := range []string{o.rxName, o.groName} {
		idx, err := ifIndex(n)
		if err != nil {
			continue // absent
		}
		l, err := o.rtnl.link(idx)
		if err != nil {
			return err
		}
		if l.alias != offloadAlias+dev {
			return fmt.Errorf("device %q exists and is not the datapath's (alias %q)", n, l.alias)
		}
		if err := o.rtnl.deleteLink(idx); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("delete %q, left by an earlier datapath: %w", n, err)
		}
	}
	if err := o.rtnl.newVethPair(o.rxName, o.groName, mac, offloadMTU); err != nil {
		return fmt.Errorf("create veth pair %q-%q: %w", o.rxName, o.groName, err)
	}
	o.pair = true
	var err error
	if o.rxIdx, err = ifIndex(o.rxName); err != nil {
		return err
	}
	if o.groIdx, err = ifIndex(o.groName); err != nil {
		return err
	}
	for _, idx := range []int{o.rxIdx, o.groIdx} {
		if err := o.rtnl.setAlias(idx, offloadAlias+dev); err != nil {
			return fmt.Errorf("mark the pair as ours: %w", err)
		}
	}
	for _, n := range []string{o.rxName, o.groName} {
		// Absent when IPv6 is off altogether: nothing to do then.
		if err := writeSysctl("net/ipv6/conf/"+n+"/disable_ipv6", "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	// The reverse-path filter in force is the larger of this and
	// conf/all: loose, whatever conf/all says. Loose mode accepts a packet
	// whose source is reachable through any device, but only on a device
	// with an IPv4 address (__fib_validate_source), hence offloadAddr.
	if err := writeSysctl("net/ipv4/conf/"+o.groName+"/rp_filter", "2"); err != nil {
		return err
	}
	if err := o.rtnl.addAddress(o.groIdx, offloadAddr); err != nil {
		return fmt.Errorf("add address %s to %q: %w", net.IP(offloadAddr[:]), o.groName, err)
	}
	if err := o.rtnl.addRootQdisc(o.rxIdx, offloadQdisc); err != nil {
		return fmt.Errorf("add qdisc %s to %q: %w", offloadQdisc, o.rxName, err)
	}
	if _, err := ethtoolValue(o.sock, o.rxName, unix.ETHTOOL_STSO, 0); err != nil {
		return fmt.Errorf("turn TSO off on %q: %w", o.rxName, err)
	}
	if _, err := ethtoolValue(o.sock, o.groName, unix.ETHTOOL_SGRO, 1); err != nil {
		return fmt.Errorf("turn GRO on on %q: %w", o.groName, err)
	}
	for _, idx := range []int{o.groIdx, o.rxIdx} {
		if err := o.rtnl.setUp(idx); err != nil {
			return fmt.Errorf("set the pair up: %w", err)
		}
	}
	return nil
}

// writeSysctl writes a sysctl of the calling thread's namespace.
func writeSysctl(key, value string) error {
	if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// tune makes every NAPI of the gro end threaded with the flush timeout and
// returns how many there are. veth deletes its NAPIs when the device goes
// down and creates fresh ones when it comes up, so the datapath calls it
// again on link events; it changes only what differs.
func (o *rxOffload) tune() (int, error) {
	napis, err := o.napis()
	if err != nil {
		return 0, err
	}
	for _, n := range napis {
		if n.hasConf && n.threaded == 1 && n.timeout == uint64(groFlushTimeout) {
			continue
		}
		if err := o.setNAPI(n.id, 1, uint64(groFlushTimeout)); err != nil {
			return 0, fmt.Errorf("napi %d: %w", n.id, err)
		}
	}
	return len(napis), nil
}

// check follows link events: it keeps the gro end's MAC address equal to
// the underlay device's and its NAPIs tuned, and detaches the program when
// the pair is gone (deleted by hand), so IPIP takes the normal path again
// instead of being redirected into nothing.
func (o *rxOffload) check() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.link < 0 {
		return nil
	}
	gro, err := o.rtnl.link(o.groIdx)
	if errors.Is(err, unix.ENODEV) {
		unix.Close(o.link)
		o.link, o.pair = -1, false
		return fmt.Errorf("%q is gone: receive offload is off, IPIP takes the normal path", o.groName)
	}
	if err != nil {
		return err
	}
	under, err := o.rtnl.link(o.underIdx)
	if err != nil {
		return err
	}
	if len(under.addr) == 6 && !bytes.Equal(under.addr, gro.addr) {
		if err := o.rtnl.setAddress(o.groIdx, under.addr); err != nil {
			return fmt.Errorf("follow %s's MAC address %s: %w", o.under, net.HardwareAddr(under.addr), err)
		}
	}
	_, err = o.tune()
	return err
}

// stats reads the program's counters and the pair's drops.
func (o *rxOffload) stats() Steering {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.counters < 0 || o.link < 0 {
		return o.last
	}
	if c, err := readSteerCounts(o.counters, o.cpus); err == nil {
		o.last.PassedPackets, o.last.PassedBytes = c.passedPackets, c.passedBytes
		o.last.SteeredPackets, o.last.SteeredBytes = c.steeredPackets, c.steeredBytes
	}
	rx, err := o.rtnl.link(o.rxIdx)
	if err != nil {
		return o.last
	}
	gro, err := o.rtnl.link(o.groIdx)
	if err != nil {
		return o.last
	}
	queued, err := o.rtnl.qdiscDrops(o.rxIdx)
	if err != nil {
		return o.last
	}
	o.last.Dropped = rx.txDropped + gro.rxDropped + queued
	return o.last
}

// close undoes enableOffload: the program first, so nothing is redirected
// into a pair that is going away.
func (o *rxOffload) close() {
	o.stats() // keep the final counts
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.link >= 0 {
		unix.Close(o.link)
		o.link = -1
	}
	if o.counters >= 0 {
		unix.Close(o.counters)
		o.counters = -1
	}
	if o.pair && o.rtnl != nil {
		// Deleting one end deletes both, their NAPIs and kthreads.
		_ = o.rtnl.deleteLink(o.groIdx)
		o.pair = false
	}
	if o.sock >= 0 {
		unix.Close(o.sock)
		o.sock = -1
	}
	if o.genl != nil {
		o.genl.Close()
		o.genl = nil
	}
	if o.rtnl != nil {
		o.rtnl.Close()
		o.rtnl = nil
	}
}

type napiConf struct {
	id       uint32
	threaded uint32
	timeout  uint64 // ns
	hasConf  bool   // the kernel reported threaded (6.17+)
}

func (o *rxOffload) napis() ([]napiConf, error) {
	var out []napiConf
	req := appendAttrU32(nil, netdevANapiIfindex, uint32(o.groIdx))
	err := o.genl.genlRequest(o.family, netdevCmdNapiGet, unix.NLM_F_DUMP, req, func(attrs []byte) {
		var n napiConf
		forAttrs(attrs, func(typ uint16, v []byte) {
			switch {
			case typ == netdevANapiID && len(v) == 4:
				n.id = binary.NativeEndian.Uint32(v)
			case typ == netdevANapiThreaded && len(v) >= 4:
				n.threaded, n.hasConf = binary.NativeEndian.Uint32(v), true
			case typ == netdevANapiGroFlushTimeout && len(v) == 4:
				n.timeout = uint64(binary.NativeEndian.Uint32(v))
			case typ == netdevANapiGroFlushTimeout && len(v) == 8:
				n.timeout = binary.NativeEndian.Uint64(v)
			}
		})
		if n.id != 0 {
			out = append(out, n)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list NAPIs of %s: %w", o.groName, err)
	}
	return out, nil
}

func (o *rxOffload) setNAPI(id, threaded uint32, timeout uint64) error {
	req := appendAttrU32(nil, netdevANapiID, id)
	req = appendAttrU32(req, netdevANapiThreaded, threaded)
	req = appendAttr(req, netdevANapiGroFlushTimeout, binary.NativeEndian.AppendUint64(nil, timeout))
	return o.genl.genlRequest(o.family, netdevCmdNapiSet, unix.NLM_F_ACK, req, func([]byte) {})
}

// newVethPair creates the veth pair name <-> peer in the socket's
// namespace, peer with the address mac, both with the MTU mtu and down.
func (c *nlClient) newVethPair(name, peer string, mac []byte, mtu uint32) error {
	peerInfo := make([]byte, unix.SizeofIfInfomsg)
	peerInfo = appendAttr(peerInfo, unix.IFLA_IFNAME, append([]byte(peer), 0))
	peerInfo = appendAttr(peerInfo, unix.IFLA_ADDRESS, mac)
	peerInfo = appendAttrU32(peerInfo, unix.IFLA_MTU, mtu)
	data := appendAttr(nil, vethInfoPeer, peerInfo)
	info := appendAttr(nil, unix.IFLA_INFO_KIND, []byte("veth"))
	info = appendAttr(info, unix.IFLA_INFO_DATA|unix.NLA_F_NESTED, data)
	body := make([]byte, unix.SizeofIfInfomsg)
	body = appendAttr(body, unix.IFLA_IFNAME, append([]byte(name), 0))
	body = appendAttrU32(body, unix.IFLA_MTU, mtu)
	body = appendAttr(body, unix.IFLA_LINKINFO|unix.NLA_F_NESTED, info)
	return c.request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK, body, ignoreMsg)
}

// setLink changes the device ifindex: flags under change, and attrs.
func (c *nlClient) setLink(ifindex int, flags, change uint32, attrs []byte) error {
	body := make([]byte, unix.SizeofIfInfomsg, unix.SizeofIfInfomsg+len(attrs))
	binary.NativeEndian.PutUint32(body[4:8], uint32(ifindex))
	binary.NativeEndian.PutUint32(body[8:12], flags)
	binary.NativeEndian.PutUint32(body[12:16], change)
	return c.request(unix.RTM_NEWLINK, unix.NLM_F_ACK, append(body, attrs...), ignoreMsg)
}

func (c *nlClient) setUp(ifindex int) error { return c.setLink(ifindex, unix.IFF_UP, unix.IFF_UP, nil) }

func (c *nlClient) setAlias(ifindex int, alias string) error {
	return c.setLink(ifindex, 0, 0, appendAttr(nil, unix.IFLA_IFALIAS, []byte(alias)))
}

func (c *nlClient) setAddress(ifindex int, mac []byte) error {
	return c.setLink(ifindex, 0, 0, appendAttr(nil, unix.IFLA_ADDRESS, mac))
}

func (c *nlClient) deleteLink(ifindex int) error {
	body := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(body[4:8], uint32(ifindex))
	return c.request(unix.RTM_DELLINK, unix.NLM_F_ACK, body, ignoreMsg)
}

func ignoreMsg(*syscall.NetlinkMessage) error { return nil }

// addAddress adds addr/32, scope host, to the device ifindex.
func (c *nlClient) addAddress(ifindex int, addr [4]byte) error {
	body := make([]byte, unix.SizeofIfAddrmsg)
	body[0], body[1], body[3] = unix.AF_INET, 32, unix.RT_SCOPE_HOST
	binary.NativeEndian.PutUint32(body[4:8], uint32(ifindex))
	body = appendAttr(body, unix.IFA_LOCAL, addr[:])
	body = appendAttr(body, unix.IFA_ADDRESS, addr[:])
	return c.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK, body, ignoreMsg)
}

// tcmsg builds a struct tcmsg for the device ifindex.
func tcmsg(ifindex int, parent uint32) []byte {
	body := make([]byte, sizeofTcmsg)
	body[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(body[4:8], uint32(ifindex))
	binary.NativeEndian.PutUint32(body[12:16], parent)
	return body
}

// addRootQdisc gives the device ifindex the root qdisc kind, with its
// default parameters.
func (c *nlClient) addRootQdisc(ifindex int, kind string) error {
	body := appendAttr(tcmsg(ifindex, tcHRoot), unix.TCA_KIND, append([]byte(kind), 0))
	return c.request(unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK, body, ignoreMsg)
}

// qdiscDrops sums the drops of the device ifindex's qdiscs (struct
// tc_stats in TCA_STATS: bytes u64, packets u32, drops u32, ...).
func (c *nlClient) qdiscDrops(ifindex int) (uint64, error) {
	var drops uint64
	err := c.request(unix.RTM_GETQDISC, unix.NLM_F_DUMP, tcmsg(0, 0), func(m *syscall.NetlinkMessage) error {
		if m.Header.Type != unix.RTM_NEWQDISC || len(m.Data) < sizeofTcmsg ||
			int(binary.NativeEndian.Uint32(m.Data[4:8])) != ifindex {
			return nil
		}
		forAttrs(m.Data[sizeofTcmsg:], func(typ uint16, v []byte) {
			if typ == unix.TCA_STATS && len(v) >= 16 {
				drops += uint64(binary.NativeEndian.Uint32(v[12:16]))
			}
		})
		return nil
	})
	return drops, err
}

// genlFamily resolves a generic netlink family name to its id.
func (c *nlClient) genlFamily(name string) (uint16, error) {
	req := appendAttr(nil, unix.CTRL_ATTR_FAMILY_NAME, append([]byte(name), 0))
	var id uint16
	err := c.genlRequest(unix.GENL_ID_CTRL, unix.CTRL_CMD_GETFAMILY, 0, req, func(attrs []byte) {
		forAttrs(attrs, func(typ uint16, v []byte) {
			if typ == unix.CTRL_ATTR_FAMILY_ID && len(v) >= 2 {
				id = binary.NativeEndian.Uint16(v)
			}
		})
	})
	if err == nil && id == 0 {
		err = errors.New("no family id in the answer")
	}
	return id, err
}

// genlRequest sends one generic netlink command and hands the attributes of
// every answer to onAttrs.
func (c *nlClient) genlRequest(family uint16, cmd uint8, flags uint16, attrs []byte, onAttrs func([]byte)) error {
	body := make([]byte, genlHdrLen, genlHdrLen+len(attrs))
	body[0], body[1] = cmd, 1 // version 1
	body = append(body, attrs...)
	return c.request(family, flags, body, func(m *syscall.NetlinkMessage) error {
		if len(m.Data) >= genlHdrLen {
			onAttrs(m.Data[genlHdrLen:])
		}
		return nil
	})
}

// ethtoolValue runs an ethtool command that takes or returns one value
// (struct ethtool_value) on the device name in sock's namespace.
func ethtoolValue(sock int, name string, cmd, data uint32) (uint32, error) {
	v := struct{ cmd, data uint32 }{cmd, data}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte // the rest of struct ifreq
	}
	copy(ifr.name[:unix.IFNAMSIZ-1], name)
	ifr.data = unsafe.Pointer(&v)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(sock), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return 0, errno
	}
	return v.data, nil
}

// ifName looks an interface index up in the calling thread's namespace.
func ifName(ifindex int) (string, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", err
	}
	ifr.SetUint32(uint32(ifindex))
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr); err != nil {
		return "", err
	}
	return ifr.Name(), nil
}
