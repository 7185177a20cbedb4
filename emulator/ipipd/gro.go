package ipipd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Receive offload: letting the kernel's GRO merge the IPIP packets of a TCP
// stream on the underlay device before the raw socket sees them.
//
// Without it every wire packet costs an ip_rcv, a raw-socket delivery with a
// wake-up and a recvmmsg slot, and the datapath wakes for every few packets.
// GRO merges them after the wire, exactly as a physical NIC's driver does:
// the core IPIP offload (ipip_gro_receive, SKB_GSO_IPXIP4 in af_inet.c, not
// in the missing ipip module) merges the inner TCP segments behind one outer
// header, and the raw socket receives one super-packet of up to 64 KiB whose
// inner TCP checksum field holds the pseudo-header sum (tcp4_gro_complete).
// decap.go writes it to TUN as one TCPv4 GSO packet. The wire itself is not
// touched: packets on the underlay stay at most its MTU.
//
// A veth does GRO only on its NAPI path, and three things are needed for a
// stream to take it and merge:
//
//   - GRO on (ETHTOOL_SGRO), which also gives a veth its NAPI.
//   - Packets routed to the NAPI: veth_xmit sends a packet through it only
//     if veth_skb_is_eligible_for_gro, which is false for TCP from a peer
//     that has TSO on (the underlay's end, not ours to change) unless the
//     receiving queue has an XDP program.
//   - Batches: the sender's softirq otherwise polls the NAPI once per packet
//     (each raw send enables bottom halves again), so GRO never sees two
//     segments together. A threaded NAPI polls on its own kthread, in
//     batches, off the sending CPU, and gro_flush_timeout keeps a partly
//     merged packet across polls for a bounded time, as NIC interrupt
//     coalescing does.
//
// So the datapath turns GRO on, attaches an XDP program that passes every
// packet (XDP_PASS: it only buys the NAPI path; while it is attached veth
// also takes GSO off the peer, see veth_xdp_set) through a BPF link, and
// makes the device's NAPIs threaded with a flush timeout over generic
// netlink (netdev napi-set, Linux 6.17+). Measured on the labctl lab
// (underlay bridge, 2 CPUs), one TCP stream went from about 1.1 to 1.5
// Gbit/s, and the receiving datapath's CPU time fell by two thirds; each
// piece alone gained nothing or lost.
//
// Close undoes it all: closing the link detaches the program, GRO goes back
// to what it was, and with it off again veth deletes the NAPIs and their
// settings. A datapath that dies without Close loses the program with its
// file descriptors but leaves GRO on with a threaded NAPI until the lab is
// torn down: a valid setting that costs a kernel thread, no more (without
// the program, the stream no longer takes the NAPI path).

const (
	// groFlushTimeout bounds how long GRO may hold a partly merged packet
	// waiting for more segments of its flow: a NIC's rx-usecs. A segment
	// with PSH, a pure ACK or a non-TCP packet is never held.
	groFlushTimeout = 50 * time.Microsecond

	// netdev generic netlink family (include/uapi/linux/netdev.h).
	netdevCmdNapiGet           = 11
	netdevCmdNapiSet           = 14
	netdevANapiIfindex         = 1
	netdevANapiID              = 2
	netdevANapiGroFlushTimeout = 6
	netdevANapiThreaded        = 8

	genlHdrLen = 4 // struct genlmsghdr: cmd, version, reserved
)

// groDevice is an underlay device whose receive path the datapath tuned.
// Its sockets were opened in the datapath's namespace, so undoing works
// from any thread.
type groDevice struct {
	name    string
	ifindex int
	sock    int  // for ethtool ioctls
	groWas  bool // GRO before we turned it on
	groSet  bool // we turned it on
	link    int  // BPF link fd holding the XDP program on the device
	genl    *nlClient
	family  uint16
	before  []napiConf // NAPIs that existed before, with their settings
}

