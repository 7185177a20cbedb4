package ipipd

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of the datapath for `labctl status`.
type Stats struct {
	Time    time.Time `json:"time"` // when the snapshot was taken
	Device  string    `json:"device"`
	Queues  int       `json:"queues"`  // TUN queues attached (1 when the device is not multi_queue)
	Offload bool      `json:"offload"` // TSO super-packets read from TUN, coalesced TCP written to it
	// GRO lists the underlay devices whose IPIP is steered to a receive
	// path where the kernel's GRO merges its TCP into super-packets
	// (Config.NoGRO, gro.go); Steering says what the steering did.
	GRO      []string  `json:"gro,omitempty"`
	Steering *Steering `json:"steering,omitempty"`
	Routes   []Route   `json:"routes"` // the tunl0 routes in effect

	// Encapsulated: packets read from TUN and sent as IPIP (a TSO
	// super-packet counts once per wire segment); bytes are inner bytes.
	EncapPackets uint64 `json:"encapPackets"`
	EncapBytes   uint64 `json:"encapBytes"`
	// Decapsulated: IPIP packets received and written to TUN; inner bytes.
	// A GRO super-packet counts once per segment it is cut into again.
	DecapPackets uint64 `json:"decapPackets"`
	DecapBytes   uint64 `json:"decapBytes"`
	// GROPackets counts the super-packets received from the kernel's GRO.
	GROPackets uint64 `json:"groPackets"`

	Drops Drops `json:"drops"`

	// Syscalls, to see how well batching works (packets per call).
	TUNReads  uint64 `json:"tunReads"`
	TUNWrites uint64 `json:"tunWrites"`
	SendCalls uint64 `json:"sendCalls"` // sendmmsg
	RecvCalls uint64 `json:"recvCalls"` // recvmmsg
}

// Drops counts packets the datapath discarded, by reason.
type Drops struct {
	// Read from TUN:
	NoRoute   uint64 `json:"noRoute"`   // no tunl0 route for the inner destination
	NotIPv4   uint64 `json:"notIPv4"`   // not a well-formed IPv4 packet (IPIP carries IPv4 only)
	Loop      uint64 `json:"loop"`      // gateway itself routed via tunl0 (kernel: tx collisions)
	TooBig    uint64 `json:"tooBig"`    // outer packet larger than the underlay MTU (EMSGSIZE)
	SendError uint64 `json:"sendError"` // other send errors (unreachable gateway, firewall)
	// Received on the raw socket:
	Malformed   uint64 `json:"malformed"`   // bad outer or inner IPv4 header
	UnknownPeer uint64 `json:"unknownPeer"` // outer source is not a tunnel peer
	ECN         uint64 `json:"ecn"`         // outer CE over a not-ECT inner packet (RFC 6040)
	WriteError  uint64 `json:"writeError"`  // TUN refused the inner packet (device down)
	Truncated   uint64 `json:"truncated"`   // larger than 64 KiB (GRO beyond it: gro_ipv4_max_size)
}

// Total is the number of packets dropped for any reason.
func (d Drops) Total() uint64 {
	return d.NoRoute + d.NotIPv4 + d.Loop + d.TooBig + d.SendError +
		d.Malformed + d.UnknownPeer + d.ECN + d.WriteError + d.Truncated
}

// counters are the live, shared counterparts of Stats. Packet loops tally
// into a private tally and add it here once per batch, so a packet costs no
// atomic operations.
type counters struct {
	encapPackets, encapBytes, decapPackets, decapBytes atomic.Uint64
	groPackets                                         atomic.Uint64
	noRoute, notIPv4, loop, tooBig, sendError          atomic.Uint64
	malformed, unknownPeer, ecn, writeError, truncated atomic.Uint64
	tunReads, tunWrites, sendCalls, recvCalls          atomic.Uint64
}

type tally struct {
	encapPackets, encapBytes, decapPackets, decapBytes uint64
	groPackets                                         uint64
	noRoute, notIPv4, loop, tooBig, sendError          uint64
	malformed, unknownPeer, ecn, writeError, truncated uint64
	tunReads, tunWrites, sendCalls, recvCalls          uint64
}

func add(c *atomic.Uint64, v *uint64) {
	if *v != 0 {
		c.Add(*v)
		*v = 0
	}
}

// flush moves t into c and zeroes t.
func (t *tally) flush(c *counters) {
	add(&c.encapPackets, &t.encapPackets)
	add(&c.encapBytes, &t.encapBytes)
	add(&c.decapPackets, &t.decapPackets)
	add(&c.decapBytes, &t.decapBytes)
	add(&c.groPackets, &t.groPackets)
	add(&c.noRoute, &t.noRoute)
	add(&c.notIPv4, &t.notIPv4)
	add(&c.loop, &t.loop)
	add(&c.tooBig, &t.tooBig)
	add(&c.sendError, &t.sendError)
	add(&c.malformed, &t.malformed)
	add(&c.unknownPeer, &t.unknownPeer)
	add(&c.ecn, &t.ecn)
	add(&c.writeError, &t.writeError)
	add(&c.truncated, &t.truncated)
	add(&c.tunReads, &t.tunReads)
	add(&c.tunWrites, &t.tunWrites)
	add(&c.sendCalls, &t.sendCalls)
	add(&c.recvCalls, &t.recvCalls)
}

func (c *counters) snapshot(s *Stats) {
	s.EncapPackets = c.encapPackets.Load()
	s.EncapBytes = c.encapBytes.Load()
	s.DecapPackets = c.decapPackets.Load()
	s.DecapBytes = c.decapBytes.Load()
	s.GROPackets = c.groPackets.Load()
	s.Drops = Drops{
		NoRoute:     c.noRoute.Load(),
		NotIPv4:     c.notIPv4.Load(),
		Loop:        c.loop.Load(),
		TooBig:      c.tooBig.Load(),
		SendError:   c.sendError.Load(),
		Malformed:   c.malformed.Load(),
		UnknownPeer: c.unknownPeer.Load(),
		ECN:         c.ecn.Load(),
		WriteError:  c.writeError.Load(),
		Truncated:   c.truncated.Load(),
	}
	s.TUNReads = c.tunReads.Load()
	s.TUNWrites = c.tunWrites.Load()
	s.SendCalls = c.sendCalls.Load()
	s.RecvCalls = c.recvCalls.Load()
}
