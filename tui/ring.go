package tui

import (
	"sort"

	"github.com/labctl/labctl/emulator/capture"
)

// entry is one captured packet as the list keeps it. Packets arrive raw
// (the capture does not decode them: at ten thousand a second that would
// be most of the work) and are decoded the first time a row or the detail
// pane shows them.
type entry struct {
	seq     uint64 // its number in the capture, from 1
	pkt     capture.Packet
	decoded bool
	proto   string // the PROTO column
	cls     class
	info    string // the INFO column
}

// decode fills in the headers and the row's text once.
func (e *entry) decode(vxlanPorts []uint16) {
	if e.decoded {
		return
	}
	d := capture.Decode(e.pkt.Data, e.pkt.LinkType, vxlanPorts...)
	e.pkt.Decoded, e.pkt.Headers = d.Decoded, d.Headers
	e.cls, e.proto, e.info = classify(&e.pkt.Headers), protoLabel(&e.pkt.Headers), summary(&e.pkt.Headers)
	e.decoded = true
}

// ring keeps the newest packets, at most cap of them and at most maxBytes
// of packet data: pushing more drops the oldest. Sequence numbers grow
// along it, so a packet is found by its number.
type ring struct {
	buf      []entry
	start, n int
	bytes    int
	maxBytes int
	// dropped counts packets pushed out to make room.
	dropped uint64
}

func newRing(capacity, maxBytes int) *ring {
	return &ring{buf: make([]entry, capacity), maxBytes: maxBytes}
}

func (r *ring) len() int { return r.n }

// at returns the i-th oldest entry.
func (r *ring) at(i int) *entry { return &r.buf[(r.start+i)%len(r.buf)] }

// push appends e, dropping the oldest entries while the ring is full.
func (r *ring) push(e entry) {
	for r.n > 0 && (r.n == len(r.buf) || r.bytes+len(e.pkt.Data) > r.maxBytes) {
		r.popFront()
		r.dropped++
	}
	r.buf[(r.start+r.n)%len(r.buf)] = e
	r.n++
	r.bytes += len(e.pkt.Data)
}

func (r *ring) popFront() entry {
	e := r.buf[r.start]
	r.buf[r.start] = entry{} // let the packet's memory go
	r.start = (r.start + 1) % len(r.buf)
	r.n--
	r.bytes -= len(e.pkt.Data)
	return e
}

// firstSeq is the number of the oldest packet kept, 0 when empty.
func (r *ring) firstSeq() uint64 {
	if r.n == 0 {
		return 0
	}
	return r.at(0).seq
}

// find returns the entry numbered seq, nil when it is no longer kept.
func (r *ring) find(seq uint64) *entry {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).seq >= seq })
	if i < r.n && r.at(i).seq == seq {
		return r.at(i)
	}
	return nil
}

// drain takes every entry out, oldest first.
func (r *ring) drain() []entry {
	out := make([]entry, 0, r.n)
	for r.n > 0 {
		out = append(out, r.popFront())
	}
	return out
}

// reset empties the ring and its counts.
func (r *ring) reset() {
	for r.n > 0 {
		r.popFront()
	}
	r.start, r.bytes, r.dropped = 0, 0, 0
}