type napiConf struct {
	id       uint32
	threaded uint32
	timeout  uint64 // ns
	hasConf  bool   // the kernel reported threaded (6.17+)
}

// enableGRO sets up receive offload on the underlay device ifindex, or
// says why it cannot; the datapath works without it, only slower. It must
// run on a thread in the datapath's namespace: the BPF link and the ethtool
// socket find the device in the calling thread's namespace.
func enableGRO(ifindex int, rtnl *nlClient) (*groDevice, error) {
	name, err := ifName(ifindex)
	if err != nil {
		return nil, fmt.Errorf("ifindex %d: %w", ifindex, err)
	}
	l, err := rtnl.link(ifindex)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if l.kind != "veth" {
		// A physical NIC runs NAPI and GRO already; other virtual
		// devices are not what labctl builds.
		return nil, fmt.Errorf("%s is not a veth (kind %q)", name, l.kind)
	}
	g := &groDevice{name: name, ifindex: ifindex, link: -1, sock: -1}
	if err := g.enable(); err != nil {
		g.close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return g, nil
}

func (g *groDevice) enable() (err error) {
	if g.sock, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return fmt.Errorf("open ethtool socket: %w", err)
	}
	if g.genl, err = openNetlink(unix.NETLINK_GENERIC, "generic"); err != nil {
		return err
	}
	if g.family, err = g.genl.genlFamily("netdev"); err != nil {
		return fmt.Errorf("netdev generic netlink family: %w", err)
	}
	if g.before, err = g.napis(); err != nil {
		return err
	}
	on, err := ethtoolValue(g.sock, g.name, unix.ETHTOOL_GGRO, 0)
	if err != nil {
		return fmt.Errorf("read GRO: %w", err)
	}
	g.groWas = on != 0
	prog, err := loadXDPPass()
	if err != nil {
		return err
	}
	g.link, err = attachXDP(prog, g.ifindex)
	unix.Close(prog) // the link holds the program
	if err != nil {
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("another XDP program is attached: %w", err)
		}
		return err
	}
	if !g.groWas {
		if _, err := ethtoolValue(g.sock, g.name, unix.ETHTOOL_SGRO, 1); err != nil {
			return fmt.Errorf("turn GRO on: %w", err)
		}
		g.groSet = true
	}
	// Without threaded NAPI the merging does not pay (see above).
	n, err := g.tune()
	if err != nil {
		return fmt.Errorf("make the NAPIs threaded (Linux 6.17+): %w", err)
	}
	if n == 0 {
		return errors.New("no NAPI (device down?)")
	}
	return nil
}

// tune makes every NAPI of the device threaded with the flush timeout and
// returns how many there are. veth deletes its NAPIs when the device goes
// down and creates fresh ones when it comes up, so the datapath calls it
// again on link events; it changes only what differs.
func (g *groDevice) tune() (int, error) {
	napis, err := g.napis()
	if err != nil {
		return 0, err
	}
	for _, n := range napis {
		if n.hasConf && n.threaded == 1 && n.timeout == uint64(groFlushTimeout) {
			continue
		}
		if err := g.setNAPI(n.id, 1, uint64(groFlushTimeout)); err != nil {
			return 0, fmt.Errorf("napi %d: %w", n.id, err)
		}
	}
	return len(napis), nil
}

// close undoes enableGRO. NAPIs that existed before get their settings
// back; the ones turning GRO on brought die when it goes off again.
func (g *groDevice) close() {
	if g.link >= 0 {
		unix.Close(g.link)
		g.link = -1
	}
	if g.groSet {
		_, _ = ethtoolValue(g.sock, g.name, unix.ETHTOOL_SGRO, 0)
		g.groSet = false
	}
	if g.sock >= 0 {
		unix.Close(g.sock)
		g.sock = -1
	}
	if g.genl == nil {
		return
	}
	for _, n := range g.before {
		if n.hasConf {
			_ = g.setNAPI(n.id, n.threaded, n.timeout)
		}
	}
	g.genl.Close()
	g.genl = nil
}

