package trace

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/probe"
)

// Place is a namespace the trace captures in, named for people.
type Place struct {
	Name string `json:"name"` // the node or pod, "underlay"
	Role string `json:"role,omitempty"`
	// Namespace is the namespace's path, such as
	// netns.Path("two-node-node1").
	Namespace string `json:"namespace"`
}

// Request is a trace to run: one probe from a place to an address, watched
// from every place listed.
type Request struct {
	Lab  string `json:"lab,omitempty"`
	From Place  `json:"from"`
	// FromIP is the sender's address, when known: a probe that never
	// left still names its source with it.
	FromIP netip.Addr `json:"fromIP,omitzero"`
	// To is the destination address; ToName the node or pod it belongs
	// to, when known.
	To     netip.Addr `json:"to"`
	ToName string     `json:"toName,omitempty"`
	Probe  Probe      `json:"probe"`
	// Places are captured on every interface; From should be among them.
	Places []Place `json:"places"`
	// Timeout is how long the probe waits for its answer (default 1s).
	Timeout Duration `json:"timeout"`
	// VXLANPorts are UDP ports carrying VXLAN besides 4789 and 8472.
	VXLANPorts []uint16 `json:"vxlanPorts,omitempty"`
}

// DefaultTimeout is how long a probe waits for its answer when the request
// does not say.
const DefaultTimeout = time.Second

// Default payload sizes.
const (
	DefaultICMPSize = 56 // ping's
	DefaultUDPSize  = 32
)

// Limits of what one trace keeps in memory, whatever else the lab sends
// meanwhile.
const (
	maxPackets = 100000
	maxBytes   = 32 << 20
	// snaplen keeps a whole packet at the lab's usual MTUs, tunnel
	// headers included, so every line reads as in `labctl capture`.
	snaplen = 2048
	// ringSize is the smallest ring capture takes (four 256 KiB blocks):
	// a trace takes a handful of packets per namespace.
	ringSize = 1 << 20
)

// Settle is how long after the answer a trace keeps reading: a capture
// ring hands a block that is not full over within twice capture's 4 ms
// block timeout, and nothing else needs waiting for. Each namespace's
// capture took its copy as the packet passed, so every copy on the probe's
// way (and its answer's) was in the rings before the answer reached the
// probe's socket.
const Settle = 15 * time.Millisecond

// Recording is everything a trace saw: the packets of every namespace, what
// the probe's socket reported, the firewall counters before and after, and
// the kernel's answers to the analysis. It encodes as JSON, and Analyze
// with its Replay gives the same Journey again, without a lab.
type Recording struct {
	Request Request `json:"request"`
	// Sent is when the probe was sent.
	Sent    time.Time        `json:"sent"`
	Outcome Outcome          `json:"outcome"`
	Packets []RecordedPacket `json:"packets"`
	// Dropped counts packets the kernel or the limits above left out.
	Dropped uint64 `json:"dropped,omitempty"`
	// Firewalls holds, per namespace path with nftables rules, their
	// counters before the probe and after it.
	Firewalls map[string]*FirewallChange `json:"firewalls,omitempty"`
	Kernel    KernelAnswers              `json:"kernel"`
}

// FirewallChange is a namespace's nftables counters around the probe.
type FirewallChange struct {
	Before *Firewall `json:"before"`
	After  *Firewall `json:"after"`
}

// KernelAnswers are the answers the analysis got from the namespaces.
type KernelAnswers struct {
	Links      map[string][]Link      `json:"links"`
	Routes     []RouteAnswer          `json:"routes,omitempty"`
	Neighbours map[string][]Neighbour `json:"neighbours,omitempty"`
}

// RouteAnswer is one route lookup and its answer.
type RouteAnswer struct {
	Namespace string     `json:"namespace"`
	Query     RouteQuery `json:"query"`
	Route     Route      `json:"route"`
}

// Outcome is what the probe's own socket reported.
type Outcome struct {
	Kind string `json:"kind"` // an Answer kind
	// Err is the socket's error, if any.
	Err  string     `json:"error,omitempty"`
	From netip.Addr `json:"from,omitzero"`
	RTT  Duration   `json:"rtt,omitempty"`
	// LocalPort is the TCP or UDP probe's source port, when known;
	// EchoID the ICMP probe's identifier.
	LocalPort uint16 `json:"localPort,omitempty"`
	EchoID    uint16 `json:"echoID,omitempty"`
	// MTU is the path MTU the sender's kernel or a router named.
	MTU int `json:"mtu,omitempty"`
}

