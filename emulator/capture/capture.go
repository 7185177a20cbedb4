// Package capture records and decodes packets inside a lab's network
// namespaces, natively in Go, so no tcpdump or libpcap is needed on the host.
//
// A Capture is an AF_PACKET socket created inside the namespace (a socket
// belongs to the namespace it was born in), so it sees exactly what tcpdump
// run with `ip netns exec` would see there, and it can then be read from any
// goroutine. Every packet comes back with its raw bytes, a gopacket decoding
// and a flattened view of the headers that matter when learning pod
// networking, including the packet inside a VXLAN or IPIP tunnel:
//
//	c, err := capture.Open(netns.Path("node2"), "eth0", capture.Options{})
//	...
//	defer c.Close()
//	p, err := c.Expect(ctx, func(p capture.Packet) bool {
//		return p.VXLAN != nil && p.VXLAN.VNI == 1 && p.Innermost().ICMP != nil
//	})
//	fmt.Println(p)
//	// eth0 In IP 10.30.45.100.41234 > 10.30.45.200.8472: VXLAN, flags [I] (0x08), vni 1: IP 192.168.1.10 > 192.168.2.20: ICMP echo request, id 1, seq 1, length 64
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
	// DefaultBufferSize is the socket receive buffer: enough for bursts of a
	// few thousand full-size frames while the reader is busy.
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
// both directions, without promiscuous mode.
type Options struct {
	// Snaplen is the most bytes kept of each packet (DefaultSnaplen if 0).
	// Packet.Length still tells the length on the wire.
	Snaplen int
	// BufferSize is the socket receive buffer in bytes (DefaultBufferSize if
	// 0). When the reader falls behind by more than this, the kernel drops
	// packets and counts them in Stats.
	BufferSize int
	// Promiscuous asks the device to pass up frames addressed to other
	// hosts. It is a reference the socket holds, not a flag set on the
	// device: the kernel drops it when the capture closes, even when the
	// process dies. With no device it applies to the interfaces that exist
	// when Open is called. (veth and bridge ports hand such frames to
	// captures anyway, marked PacketOtherHost.)
	Promiscuous bool
	// Direction keeps only incoming or only outgoing packets.
	Direction Direction
	// Filter is a classic BPF program the kernel runs on every packet before
	// queueing it (see Match for ready-made ones). Offsets in it count from
	// the start of the link-layer header, or from the network header when
	// written relative to SKF_NET_OFF as Match does. The kernel keeps as
	// many bytes as the program returns; 0 drops the packet.
	Filter []bpf.RawInstruction
	// VXLANPorts are further UDP destination ports whose payload is decoded
	// as VXLAN; 4789 (IANA) and 8472 (the Linux default) always are.
	VXLANPorts []uint16
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
	file   *os.File
	rc     syscall.RawConn // file's descriptor, for recvmsg, ioctl and getsockopt
	opts   Options
	dec    *decoder

	readMu sync.Mutex // one reader at a time owns buf, oob and the read deadline
	buf    []byte
	oob    []byte

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
		opts.BufferSize = DefaultBufferSize
	}
	prog, err := program(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}

	// Only the socket needs the namespace; everything done to it later acts
	// in the namespace it was created in, from whatever thread. The list of
	// interfaces for promiscuous mode is the exception: reading it walks the
	// namespace of the calling thread.
	fd := -1
	var promisc []int
	err = netns.Do(nsPath, func() error {
		// Protocol 0 queues nothing until bind, so no packet slips in
		// before the filter is attached.
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
	if err := setup(fd, device, opts, prog, promisc); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	// A non-blocking descriptor makes os.File use the runtime poller, so
	// reads park the goroutine, honour deadlines and end when Close runs.
	file := os.NewFile(uintptr(fd), "packet:"+device)
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return &Capture{
		ns:     nsPath,
		device: device,
		file:   file,
		rc:     rc,
		opts:   opts,
		dec:    newDecoder(opts.VXLANPorts),
		buf:    make([]byte, opts.Snaplen),
		oob:    make([]byte, 256),
		names:  map[int]string{},
		done:   make(chan struct{}),
	}, nil
}

func setup(fd int, device string, opts Options, prog []bpf.RawInstruction, promisc []int) error {
	// SO_RCVBUFFORCE passes rmem_max, which is small on most hosts; root may
	// use it, everybody else gets what SO_RCVBUF allows.
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
	ifindex := 0
	if device != "" {
		ifr, err := unix.NewIfreq(device)
		if err != nil {
			return fmt.Errorf("interface name: %w", err)
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
			return fmt.Errorf("find interface: %w", err)
		}
		ifindex = int(ifr.Uint32())
		if opts.Promiscuous {
			promisc = []int{ifindex}
		}
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

// program prefixes the caller's filter with the direction check, both run
// in the kernel so unwanted packets never cost buffer space.
func program(opts Options) ([]bpf.RawInstruction, error) {
	user := opts.Filter
	if opts.Direction == InOut {
		return user, nil
	}
	if len(user) == 0 {
		user = []bpf.RawInstruction{{Op: opRetK, K: uint32(opts.Snaplen)}}
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

// Next returns the next captured packet, waiting until one arrives, ctx is
// done (returning ctx.Err()) or the capture is closed (ErrClosed).
func (c *Capture) Next(ctx context.Context) (Packet, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	select {
	case <-c.done:
		return Packet{}, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return Packet{}, err
	}
	// A past read deadline is the only way to wake a parked read; the
	// deadline is ours alone because readMu is held.
	if err := c.file.SetReadDeadline(time.Time{}); err != nil {
		return Packet{}, c.readErr(ctx, err)
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

	p, err := c.read()
	if err != nil {
		return Packet{}, c.readErr(ctx, err)
	}
	if c.opts.Record != nil {
		if err := c.opts.Record.WritePacket(p); err != nil {
			return p, fmt.Errorf("record packet: %w", err)
		}
	}
	return p, nil
}

var longAgo = time.Unix(1, 0)

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
	return fmt.Errorf("read packet: %w", err)
}

// read receives one packet; readMu must be held.
func (c *Capture) read() (Packet, error) {
	var (
		n, oobn int
		from    unix.Sockaddr
		rerr    error
	)
	err := c.rc.Read(func(fd uintptr) bool {
		// MSG_TRUNC makes n the packet's full length even when buf is short.
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), c.buf, c.oob, unix.MSG_TRUNC)
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	})
	if err != nil {
		return Packet{}, err
	}
	if rerr != nil {
		return Packet{}, os.NewSyscallError("recvmsg", rerr)
	}
	sll, ok := from.(*unix.SockaddrLinklayer)
	if !ok {
		return Packet{}, fmt.Errorf("recvmsg: unexpected source address %T", from)
	}
	caplen := min(n, len(c.buf))
	p := Packet{
		Namespace: c.ns,
		Ifindex:   sll.Ifindex,
		Interface: c.ifname(sll.Ifindex),
		Type:      PacketType(sll.Pkttype),
		Length:    n,
		LinkType:  linkType(sll.Hatype),
	}
	var vlan *unix.TpacketAuxdata
	msgs, err := unix.ParseSocketControlMessage(c.oob[:oobn])
	if err != nil {
		return Packet{}, fmt.Errorf("parse control messages: %w", err)
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS:
			var ts unix.Timespec
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts)), m.Data)
			p.Time = time.Unix(ts.Unix())
		case m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA:
			var aux unix.TpacketAuxdata
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&aux)), unsafe.Sizeof(aux)), m.Data)
			p.Length = int(aux.Len)
			if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
				vlan = &aux
			}
		}
	}
	if p.Time.IsZero() {
		p.Time = time.Now()
	}
	data := c.buf[:caplen]
	if vlan != nil && p.LinkType == layers.LinkTypeEthernet && caplen >= 12 {
		// Put the tag back where it was on the wire, as libpcap does, so
		// the frame decodes and reads in Wireshark as it was sent.
		tpid := uint16(unix.ETH_P_8021Q)
		if vlan.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = vlan.Vlan_tpid
		}
		tagged := make([]byte, 0, caplen+4)
		tagged = append(tagged, data[:12]...)
		tagged = append(tagged, byte(tpid>>8), byte(tpid), byte(vlan.Vlan_tci>>8), byte(vlan.Vlan_tci))
		p.Data = append(tagged, data[12:]...)
		p.Length += 4
	} else {
		p.Data = append([]byte(nil), data...)
	}
	c.dec.decode(&p)
	c.statsMu.Lock()
	c.stats.Received++
	c.statsMu.Unlock()
	return p, nil
}

// ifname names an interface by index, asking the kernel through the capture
// socket itself: an ioctl on a socket works in the socket's namespace, so
// interfaces created after Open are named too.
func (c *Capture) ifname(ifindex int) string {
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
	Dropped  uint64 // lost by the kernel because the receive buffer was full
}

// Stats returns the counts since Open; after Close it returns ErrClosed.
func (c *Capture) Stats() (Stats, error) {
	var st *unix.TpacketStats
	var serr error
	if err := c.rc.Control(func(fd uintptr) {
		st, serr = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	}); err != nil {
		return Stats{}, ErrClosed
	}
	if serr != nil {
		return Stats{}, fmt.Errorf("capture statistics: %w", serr)
	}
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	// The kernel resets its counters on every read, so they add up here.
	c.stats.Dropped += uint64(st.Drops)
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
	})
	if err != nil {
		return fmt.Errorf("close capture: %w", err)
	}
	return nil
}
