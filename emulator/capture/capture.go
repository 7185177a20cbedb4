// Package capture records and decodes packets inside a lab's network
// namespaces, natively in Go, so no tcpdump or libpcap is needed on the host.
//
// A Capture is an AF_PACKET socket created inside the namespace (a socket
// belongs to the namespace it was born in), so it sees exactly what tcpdump
// run with `ip netns exec` would see there, and it can then be read from any
// goroutine. The kernel writes packets into a memory-mapped TPACKET_V3 ring
// shared with this process, so bursts of tens of megabytes are absorbed
// without loss and without a system call per packet; what it still has to
// drop when the reader falls behind is counted in Stats. Filters in
// tcpdump's language (ParseExpr) run in the kernel, before a packet costs
// ring space.
//
// Every packet comes back with its raw bytes, a gopacket decoding and a
// flattened view of the headers that matter when learning pod networking,
// including the packet inside a VXLAN or IPIP tunnel:
//
//	c, err := capture.Open(netns.Path("node2"), "eth0", capture.Options{})
//	...
//	defer c.Close()
//	p, err := c.Expect(ctx, func(p capture.Packet) bool {
//		return p.VXLAN != nil && p.VXLAN.VNI == 1 && p.Innermost().ICMP != nil
//	})
//	fmt.Println(p)
//	// eth0 In IP 10.30.45.100.41234 > 10.30.45.200.8472: VXLAN, flags [I] (0x08), vni 1: IP 192.168.1.10 > 192.168.2.20: ICMP echo request, id 1, seq 1, length 64
//
// Start captures on many interfaces of many namespaces at once and merges
// their packets in timestamp order (see Group).
package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
)

// Defaults for the zero Options.
const (
	// DefaultSnaplen keeps whole packets: with segmentation offloads on veth
	// a "packet" the stack hands down can be a 64 KiB TCP super-segment.
	DefaultSnaplen = 262144
	// DefaultRingSize is the receive ring of one capture: enough to take a
	// pod-to-pod TCP stream at full speed (over 10 Gbit/s here) without
	// loss while the reader is busy for a moment.
	DefaultRingSize = 64 << 20
	// DefaultBufferSize is the receive buffer of a plain socket
	// (Options.PlainSocket).
	DefaultBufferSize = 4 << 20
)

// ErrClosed is returned by reads on a Capture that has been closed.
var ErrClosed = errors.New("capture closed")

// Direction selects packets by which way they cross the interface.
type Direction uint8

const (
	// InOut captures packets in both directions (the zero value).
	InOut Direction = iota
	// In captures only packets the namespace receives.
	In
	// Out captures only packets the namespace sends.
	Out
)