// RecordedPacket is one captured packet, as bytes.
type RecordedPacket struct {
	Time      time.Time       `json:"time"`
	Place     string          `json:"place"`
	Namespace string          `json:"namespace"`
	Interface string          `json:"interface"`
	Type      uint8           `json:"type"` // capture.PacketType
	LinkType  layers.LinkType `json:"linkType"`
	Length    int             `json:"length"`
	Data      []byte          `json:"data"`
}

// packet decodes a recorded packet as its capture did.
func (r RecordedPacket) packet(vxlanPorts []uint16) capture.Packet {
	p := capture.Decode(r.Data, r.LinkType, vxlanPorts...)
	p.Time, p.Label, p.Namespace, p.Interface = r.Time, r.Place, r.Namespace, r.Interface
	p.Type, p.Length = capture.PacketType(r.Type), r.Length
	return p
}

// Run sends the request's probe while capturing in every place, then
// follows it: Record, then Analyze with the live kernel.
func Run(ctx context.Context, req Request) (*Journey, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	// The analysis asks each namespace through a netlink socket of its
	// own; opening them while the probe travels saves the time after.
	k := LiveKernel(&Recording{})
	defer k.Close()
	warm := make(chan struct{})
	go func() {
		defer close(warm)
		k.open(req.Places)
	}()
	rec, err := Record(ctx, req)
	<-warm
	if err != nil {
		return nil, err
	}
	k.rec = rec
	return Analyze(rec, k), nil
}

// Check fills in the request's defaults and refuses what cannot be traced.
func (req *Request) Check() error {
	if req.From.Namespace == "" {
		return errors.New("trace: no place to send from")
	}
	if !req.To.Is4() {
		return fmt.Errorf("trace: %s is not an IPv4 address (labs are IPv4)", req.To)
	}
	if req.Timeout <= 0 {
		req.Timeout = Duration(DefaultTimeout)
	}
	p := &req.Probe
	switch p.Protocol {
	case "", ICMP:
		p.Protocol = ICMP
		if p.Size == 0 {
			p.Size = DefaultICMPSize
		}
		if p.Port != 0 {
			return errors.New("trace: an ICMP probe has no port")
		}
	case TCP, UDP:
		if p.Port == 0 {
			return fmt.Errorf("trace: a %s probe needs a port", p.Protocol)
		}
		if p.DontFragment {
			return fmt.Errorf("trace: %s probes set DF anyway; dontFragment is for ICMP", p.Protocol)
		}
		if p.Protocol == UDP && p.Size == 0 {
			p.Size = DefaultUDPSize
		}
		if p.Protocol == TCP && p.Size != 0 {
			return errors.New("trace: a TCP probe is a bare SYN; it has no size")
		}
	default:
		return fmt.Errorf("trace: unknown protocol %q (icmp, tcp or udp)", p.Protocol)
	}
	if p.Size < 0 || p.Size > 65507 {
		return fmt.Errorf("trace: size %d is outside 0..65507", p.Size)
	}
	if !slices.ContainsFunc(req.Places, func(pl Place) bool { return pl.Namespace == req.From.Namespace }) {
		req.Places = append([]Place{req.From}, req.Places...)
	}
	return nil
}

