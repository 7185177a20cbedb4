package capture

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The receive ring: a TPACKET_V3 ring the kernel fills in memory shared
// with this process, block by block. A plain packet socket costs a system
// call and a copy per packet and queues at most its receive buffer (a
// measurement here lost 22% of a 13 Gbit/s TCP stream that way); the ring
// is read without system calls, is as large as asked, and the kernel hands
// over a whole block at a time.
const (
	// ringBlockSize is one block. A packet must fit in a block (a longer
	// one is cut to it, its length still told), and a block is handed
	// over when full or after ringTimeout, so smaller blocks waste less
	// of the ring when traffic is slow.
	ringBlockSize = 256 << 10
	// ringFrameSize only has to pass the kernel's checks in V3, where
	// packets are packed in a block back to back.
	ringFrameSize = 2048
	// ringTimeout (ms) hands over a block that is not full yet, which is
	// how long a lone packet may wait before a reader sees it.
	ringTimeout = 4
	// tpacket3HdrLen is TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): the
	// sockaddr_ll describing the packet follows the header there.
	tpacket3HdrLen = 48
	// blockHeaderOff is where struct tpacket_hdr_v1 starts in a block,
	// after tpacket_block_desc's version and offset_to_priv.
	blockHeaderOff = 8
)

// ringHold is how long a packet can sit in the block the kernel is
// filling: the timer only retires a block it saw open at its previous tick.
const ringHold = 2 * ringTimeout * time.Millisecond

// A packet is stamped when the stack queues it for a CPU and written to the
// ring when that CPU gets to it. Two CPUs draining their queues write in the
// order they get there, so a packet can reach a ring after packets stamped
// later than it: by a millisecond on a quiet machine, by a hundred on one
// busy with other work. A Group measures this staleness as it reads and
// waits as long before it trusts that nothing earlier can come.
const (
	baseStaleness = 100 * time.Millisecond
	maxStaleness  = time.Second
)

type ring struct {
	mem    []byte
	blocks int
	cur    atomic.Int64 // the next block to read; stored before the block is handed back
}

// setupRing switches the socket to TPACKET_V3, asks for a ring of about
// size bytes and maps it. It must come before bind, so that no packet goes
// to the socket's plain queue.
func setupRing(fd, size int) (*ring, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("use TPACKET_V3: %w", err)
	}
	blocks := max(size/ringBlockSize, 4)
	req := unix.TpacketReq3{
		Block_size:     ringBlockSize,
		Block_nr:       uint32(blocks),
		Frame_size:     ringFrameSize,
		Frame_nr:       uint32(blocks * ringBlockSize / ringFrameSize),
		Retire_blk_tov: ringTimeout,
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("set up a %d MiB receive ring: %w", blocks*ringBlockSize>>20, err)
	}
	mem, err := unix.Mmap(fd, 0, blocks*ringBlockSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map the receive ring: %w", err)
	}
	return &ring{mem: mem, blocks: blocks}, nil
}

func (r *ring) unmap() {
	if r.mem != nil {
		_ = unix.Munmap(r.mem)
		r.mem = nil
	}
}

func (r *ring) blockHeader(k int64) *unix.TpacketHdrV1 {
	off := int(k%int64(r.blocks))*ringBlockSize + blockHeaderOff
	return (*unix.TpacketHdrV1)(unsafe.Pointer(&r.mem[off]))
}

// status reads a block's status as the kernel last published it.
func status(h *unix.TpacketHdrV1) uint32 { return atomic.LoadUint32(&h.Block_status) }

// ready says whether the next block belongs to this process.
func (r *ring) ready() bool {
	return status(r.blockHeader(r.cur.Load()))&unix.TP_STATUS_USER != 0
}

// low says how early a packet this ring has not handed over yet can be
// stamped: up to stale before the first packet of a block that is ready,
// or before now less ringHold when the kernel still holds everything. It
// may run while the ring's reader works; it reads only what the reader
// does not change until it moves on to the next block.
func (r *ring) low(now time.Time, stale time.Duration) time.Time {
	for {
		k := r.cur.Load()
		h := r.blockHeader(k)
		var first time.Time
		ready := status(h)&unix.TP_STATUS_USER != 0
		if ready && h.Num_pkts > 0 {
			base := int(k%int64(r.blocks)) * ringBlockSize
			off := base + int(h.Offset_to_first_pkt)
			if off+int(unsafe.Sizeof(unix.Tpacket3Hdr{})) <= base+ringBlockSize {
				ph := (*unix.Tpacket3Hdr)(unsafe.Pointer(&r.mem[off]))
				first = time.Unix(int64(ph.Sec), int64(ph.Nsec))
			}
		}
		// The reader moves cur before it hands the block back, so an
		// unchanged cur means the block was ours through both reads.
		if r.cur.Load() == k {
			if ready {
				return first.Add(-stale)
			}
			return now.Add(-ringHold - stale)
		}
	}
}

// rawPacket is one packet in a ready block, before it is copied out.
type rawPacket struct {
	time     time.Time
	data     []byte // into the ring
	length   int
	ifindex  int
	hatype   uint16
	pkttype  uint8
	vlanTCI  uint16
	vlanTPID uint16
	vlan     bool
	tpid     bool
}

// walk calls fn for every packet of the current block, which must be
// ready. A block whose layout makes no sense is an error: it means the
// ring is not what this code thinks it is.
func (r *ring) walk(fn func(rawPacket)) error {
	k := r.cur.Load()
	h := r.blockHeader(k)
	base := int(k%int64(r.blocks)) * ringBlockSize
	end := base + ringBlockSize
	off := base + int(h.Offset_to_first_pkt)
	for i := uint32(0); i < h.Num_pkts; i++ {
		if off < base || off+tpacket3HdrLen+unix.SizeofSockaddrLinklayer > end {
			return errBadBlock
		}
		ph := (*unix.Tpacket3Hdr)(unsafe.Pointer(&r.mem[off]))
		sll := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&r.mem[off+tpacket3HdrLen]))
		start := off + int(ph.Mac)
		if start+int(ph.Snaplen) > end {
			return errBadBlock
		}
		fn(rawPacket{
			time:     time.Unix(int64(ph.Sec), int64(ph.Nsec)),
			data:     r.mem[start : start+int(ph.Snaplen)],
			length:   int(ph.Len),
			ifindex:  int(sll.Ifindex),
			hatype:   sll.Hatype,
			pkttype:  sll.Pkttype,
			vlanTCI:  uint16(ph.Hv1.Vlan_tci),
			vlanTPID: ph.Hv1.Vlan_tpid,
			vlan:     ph.Status&unix.TP_STATUS_VLAN_VALID != 0,
			tpid:     ph.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0,
		})
		if ph.Next_offset == 0 {
			break
		}
		off += int(ph.Next_offset)
	}
	return nil
}

var errBadBlock = errors.New("receive ring: a block's layout is damaged")

// release hands the current block back to the kernel and moves on.
func (r *ring) release() {
	k := r.cur.Load()
	h := r.blockHeader(k)
	r.cur.Store(k + 1)
	atomic.StoreUint32(&h.Block_status, unix.TP_STATUS_KERNEL)
}

// socketError returns a pending error on the socket, such as ENETDOWN when
// its interface went away: the ring never fills again then, and poll only
// says so with POLLERR.
func socketError(fd int) error {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return os.NewSyscallError("getsockopt SO_ERROR", err)
	}
	if v != 0 {
		return unix.Errno(v)
	}
	return nil
}