// Options tunes a capture. The zero value captures every packet, whole, in
// both directions, without promiscuous mode, into a DefaultRingSize ring.
type Options struct {
	// Snaplen is the most bytes kept of each packet (DefaultSnaplen if 0).
	// Packet.Length still tells the length on the wire.
	Snaplen int
	// BufferSize is how much the kernel may hold for the reader: the size
	// of the receive ring (DefaultRingSize if 0), or of the receive buffer
	// of a plain socket (DefaultBufferSize if 0). When the reader falls
	// behind by more than this, the kernel drops packets and counts them
	// in Stats.
	BufferSize int
	// PlainSocket reads with one recvmsg per packet from the socket's
	// receive queue instead of a shared ring, as this package did before
	// it had rings; it is kept to measure the ring against.
	PlainSocket bool
	// Promiscuous asks the device to pass up frames addressed to other
	// hosts. It is a reference the socket holds, not a flag set on the
	// device: the kernel drops it when the capture closes, even when the
	// process dies. With no device it applies to the interfaces that exist
	// when Open is called. (veth and bridge ports hand such frames to
	// captures anyway, marked PacketOtherHost.)
	Promiscuous bool
	// Direction keeps only incoming or only outgoing packets.
	Direction Direction
	// Expr is a filter in tcpdump's language (ParseExpr), compiled for
	// the device's link type and run by the kernel; the parts that look
	// inside tunnels are decided here after the kernel kept a packet.
	Expr *Expr
	// Filter is a classic BPF program the kernel runs on every packet
	// before queueing it, for filters Expr cannot say (Match makes some).
	// Offsets in it count from the start of the link-layer header, or
	// from the network header when written relative to SKF_NET_OFF as
	// Match does. The kernel keeps as many bytes as the program returns;
	// 0 drops the packet. Set Expr or Filter, not both.
	Filter []bpf.RawInstruction
	// VXLANPorts are further UDP destination ports whose payload is decoded
	// (and matched by "inner") as VXLAN; 4789 (IANA) and 8472 (the Linux
	// default) always are.
	VXLANPorts []uint16
	// SkipDecode leaves Packet.Decoded and Headers unset, for recording at
	// high rates; Decode can decode a packet later.
	SkipDecode bool
	// Label names where the packets were seen, such as the node or pod
	// whose namespace it is. It starts every packet's line ("node1:eth0
	// In ...") and names the interface in recordings.
	Label string
	// Record, when set, receives every packet this capture returns (also
	// the ones Expect passes over), so a whole session can be opened in
	// Wireshark later. Several captures may share one writer. When a write
	// fails, Next returns the packet together with the error.
	Record *PcapngWriter
}