func (g *groDevice) napis() ([]napiConf, error) {
	var out []napiConf
	req := appendAttrU32(nil, netdevANapiIfindex, uint32(g.ifindex))
	err := g.genl.genlRequest(g.family, netdevCmdNapiGet, unix.NLM_F_DUMP, req, func(attrs []byte) {
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
		return nil, fmt.Errorf("list NAPIs of %s: %w", g.name, err)
	}
	return out, nil
}

func (g *groDevice) setNAPI(id, threaded uint32, timeout uint64) error {
	req := appendAttrU32(nil, netdevANapiID, id)
	req = appendAttrU32(req, netdevANapiThreaded, threaded)
	req = appendAttr(req, netdevANapiGroFlushTimeout, binary.NativeEndian.AppendUint64(nil, timeout))
	return g.genl.genlRequest(g.family, netdevCmdNapiSet, unix.NLM_F_ACK, req, func([]byte) {})
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

// xdpPass is the XDP program "return XDP_PASS". It and the license live in
// globals because the kernel reads them through plain addresses in the
// load request, which a moving goroutine stack would invalidate.
var (
	xdpPass = [...]uint64{
		0x00000002_000000b7, // r0 = XDP_PASS (BPF_ALU64 | BPF_MOV | BPF_K)
		0x00000000_00000095, // exit
	}
	gplLicense = [...]byte{'G', 'P', 'L', 0}
)

// loadXDPPass loads xdpPass. BPF_F_XDP_HAS_FRAGS lets veth keep it
// attached whatever the MTU (the program never looks at the data); kernels
// before 5.18 do not know the flag and get the program without it. The
// kernel opens BPF file descriptors close-on-exec.
func loadXDPPass() (int, error) {
	attr := struct {
		progType           uint32
		insnCnt            uint32
		insns              uint64
		license            uint64
		logLevel           uint32
		logSize            uint32
		logBuf             uint64
		kernVersion        uint32
		progFlags          uint32
		progName           [unix.BPF_OBJ_NAME_LEN]byte
		progIfindex        uint32
		expectedAttachType uint32
	}{
		progType:           unix.BPF_PROG_TYPE_XDP,
		insnCnt:            uint32(len(xdpPass)),
		insns:              uint64(uintptr(unsafe.Pointer(&xdpPass[0]))),
		license:            uint64(uintptr(unsafe.Pointer(&gplLicense[0]))),
		progFlags:          unix.BPF_F_XDP_HAS_FRAGS,
		expectedAttachType: unix.BPF_XDP,
	}
	copy(attr.progName[:], "ipipd_gro")
	for {
		fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		switch {
		case errno == 0:
			return int(fd), nil
		case errno == unix.EINVAL && attr.progFlags != 0:
			attr.progFlags = 0
			continue
		case errno == unix.EINTR:
			continue
		}
		return -1, fmt.Errorf("load XDP program: %w", errno)
	}
}

// attachXDP attaches prog to the device ifindex of the calling thread's
// namespace through a BPF link, in driver mode: generic (skb) mode would
// switch GRO off (netif_elide_gro), the opposite of the point. A link,
// unlike a netlink attachment, never replaces another program and goes
// away with its file descriptor.
func attachXDP(prog, ifindex int) (int, error) {
	attr := struct {
		progFd        uint32
		targetIfindex uint32
		attachType    uint32
		flags         uint32
		_             [32]byte // the rest of the link_create union, zero
	}{
		progFd:        uint32(prog),
		targetIfindex: uint32(ifindex),
		attachType:    unix.BPF_XDP,
		flags:         unix.XDP_FLAGS_DRV_MODE,
	}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return -1, fmt.Errorf("attach XDP program: %w", errno)
	}
	return int(fd), nil
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