// Record captures on every interface of every place, sends the probe,
// waits for its answer (or the timeout) and returns what it all saw.
func Record(ctx context.Context, req Request) (*Recording, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	rec := &Recording{
		Request:   req,
		Firewalls: map[string]*FirewallChange{},
		Kernel:    KernelAnswers{Links: map[string][]Link{}, Neighbours: map[string][]Neighbour{}},
	}
	caps, err := openAll(req)
	// Closing waits for the kernel (see closeAll): the recording does not.
	defer func() { go closeAll(caps) }()
	if err != nil {
		return nil, err
	}

	// One reader per capture, each keeping its packets in ring order.
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	got := make([][]capture.Packet, len(caps))
	var budget struct {
		sync.Mutex
		packets, bytes int
		over           uint64
	}
	var wg sync.WaitGroup
	for i, c := range caps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				p, err := c.Next(readCtx)
				if err != nil {
					return
				}
				budget.Lock()
				if budget.packets >= maxPackets || budget.bytes+len(p.Data) > maxBytes {
					budget.over++
					budget.Unlock()
					continue
				}
				budget.packets++
				budget.bytes += len(p.Data)
				budget.Unlock()
				got[i] = append(got[i], p)
			}
		}()
	}

	before := readFirewalls(req.Places)
	rec.Sent = time.Now()
	out, err := send(ctx, req)
	if err != nil {
		return nil, err
	}
	rec.Outcome = out
	if out.Kind != AnswerNotSent {
		select {
		case <-time.After(Settle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// What the readers have not taken yet, Ready still holds.
	stopReading()
	wg.Wait()
	for i, c := range caps {
		rest, err := c.Ready()
		if err != nil && !errors.Is(err, capture.ErrClosed) {
			return nil, fmt.Errorf("trace: capture in %s: %w", c.Label(), err)
		}
		got[i] = append(got[i], rest...)
	}
	after := readFirewalls(req.Places)
	for ns, b := range before {
		if a, ok := after[ns]; ok {
			rec.Firewalls[ns] = &FirewallChange{Before: b, After: a}
		}
	}
	for i, c := range caps {
		if st, err := c.Stats(); err == nil {
			rec.Dropped += st.Dropped
		}
		for _, p := range got[i] {
			rec.Packets = append(rec.Packets, RecordedPacket{
				Time: p.Time, Place: p.Label, Namespace: p.Namespace, Interface: p.Interface,
				Type: uint8(p.Type), LinkType: p.LinkType, Length: p.Length, Data: p.Data,
			})
		}
	}
	rec.Dropped += budget.over
	// One ring per namespace keeps each namespace's packets in the order
	// they passed (a bridge and its port stamp a frame alike); across
	// namespaces their times order them.
	slices.SortStableFunc(rec.Packets, func(a, b RecordedPacket) int { return a.Time.Compare(b.Time) })
	return rec, nil
}

// openAll opens a capture in every place at once: setting up a ring waits
// for a network grace period, and in parallel those waits overlap.
func openAll(req Request) ([]*capture.Capture, error) {
	caps := make([]*capture.Capture, len(req.Places))
	errs := make([]error, len(req.Places))
	var wg sync.WaitGroup
	for i, pl := range req.Places {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Rings, not plain sockets, for their timestamps: a ring
			// stamps a packet as it passes, where a plain socket may
			// stamp it only when it is read, and the journey's order
			// across namespaces is the order of those stamps.
			caps[i], errs[i] = capture.Open(pl.Namespace, "", capture.Options{
				Snaplen: snaplen, BufferSize: ringSize, Label: pl.Name, SkipDecode: true, VXLANPorts: req.VXLANPorts,
			})
			if errs[i] != nil {
				errs[i] = fmt.Errorf("trace: capture in %s: %w", pl.Name, errs[i])
			}
		}()
	}
	wg.Wait()
	var open []*capture.Capture
	for _, c := range caps {
		if c != nil {
			open = append(open, c)
		}
	}
	return open, errors.Join(errs...)
}

// closeAll closes the captures at once. The kernel waits for network
// grace periods (synchronize_net) as it releases a packet socket with a
// ring: tens of milliseconds each on a busy machine, which in parallel
// overlap, and which Record leaves to the background so that nobody waits
// for them to see a journey.
func closeAll(caps []*capture.Capture) {
	var wg sync.WaitGroup
	for _, c := range caps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Close()
		}()
	}
	wg.Wait()
}