// Capture is a packet capture on one interface, or all interfaces, of a
// network namespace. Its methods may be called from any goroutine; reads are
// served one at a time.
type Capture struct {
	ns     string // namespace path, as given to Open
	device string // "" for every interface
	link   layers.LinkType
	file   *os.File
	rc     syscall.RawConn // file's descriptor, for recvmsg, ioctl and getsockopt
	opts   Options
	dec    *decoder
	inner  *Expr // set when Expr needs deciding here, after the kernel
	ring   *ring // nil for a plain socket

	readMu  sync.Mutex // one reader at a time owns pending, buf, oob and the read deadline
	pending []Packet   // taken from the kernel, not yet returned by Next
	buf     []byte
	oob     []byte

	namesMu sync.Mutex
	names   map[int]string // ifindex -> name, learned as packets arrive

	statsMu sync.Mutex
	stats   Stats

	errMu sync.Mutex
	err   error // why the Packets channel closed

	done      chan struct{} // closed by Close
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Open starts capturing on device inside the network namespace at nsPath
// (such as netns.Path("node1")); an empty device captures on every
// interface of the namespace, including ones created later. Packets that
// arrive before Open returns are not seen.
//
// On a bridge, capture its ports (or the whole namespace): frames the bridge
// forwards from port to port never pass the bridge's own interface, which
// only sees what the namespace itself sends and receives, and floods.
func Open(nsPath, device string, opts Options) (*Capture, error) {
	where := fmt.Sprintf("capture on %q in %q", device, nsPath)
	if device == "" {
		where = fmt.Sprintf("capture on all interfaces in %q", nsPath)
	}
	if opts.Snaplen <= 0 {
		opts.Snaplen = DefaultSnaplen
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = DefaultRingSize
		if opts.PlainSocket {
			opts.BufferSize = DefaultBufferSize
		}
	}
	if opts.Expr != nil && len(opts.Filter) > 0 {
		return nil, fmt.Errorf("%s: give a filter expression or a BPF program, not both", where)
	}

	// Only the socket needs the namespace; everything done to it later acts
	// in the namespace it was created in, from whatever thread. The list of
	// interfaces for promiscuous mode is the exception: reading it walks the
	// namespace of the calling thread.
	fd := -1
	var promisc []int
	err := netns.Do(nsPath, func() error {
		// Protocol 0 queues nothing until bind, so no packet slips in
		// before the filter and the ring are in place.
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		if opts.Promiscuous && device == "" {
			promisc, err = allIfindexes()
		}
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	c := &Capture{
		ns:     nsPath,
		device: device,
		opts:   opts,
		dec:    newDecoder(opts.VXLANPorts),
		names:  map[int]string{},
		done:   make(chan struct{}),
	}
	if opts.Expr != nil && !opts.Expr.Exact() {
		c.inner = opts.Expr
	}
	if err := c.setup(fd, promisc); err != nil {
		if c.ring != nil {
			c.ring.unmap()
		}
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	// A non-blocking descriptor makes os.File use the runtime poller, so
	// reads park the goroutine, honour deadlines and end when Close runs.
	c.file = os.NewFile(uintptr(fd), "packet:"+device)
	if c.rc, err = c.file.SyscallConn(); err != nil {
		c.file.Close()
		if c.ring != nil {
			c.ring.unmap()
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if c.ring == nil {
		c.buf = make([]byte, opts.Snaplen)
		c.oob = make([]byte, 256)
	}
	return c, nil
}

func (c *Capture) setup(fd int, promisc []int) error {
	opts := c.opts
	ifindex := 0
	c.link = 0 // every device: the filter must work on any link type
	if c.device != "" {
		ifr, err := unix.NewIfreq(c.device)
		if err != nil {
			return fmt.Errorf("interface name: %w", err)
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
			return fmt.Errorf("find interface: %w", err)
		}
		ifindex = int(ifr.Uint32())
		ifr, _ = unix.NewIfreq(c.device)
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
			return fmt.Errorf("interface type: %w", err)
		}
		c.link = linkType(ifr.Uint16()) // sa_family of the hardware address is ARPHRD_*
		if opts.Promiscuous {
			promisc = []int{ifindex}
		}
	}
	prog, err := program(opts, c.link)
	if err != nil {
		return err
	}
	if len(prog) > 0 {
		filter := make([]unix.SockFilter, len(prog))
		for i, ins := range prog {
			filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
		}
		fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
			return fmt.Errorf("attach filter: %w", err)
		}
	}
	if opts.PlainSocket {
		// SO_RCVBUFFORCE passes rmem_max, which is small on most hosts;
		// root may use it, everybody else gets what SO_RCVBUF allows.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opts.BufferSize); err != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, opts.BufferSize); err != nil {
				return fmt.Errorf("set receive buffer: %w", err)
			}
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return fmt.Errorf("enable timestamps: %w", err)
		}
		// Auxdata tells the original length and hands back VLAN tags that
		// offloading stripped from the frame.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return fmt.Errorf("enable auxdata: %w", err)
		}
	} else if c.ring, err = setupRing(fd, opts.BufferSize); err != nil {
		return err
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	for _, idx := range promisc {
		mreq := unix.PacketMreq{Ifindex: int32(idx), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fmt.Errorf("promiscuous mode on interface %d: %w", idx, err)
		}
	}
	return nil
}

// allIfindexes lists the interfaces of the calling thread's namespace.
func allIfindexes() ([]int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	idx := make([]int, len(ifs))
	for i, ifi := range ifs {
		idx[i] = ifi.Index
	}
	return idx, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// program builds the kernel filter: the direction check, then the caller's
// filter, both run in the kernel so unwanted packets never cost buffer
// space. A ring keeps whole packets unless a filter cuts them, so a short
// snaplen becomes a filter of its own there.
func program(opts Options, link layers.LinkType) ([]bpf.RawInstruction, error) {
	user := opts.Filter
	if opts.Expr != nil {
		var err error
		if user, err = opts.Expr.Program(link, opts.Snaplen, opts.VXLANPorts...); err != nil {
			return nil, err
		}
	}
	if len(user) == 0 && (opts.Direction != InOut || (!opts.PlainSocket && opts.Snaplen < DefaultSnaplen)) {
		user = []bpf.RawInstruction{{Op: opRetK, K: uint32(opts.Snaplen)}}
	}
	if opts.Direction == InOut {
		return user, nil
	}
	// Classic BPF jumps are relative, so the caller's program works
	// unchanged after a prefix that either drops or falls through into it.
	keepOut := opts.Direction == Out
	var jt, jf uint8 = 0, 1 // In: outgoing packets fall on the "ret #0"
	if keepOut {
		jt, jf = 1, 0
	}
	prefix, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: jt, SkipFalse: jf},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		return nil, fmt.Errorf("assemble direction filter: %w", err)
	}
	return append(prefix, user...), nil
}

// opRetK is the classic BPF "ret #k" opcode.
const opRetK = 0x06

// Namespace returns the namespace path the capture was opened in.
func (c *Capture) Namespace() string { return c.ns }

// Device returns the captured interface, "" for all of them.
func (c *Capture) Device() string { return c.device }

// Label returns Options.Label.
func (c *Capture) Label() string { return c.opts.Label }

// LinkType is the device's link type (Ethernet, or Raw for bare-IP devices
// such as TUN and IPIP), 0 when the capture covers every device.
func (c *Capture) LinkType() layers.LinkType { return c.link }

// Where names the capture as its packets' lines do: "node1:eth0", "eth0",
// "node1:*" for all of a namespace's interfaces.
func (c *Capture) Where() string {
	dev := c.device
	if dev == "" {
		dev = "*"
	}
	if c.opts.Label == "" {
		return dev
	}
	return c.opts.Label + ":" + dev
}

// Next returns the next captured packet, waiting until one arrives, ctx is
// done (returning ctx.Err()) or the capture is closed (ErrClosed).
func (c *Capture) Next(ctx context.Context) (Packet, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for len(c.pending) == 0 {
		batch, done, err := c.take(ctx, true)
		if err != nil {
			return Packet{}, err
		}
		done()
		c.pending = batch
	}
	p := c.pending[0]
	c.pending[0] = Packet{}
	c.pending = c.pending[1:]
	c.count(1)
	if c.opts.Record != nil {
		if err := c.opts.Record.WritePacket(p); err != nil {
			return p, fmt.Errorf("record packet: %w", err)
		}
	}
	return p, nil
}

// Ready returns, without waiting, every packet the capture holds now:
// what a read took but Next has not returned yet, and what the kernel has
// queued (with a ring: in the blocks it has handed over, which it does
// within a few milliseconds). It ends reading once the traffic of interest
// has passed: labctl trace drains its captures with it after the probe's
// answer arrived.
func (c *Capture) Ready() ([]Packet, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	out := c.pending
	c.pending = nil
	var err error
	for {
		batch, done, terr := c.take(context.Background(), false)
		if terr != nil {
			err = terr
			break
		}
		out = append(out, batch...)
		done()
		if len(batch) == 0 {
			break
		}
	}
	c.count(len(out))
	if c.opts.Record != nil {
		for _, p := range out {
			if werr := c.opts.Record.WritePacket(p); werr != nil && err == nil {
				err = fmt.Errorf("record packet: %w", werr)
			}
		}
	}
	return out, err
}

func (c *Capture) count(n int) {
	c.statsMu.Lock()
	c.stats.Received += uint64(n)
	c.statsMu.Unlock()
}

var longAgo = time.Unix(1, 0)

// take waits for the next batch of packets: a ring block's, or one from a
// plain socket together with what else it has queued (up to 64). The
// caller must hold readMu, or be the only reader, and call done once it
// has passed the packets on: a ring block goes back to the kernel then.
// With wait false it returns an empty batch instead of waiting.
func (c *Capture) take(ctx context.Context, wait bool) (batch []Packet, done func(), err error) {
	select {
	case <-c.done:
		return nil, nil, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	nothing := func() {}
	for {
		if !wait && !c.hasData() {
			return nil, nothing, nil
		}
		if c.ring != nil {
			if err := c.await(ctx); err != nil {
				return nil, nil, c.readErr(ctx, err)
			}
			batch, err = c.readBlock(batch)
			if err != nil {
				return nil, nil, err
			}
			if len(batch) > 0 {
				return batch, c.ring.release, nil
			}
			c.ring.release() // all of it failed a filter on the inner packet
			continue
		}
		// A plain socket: wait for one packet, then take what else is
		// queued without waiting.
		for len(batch) < 64 {
			p, ok, err := c.recv(ctx, len(batch) == 0)
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			if err != nil {
				return nil, nil, c.readErr(ctx, err)
			}
			if ok {
				batch = append(batch, p)
			}
		}
		if len(batch) > 0 {
			return batch, nothing, nil
		}
	}
}

// hasData says whether a read would find something without waiting.
func (c *Capture) hasData() bool {
	if c.ring != nil {
		return c.ring.ready()
	}
	var n int
	_ = c.rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n > 0
}

// await parks until the ring has a block ready, ctx ends or the capture
// closes.
func (c *Capture) await(ctx context.Context) error {
	return c.parked(ctx, func(fd int) (bool, error) {
		if c.ring.ready() {
			return true, nil
		}
		// A socket whose interface went away never fills its ring again;
		// poll says so only with POLLERR.
		err := socketError(fd)
		return err != nil, err
	})
}

// parked runs try until it reports done, parking in the runtime poller in
// between, and wakes up when ctx ends.
func (c *Capture) parked(ctx context.Context, try func(fd int) (bool, error)) error {
	// A past read deadline is the only way to wake a parked read; the
	// deadline is ours alone because only one reader runs.
	if err := c.file.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = c.file.SetReadDeadline(longAgo) // fails only once closed, when nothing waits
	})
	defer func() {
		if !stop() {
			<-fired // the next read must not inherit this cancellation
		}
	}()
	var terr error
	err := c.rc.Read(func(fd uintptr) bool {
		var done bool
		done, terr = try(int(fd))
		return done
	})
	if err != nil {
		return err
	}
	return terr
}

