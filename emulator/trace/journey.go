package trace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Protocol is what the probe sends.
type Protocol string

const (
	ICMP Protocol = "icmp" // one echo request, as ping sends
	TCP  Protocol = "tcp"  // one connection attempt: the SYN and its answer
	UDP  Protocol = "udp"  // one datagram
)

// Probe is the one packet a trace sends.
type Probe struct {
	Protocol Protocol `json:"protocol"`
	// Port is the destination port of TCP and UDP probes.
	Port uint16 `json:"port,omitempty"`
	// Size is the ICMP payload (ping -s; default 56) or the UDP payload
	// (default 32) in bytes. TCP probes carry none.
	Size int `json:"size,omitempty"`
	// DontFragment sets DF on an ICMP probe and forbids the sender to
	// fragment it, as ping -M do does (TCP and UDP set DF anyway).
	DontFragment bool `json:"dontFragment,omitempty"`
}

func (p Probe) String() string {
	switch p.Protocol {
	case TCP:
		return fmt.Sprintf("TCP SYN to port %d", p.Port)
	case UDP:
		return fmt.Sprintf("UDP datagram to port %d, %d bytes", p.Port, p.Size)
	}
	s := fmt.Sprintf("ICMP echo, %d bytes", p.Size)
	if p.DontFragment {
		s += ", DF"
	}
	return s
}

// Journey is what a trace found: the probe's way to its destination, the
// answer's way back, and where and why either stopped. Encoded as JSON it is
// the documented shape of `labctl trace -o json` (see the package doc).
type Journey struct {
	Lab   string   `json:"lab,omitempty"`
	From  Endpoint `json:"from"`
	To    Endpoint `json:"to"`
	Probe Probe    `json:"probe"`
	// Sent is when the probe was sent.
	Sent time.Time `json:"sent"`
	// Timeout is how long the probe waited for its answer.
	Timeout Duration `json:"timeout"`
	Answer  Answer   `json:"answer"`
	// Request is the probe's journey; its Hops are empty when it was
	// never sent (Stop says why).
	Request Path `json:"request"`
	// Reply is the answer's journey, nil when nothing answered.
	Reply *Path `json:"reply,omitempty"`
	// Captured says what the trace watched.
	Captured Captured `json:"captured"`
}

// JSON encodes the journey as `labctl trace -o json` prints it, indented,
// with "<" and ">" left as they are (the packet lines hold them).
func (j *Journey) JSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err := enc.Encode(j)
	return b.Bytes(), err
}