// readFirewalls reads the nftables counters of every place at once; places
// without rules, or whose rules cannot be read, are left out.
func readFirewalls(places []Place) map[string]*Firewall {
	out := map[string]*Firewall{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, pl := range places {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fw, err := readFirewall(pl.Namespace)
			if err != nil || (len(fw.Rules) == 0 && len(fw.Dropping) == 0) {
				return
			}
			mu.Lock()
			out[pl.Namespace] = fw
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// send sends the probe and waits for its answer. An error means the probe
// could not run at all (or ctx ended); every answer, none included, is an
// Outcome.
func send(ctx context.Context, req Request) (Outcome, error) {
	timeout := time.Duration(req.Timeout)
	switch req.Probe.Protocol {
	case TCP:
		return sendTCP(ctx, req, timeout)
	case UDP:
		return sendUDP(ctx, req, timeout)
	}
	res, err := probe.Ping(ctx, req.From.Namespace, req.To, probe.PingOptions{
		Count: 1, Timeout: timeout, Size: req.Probe.Size, DontFragment: req.Probe.DontFragment,
	})
	out := Outcome{EchoID: res.ID}
	if len(res.Echoes) == 0 {
		return out, fmt.Errorf("trace: %w", err)
	}
	e := res.Echoes[0]
	var ie *probe.ICMPError
	var se *probe.SendError
	switch {
	case e.Err == nil:
		out.Kind, out.From, out.RTT = AnswerReply, e.From, Duration(e.RTT)
	case errors.As(e.Err, &ie):
		out.Kind, out.From, out.RTT, out.MTU, out.Err = AnswerError, ie.From, Duration(e.RTT), ie.MTU, ie.Error()
		if ie.Type == 3 && (ie.Code == 2 || ie.Code == 3) {
			out.Kind = AnswerRefused
		}
	case errors.As(e.Err, &se):
		out.Kind, out.MTU, out.Err = AnswerNotSent, se.MTU, se.Err.Error()
	case errors.Is(e.Err, probe.ErrNoReply):
		out.Kind = AnswerNone
	default:
		return out, fmt.Errorf("trace: %w", e.Err)
	}
	return out, nil
}

func sendTCP(ctx context.Context, req Request, timeout time.Duration) (Outcome, error) {
	var out Outcome
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dst := netip.AddrPortFrom(req.To, req.Probe.Port)
	start := time.Now()
	c, err := probe.DialTCP(dctx, req.From.Namespace, dst.String())
	rtt := time.Since(start)
	switch {
	case err == nil:
		out.Kind, out.From, out.RTT = AnswerReply, req.To, Duration(rtt)
		if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
			out.LocalPort = ap.Port()
		}
		// A probe has nothing to say: reset the connection rather than
		// leave the server a request-less one and both sides TIME_WAIT.
		_ = c.SetLinger(0)
		c.Close()
	case ctx.Err() != nil:
		return out, ctx.Err()
	case errors.Is(err, syscall.ECONNREFUSED):
		out.Kind, out.From, out.RTT, out.Err = AnswerRefused, req.To, Duration(rtt), err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		out.Kind = AnswerNone
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.EACCES),
		errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EMSGSIZE):
		// Either the local kernel refused the SYN or an ICMP error came
		// back; the capture tells which.
		out.Kind, out.RTT, out.Err = AnswerError, Duration(rtt), err.Error()
	default:
		return out, fmt.Errorf("trace: %w", err)
	}
	return out, nil
}

func sendUDP(ctx context.Context, req Request, timeout time.Duration) (Outcome, error) {
	var out Outcome
	dst := netip.AddrPortFrom(req.To, req.Probe.Port)
	c, err := probe.DialUDP(req.From.Namespace, dst.String())
	if err != nil {
		if errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.EACCES) {
			out.Kind, out.Err = AnswerNotSent, err.Error()
			return out, nil
		}
		return out, fmt.Errorf("trace: %w", err)
	}
	defer c.Close()
	if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		out.LocalPort = ap.Port()
	}
	payload := make([]byte, req.Probe.Size)
	copy(payload, "labctl trace ")
	if len(payload) > 13 {
		_, _ = rand.Read(payload[13:])
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	start := time.Now()
	if err := c.SetReadDeadline(start.Add(timeout)); err != nil {
		return out, err
	}
	if _, err := c.Write(payload); err != nil {
		out.Kind, out.Err = AnswerNotSent, err.Error()
		return out, nil
	}
	buf := make([]byte, 65536)
	_, err = c.Read(buf)
	rtt := time.Since(start)
	switch {
	case err == nil:
		out.Kind, out.From, out.RTT = AnswerReply, req.To, Duration(rtt)
	case ctx.Err() != nil:
		return out, ctx.Err()
	case errors.Is(err, syscall.ECONNREFUSED):
		out.Kind, out.From, out.RTT, out.Err = AnswerRefused, req.To, Duration(rtt), err.Error()
	case isTimeout(err):
		out.Kind = AnswerNone
	default:
		out.Kind, out.RTT, out.Err = AnswerError, Duration(rtt), err.Error()
	}
	return out, nil
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// nsName is a namespace path's last element, the name `ip netns` lists.
func nsName(path string) string { return filepath.Base(path) }