func (c *Capture) readErr(ctx context.Context, err error) error {
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	if errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("read packet: the interface went away (%w)", err)
	}
	return fmt.Errorf("read packet: %w", err)
}

// readBlock copies the packets of the ring's current block out, appending
// to batch.
func (c *Capture) readBlock(batch []Packet) ([]Packet, error) {
	err := c.ring.walk(func(rp rawPacket) {
		var vlan *vlanTag
		if rp.vlan {
			vlan = &vlanTag{tci: rp.vlanTCI, tpid: unix.ETH_P_8021Q}
			if rp.tpid {
				vlan.tpid = rp.vlanTPID
			}
		}
		if p, ok := c.packet(rp.time, rp.data, rp.length, rp.ifindex, rp.hatype, rp.pkttype, vlan); ok {
			batch = append(batch, p)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read packet: %w", err)
	}
	return batch, nil
}

type vlanTag struct{ tci, tpid uint16 }

// packet makes a Packet of its own out of bytes the kernel lent: copied,
// with a VLAN tag the kernel took off put back, judged by the inner part
// of the filter and decoded. ok is false when the filter drops it.
func (c *Capture) packet(ts time.Time, data []byte, length, ifindex int, hatype uint16, pkttype uint8, vlan *vlanTag) (Packet, bool) {
	link := linkType(hatype)
	data = data[:min(len(data), c.opts.Snaplen)]
	p := Packet{
		Time:      ts,
		Namespace: c.ns,
		Label:     c.opts.Label,
		Ifindex:   ifindex,
		Interface: c.ifname(ifindex),
		Type:      PacketType(pkttype),
		Length:    length,
		LinkType:  link,
	}
	if vlan != nil && link == layers.LinkTypeEthernet && len(data) >= 12 {
		// Put the tag back where it was on the wire, as libpcap does, so
		// the frame decodes and reads in Wireshark as it was sent.
		tagged := make([]byte, 0, len(data)+4)
		tagged = append(tagged, data[:12]...)
		tagged = append(tagged, byte(vlan.tpid>>8), byte(vlan.tpid), byte(vlan.tci>>8), byte(vlan.tci))
		p.Data = append(tagged, data[12:]...)
		p.Length += 4
	} else {
		p.Data = append([]byte(nil), data...)
	}
	if c.inner != nil && !c.inner.Matches(p.Data, link, c.opts.VXLANPorts...) {
		return Packet{}, false
	}
	if !c.opts.SkipDecode {
		c.dec.decode(&p)
	}
	return p, true
}

// recv receives one packet from a plain socket; without wait it returns
// EAGAIN when none is queued.
func (c *Capture) recv(ctx context.Context, wait bool) (Packet, bool, error) {
	var (
		n, oobn int
		from    unix.Sockaddr
	)
	try := func(fd int) (bool, error) {
		var err error
		// MSG_TRUNC makes n the packet's full length even when buf is short.
		n, oobn, _, from, err = unix.Recvmsg(fd, c.buf, c.oob, unix.MSG_TRUNC)
		if err == unix.EINTR || (wait && err == unix.EAGAIN) {
			return false, nil
		}
		return true, err
	}
	var err error
	if wait {
		err = c.parked(ctx, try)
	} else if cerr := c.rc.Control(func(fd uintptr) { _, err = try(int(fd)) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		return Packet{}, false, err
	}
	sll, ok := from.(*unix.SockaddrLinklayer)
	if !ok {
		return Packet{}, false, fmt.Errorf("recvmsg: unexpected source address %T", from)
	}
	var ts time.Time
	var vlan *vlanTag
	msgs, err := unix.ParseSocketControlMessage(c.oob[:oobn])
	if err != nil {
		return Packet{}, false, fmt.Errorf("parse control messages: %w", err)
	}
	length := n
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS:
			var t unix.Timespec
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&t)), unsafe.Sizeof(t)), m.Data)
			ts = time.Unix(t.Unix())
		case m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA:
			var aux unix.TpacketAuxdata
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&aux)), unsafe.Sizeof(aux)), m.Data)
			length = int(aux.Len)
			if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
				vlan = &vlanTag{tci: aux.Vlan_tci, tpid: unix.ETH_P_8021Q}
				if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
					vlan.tpid = aux.Vlan_tpid
				}
			}
		}
	}
	if ts.IsZero() {
		ts = time.Now()
	}
	p, ok := c.packet(ts, c.buf[:min(n, len(c.buf))], length, sll.Ifindex, sll.Hatype, sll.Pkttype, vlan)
	return p, ok, nil
}