// Endpoint is where the probe starts or what it is sent to.
type Endpoint struct {
	// Name is the node or pod, "" for an address that is neither.
	Name      string     `json:"name,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	IP        netip.Addr `json:"ip,omitzero"`
	Port      uint16     `json:"port,omitempty"`
}

func (e Endpoint) String() string {
	var s string
	switch {
	case e.Name != "" && e.IP.IsValid():
		s = fmt.Sprintf("%s (%s)", e.Name, e.IP)
	case e.Name != "":
		s = e.Name
	default:
		s = e.IP.String()
	}
	if e.Port != 0 {
		s += fmt.Sprintf(" port %d", e.Port)
	}
	return s
}

// Answer kinds.
const (
	// AnswerReply: the destination answered as asked (echo reply,
	// SYN-ACK, a datagram back).
	AnswerReply = "reply"
	// AnswerRefused: the destination got the probe but nothing serves
	// the port (TCP RST, ICMP port unreachable).
	AnswerRefused = "refused"
	// AnswerError: a router on the way sent an ICMP error (unreachable,
	// fragmentation needed, time exceeded).
	AnswerError = "error"
	// AnswerNone: nothing came back within the timeout.
	AnswerNone = "none"
	// AnswerNotSent: the sender's own kernel refused the probe (no
	// route, too large with DF).
	AnswerNotSent = "not-sent"
)

// Answer is how the probe ended, as its sender saw it.
type Answer struct {
	Kind string `json:"kind"`
	// Summary says it in words: "echo reply from 192.168.2.20".
	Summary string     `json:"summary"`
	From    netip.Addr `json:"from,omitzero"`
	// RTT is from sending the probe to its answer.
	RTT Duration `json:"rtt,omitempty"`
}

// Path is one packet's journey through the lab: the namespaces it crossed,
// in order.
type Path struct {
	// Packet is the packet as it started, tcpdump style.
	Packet string `json:"packet,omitempty"`
	Hops   []Hop  `json:"hops"`
	// Arrived says it reached its destination (for the request: a
	// namespace that owns its destination address; for the reply: the
	// sender).
	Arrived bool `json:"arrived"`
	// Stop says where and why a packet that did not arrive stopped.
	Stop *Stop `json:"stop,omitempty"`
}

// Hop actions.
const (
	ActSent      = "sent"      // the namespace sent it (the probe's sender, or the answer's)
	ActRouted    = "routed"    // the namespace routed it on (its TTL went down)
	ActSwitched  = "switched"  // a bridge of the namespace forwarded the frame
	ActDelivered = "delivered" // it reached a namespace that owns its destination
	ActStopped   = "stopped"   // it was last seen here (Path.Stop says why)
	ActLeft      = "left"      // it left and was not seen again
)

// Hop is the packet's passage through one namespace: where it came in,
// where it went out, what the namespace did to it and why.
type Hop struct {
	Place     string `json:"place"` // node, pod, "underlay"
	Role      string `json:"role,omitempty"`
	Namespace string `json:"namespace"`
	Action    string `json:"action"`
	// In is the interface it entered the namespace by, "" where it
	// started; Out the one it left by, "" where it ended. They are the
	// first and the last of Sightings (InSighting, OutSighting).
	In  string `json:"in,omitempty"`
	Out string `json:"out,omitempty"`
	// Sightings lists every interface of the namespace it was seen on,
	// in order (a bridge, a tunnel device between In and Out).
	Sightings []Sighting `json:"sightings"`
	// Bridge forwarded the frame, for ActSwitched.
	Bridge string `json:"bridge,omitempty"`
	// Route is the namespace's route for the packet's destination, looked
	// up after the probe (`ip route get`); OuterRoute the one for the
	// tunnel's outer destination, when the namespace wrapped it.
	Route      *Route `json:"route,omitempty"`
	OuterRoute *Route `json:"outerRoute,omitempty"`
	// Encapsulated is the tunnel the namespace put the packet in;
	// Decapsulated the one it took it out of.
	Encapsulated *Tunnel `json:"encapsulated,omitempty"`
	Decapsulated *Tunnel `json:"decapsulated,omitempty"`
	// NAT lists the addresses the namespace rewrote.
	NAT []Rewrite `json:"nat,omitempty"`

	ns string // the namespace's path
}

// InSighting is the packet as it came into the namespace, nil where it
// started.
func (h *Hop) InSighting() *Sighting {
	if h.In == "" || len(h.Sightings) == 0 {
		return nil
	}
	return &h.Sightings[0]
}

// OutSighting is the packet as it left the namespace, nil where it ended.
func (h *Hop) OutSighting() *Sighting {
	if h.Out == "" || len(h.Sightings) == 0 {
		return nil
	}
	return &h.Sightings[len(h.Sightings)-1]
}

// Sighting is the packet seen on one interface.
type Sighting struct {
	Time time.Time `json:"time"`
	// At is the time since the request was first seen.
	At        Duration `json:"at"`
	Interface string   `json:"interface"`
	// Direction is "in" or "out"; Type is tcpdump's marker (In, Out, P
	// for a frame to another host, B, M).
	Direction string `json:"direction"`
	Type      string `json:"type"`
	// SrcMAC and DstMAC are the outermost frame's, when it has one.
	SrcMAC string `json:"srcMAC,omitempty"`
	DstMAC string `json:"dstMAC,omitempty"`
	// The packet's own IPv4 header and ports, under any tunnel.
	Src     netip.Addr `json:"src"`
	Dst     netip.Addr `json:"dst"`
	SrcPort uint16     `json:"srcPort,omitempty"`
	DstPort uint16     `json:"dstPort,omitempty"`
	TTL     uint8      `json:"ttl"`
	IPID    uint16     `json:"ipID"`
	Length  int        `json:"length"` // IPv4 total length
	// Wire is the whole frame's length, tunnel and link headers included.
	Wire int  `json:"wire"`
	DF   bool `json:"df,omitempty"`
	// Outer is the tunnel header around it, when it travels in one.
	Outer *Tunnel `json:"outer,omitempty"`
	// Line is the whole packet as `labctl capture` prints it.
	Line string `json:"line"`
}

// Endpoints writes the packet's addresses: "192.168.1.10:40000 > 10.96.0.10:80".
func (s Sighting) Endpoints() string {
	return addrPort(s.Src, s.SrcPort) + " > " + addrPort(s.Dst, s.DstPort)
}

func addrPort(a netip.Addr, port uint16) string {
	if port == 0 {
		return a.String()
	}
	return netip.AddrPortFrom(a, port).String()
}

// Route is a route lookup's answer, in `ip route` words.
type Route struct {
	// Dst is the matching route's destination: a prefix or "default".
	Dst  string `json:"dst,omitempty"`
	Type string `json:"type,omitempty"` // unicast, local, blackhole, unreachable, prohibit, ...
	Via  string `json:"via,omitempty"`
	Dev  string `json:"dev,omitempty"`
	Src  string `json:"src,omitempty"`
	// Onlink says the gateway is on the device without a route to it
	// (flannel's VXLAN and Calico's IPIP routes).
	Onlink bool `json:"onlink,omitempty"`
	// Iif is set when the lookup was for a packet coming in on it (a
	// forwarded packet), not one the namespace sends.
	Iif string `json:"iif,omitempty"`
	// Err is why the lookup failed: there is no route.
	Err string `json:"error,omitempty"`
}

// String writes the route as `ip route` lists it.
func (r Route) String() string {
	if r.Err != "" {
		return "no route: " + r.Err
	}
	var parts []string
	if r.Type != "" && r.Type != "unicast" {
		parts = append(parts, r.Type)
	}
	parts = append(parts, r.Dst)
	if r.Via != "" {
		parts = append(parts, "via", r.Via)
	}
	if r.Dev != "" {
		parts = append(parts, "dev", r.Dev)
	}
	if r.Src != "" {
		parts = append(parts, "src", r.Src)
	}
	if r.Onlink {
		parts = append(parts, "onlink")
	}
	return strings.Join(parts, " ")
}

// Tunnel is an encapsulation: VXLAN or IPIP, with its outer addresses.
type Tunnel struct {
	Kind string `json:"kind"` // vxlan or ipip
	// Device is the tunnel device the namespace sent the packet into or
	// took it out of (flannel.1, tunl0, vxlan0), when seen.
	Device  string     `json:"device,omitempty"`
	Src     netip.Addr `json:"src"`
	Dst     netip.Addr `json:"dst"`
	VNI     uint32     `json:"vni,omitempty"`
	SrcPort uint16     `json:"srcPort,omitempty"`
	DstPort uint16     `json:"dstPort,omitempty"`
}

func (t Tunnel) String() string {
	if t.Kind == "vxlan" {
		return fmt.Sprintf("vxlan %s > %s udp %d vni %d", t.Src, t.Dst, t.DstPort, t.VNI)
	}
	return fmt.Sprintf("%s %s > %s", t.Kind, t.Src, t.Dst)
}

// Rewrite is an address (and port) the namespace changed: DNAT (the
// destination, as kube-proxy does for a service), SNAT (the source, as
// masquerade does), or conntrack turning an answer's addresses back.
type Rewrite struct {
	Kind string `json:"kind"` // dnat or snat
	From string `json:"from"`
	To   string `json:"to"`
}

func (r Rewrite) String() string {
	return fmt.Sprintf("%s %s → %s", r.Kind, r.From, r.To)
}

// Stop reasons.
const (
	ReasonNoRoute   = "no-route"    // the route lookup fails, or the route discards it
	ReasonMTU       = "mtu"         // too large for the next link, with DF set
	ReasonDropRule  = "drop-rule"   // an nftables rule dropped or rejected it
	ReasonNeighbour = "neighbour"   // the next hop never answered ARP
	ReasonNoAnswer  = "no-answer"   // it arrived; nothing answered
	ReasonTTL       = "ttl"         // its TTL ran out (a routing loop)
	ReasonNotSent   = "not-sent"    // the sender's kernel refused it
	ReasonLost      = "lost"        // it left a namespace and nothing saw it again
	ReasonUnknown   = "unknown"     // seen last here, and nothing explains why
	ReasonNotSeen   = "not-seen"    // the capture never saw it leave the sender
	ReasonUnreached = "unreachable" // a router answered "unreachable" for another reason
)

// Stop is where a packet was last seen and the likely reason it went no
// further.
type Stop struct {
	Place     string `json:"place"`
	Namespace string `json:"namespace,omitempty"`
	Interface string `json:"interface,omitempty"`
	Reason    string `json:"reason"`
	// Detail says it in a sentence a student can act on.
	Detail string `json:"detail"`
	// Evidence lists what the reason rests on: an ICMP error, ARP
	// requests without answers, a rule whose counter grew.
	Evidence []string `json:"evidence,omitempty"`
}

// Captured says what a trace captured.
type Captured struct {
	Namespaces int `json:"namespaces"`
	Packets    int `json:"packets"`
	// Dropped counts packets the kernel could not hand to the trace.
	Dropped uint64 `json:"dropped"`
}

// Duration is a time.Duration that reads as a string in JSON ("183µs").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}