// ifname names an interface by index, asking the kernel through the capture
// socket itself: an ioctl on a socket works in the socket's namespace, so
// interfaces created after Open are named too.
func (c *Capture) ifname(ifindex int) string {
	if c.device != "" {
		return c.device // a bound socket sees only its device
	}
	c.namesMu.Lock()
	defer c.namesMu.Unlock()
	if name, ok := c.names[ifindex]; ok {
		return name
	}
	name := fmt.Sprintf("if%d", ifindex)
	_ = c.rc.Control(func(fd uintptr) {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			return
		}
		ifr.SetUint32(uint32(ifindex))
		if unix.IoctlIfreq(int(fd), unix.SIOCGIFNAME, ifr) == nil {
			name = ifr.Name()
		}
	})
	c.names[ifindex] = name
	return name
}

// linkType maps an ARPHRD_* hardware type to the header the kernel puts in
// front of the packet on such a device.
func linkType(hatype uint16) layers.LinkType {
	switch hatype {
	case unix.ARPHRD_NONE, unix.ARPHRD_TUNNEL, unix.ARPHRD_TUNNEL6, unix.ARPHRD_SIT,
		unix.ARPHRD_IPGRE, unix.ARPHRD_PPP, unix.ARPHRD_RAWIP:
		// TUN devices and layer-3 tunnels carry bare IP packets.
		return layers.LinkTypeRaw
	default:
		// Ethernet, veth, bridges, vxlan and loopback (whose header is zeros).
		return layers.LinkTypeEthernet
	}
}

// Packets delivers captured packets on a channel until ctx is done, the
// capture is closed, or a read fails (then Err says why). Do not mix it with
// Next or Expect on the same Capture: each packet goes to one reader only.
func (c *Capture) Packets(ctx context.Context) <-chan Packet {
	ch := make(chan Packet)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(ch)
		for {
			p, err := c.Next(ctx)
			if err != nil {
				if !errors.Is(err, ErrClosed) && ctx.Err() == nil {
					c.errMu.Lock()
					c.err = err
					c.errMu.Unlock()
				}
				return
			}
			select {
			case ch <- p:
			case <-ctx.Done():
				return
			case <-c.done:
				return
			}
		}
	}()
	return ch
}

// Err reports the read error that closed a Packets channel, nil if the
// channel closed because its context ended or the capture was closed.
func (c *Capture) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Expect reads packets until one satisfies match and returns it. When ctx
// ends first, the error says how many packets went by and shows the last
// few, which is usually all a failing test needs to explain itself.
func (c *Capture) Expect(ctx context.Context, match func(Packet) bool) (Packet, error) {
	const keep = 5
	var seen int
	var last []string
	for {
		p, err := c.Next(ctx)
		if err != nil {
			if seen == 0 {
				return Packet{}, fmt.Errorf("expect packet: none captured: %w", err)
			}
			return Packet{}, fmt.Errorf("expect packet: none of %d captured matched (last: %s): %w",
				seen, strings.Join(last, "; "), err)
		}
		if match(p) {
			return p, nil
		}
		seen++
		if len(last) == keep {
			last = last[1:]
		}
		last = append(last, p.String())
	}
}

// Stats counts packets for a capture.
type Stats struct {
	Received uint64 // returned to the reader
	// Dropped counts packets the kernel had to throw away because the
	// ring (or a plain socket's receive buffer) was full (tp_drops).
	Dropped uint64
	// Freezes counts the times the ring filled up and the kernel began
	// dropping (tp_freeze_q_cnt); 0 for a plain socket.
	Freezes uint64
}

// Stats returns the counts since Open; after Close it returns ErrClosed.
func (c *Capture) Stats() (Stats, error) {
	var drops, freezes uint32
	var serr error
	if err := c.rc.Control(func(fd uintptr) {
		if c.ring != nil {
			var st *unix.TpacketStatsV3
			if st, serr = unix.GetsockoptTpacketStatsV3(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); serr == nil {
				drops, freezes = st.Drops, st.Freeze_q_cnt
			}
			return
		}
		var st *unix.TpacketStats
		if st, serr = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); serr == nil {
			drops = st.Drops
		}
	}); err != nil {
		return Stats{}, ErrClosed
	}
	if serr != nil {
		return Stats{}, fmt.Errorf("capture statistics: %w", serr)
	}
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	// The kernel resets its counters on every read, so they add up here.
	c.stats.Dropped += uint64(drops)
	c.stats.Freezes += uint64(freezes)
	return c.stats, nil
}

// Close stops the capture. Reads waiting in Next, Expect or Packets return
// at once, and when Close returns no goroutine of the capture is left and
// nothing more is written to Options.Record.
func (c *Capture) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		err = c.file.Close()
		// Taking the read lock waits out a Next that already had its
		// packet in hand and may still be recording it.
		c.readMu.Lock()
		//lint:ignore SA2001 the empty section is the point: a barrier
		c.readMu.Unlock()
		c.wg.Wait()
		// Nothing reads the ring any more.
		if c.ring != nil {
			c.ring.unmap()
		}
	})
	if err != nil {
		return fmt.Errorf("close capture: %w", err)
	}
	return nil
}
