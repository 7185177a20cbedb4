package trace

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/labctl/labctl/emulator/capture"
)

// analysis follows the probe through a recording.
type analysis struct {
	rec    *Recording
	k      Kernel
	obs    []*obs
	places map[string]Place // by namespace path
	t0     time.Time        // the request's first sighting
}

// Analyze follows the recorded probe from namespace to namespace: which
// packets were the probe and which its answer (whatever NAT and tunnels
// did to them), what each namespace did to them and why, and where a
// packet that did not arrive stopped. Kernel answers the route, interface
// and neighbour lookups: LiveKernel on a running lab, Replay for a saved
// recording.
func Analyze(rec *Recording, k Kernel) *Journey {
	req := rec.Request
	a := &analysis{rec: rec, k: k, places: map[string]Place{}}
	for _, pl := range req.Places {
		a.places[pl.Namespace] = pl
	}
	for i, rp := range rec.Packets {
		pl, ok := a.places[rp.Namespace]
		if !ok {
			pl = Place{Name: rp.Place, Namespace: rp.Namespace}
		}
		a.obs = append(a.obs, newObs(i, rp.packet(req.VXLANPorts), pl))
	}
	j := &Journey{
		Lab:      req.Lab,
		From:     Endpoint{Name: req.From.Name, Namespace: nsName(req.From.Namespace), IP: req.FromIP},
		To:       Endpoint{Name: req.ToName, IP: req.To, Port: req.Probe.Port},
		Probe:    req.Probe,
		Sent:     rec.Sent,
		Timeout:  req.Timeout,
		Captured: Captured{Namespaces: len(req.Places), Packets: len(rec.Packets), Dropped: rec.Dropped},
	}

	origin := a.origin()
	if origin == nil {
		j.Request = a.notSent()
		j.Answer = a.answer(nil, nil)
		if j.Answer.Kind == AnswerNotSent {
			j.Request.Stop.Reason = ReasonNotSent
		}
		return j
	}
	j.From.IP = origin.inner.IPv4.Src
	a.t0 = origin.pkt.Time
	request := a.same(origin)
	j.Request = a.path(request, origin, nil)
	reply := a.reply(origin, request)
	if reply != nil {
		replyObs := a.same(reply)
		p := a.path(replyObs, reply, j.Request.Hops)
		j.Reply = &p
	}
	j.Answer = a.answer(reply, request)
	a.judge(j, request, reply)
	if rep := j.Reply; rep != nil && rep.Arrived {
		// NAT on the way: the sender sees the answer come from another
		// address than the one that sent it.
		first := rep.Hops[0].Sightings[0]
		hops := rep.Hops[len(rep.Hops)-1].Sightings
		last := hops[len(hops)-1]
		if first.Src != last.Src || first.SrcPort != last.SrcPort {
			j.Answer.Summary += ", seen by the sender as from " + addrPort(last.Src, last.SrcPort)
		}
	}
	if rep := j.Reply; rep != nil && !rep.Arrived && rep.Stop != nil {
		// The destination answered, but the answer was lost on its way
		// back: a reply to an address nothing routes back to, such as a
		// pod's that was not masqueraded on its way out of the cluster.
		j.Answer.Summary += fmt.Sprintf(", which never came back: it stopped in %s (%s)", rep.Stop.Place, rep.Stop.Reason)
	}
	if j.Answer.RTT > 0 && j.Answer.Kind != AnswerNone && j.Answer.Kind != AnswerNotSent {
		j.Answer.Summary += " in " + ms(time.Duration(j.Answer.RTT))
	}
	return j
}

// origin finds the probe as it left its sender.
func (a *analysis) origin() *obs {
	req, out := a.rec.Request, a.rec.Outcome
	earliest := a.rec.Sent.Add(-time.Millisecond)
	for _, o := range a.obs {
		if o.place.Namespace != req.From.Namespace || !o.pkt.Type.Outgoing() || !o.ok || o.depth != 0 || o.pkt.Time.Before(earliest) {
			continue
		}
		h := o.inner
		switch req.Probe.Protocol {
		case ICMP:
			if h.ICMP == nil || h.ICMP.Type != capture.ICMPEchoRequest || h.ICMP.Seq != 1 {
				continue
			}
			if out.EchoID != 0 && h.ICMP.ID != out.EchoID || out.EchoID == 0 && h.IPv4.Dst != req.To {
				continue
			}
		case TCP:
			if h.TCP == nil || h.TCP.Flags&(capture.TCPSyn|capture.TCPAck) != capture.TCPSyn {
				continue
			}
			if !a.ours(h.IPv4.Dst, h.TCP.SrcPort, h.TCP.DstPort) {
				continue
			}
		case UDP:
			if h.UDP == nil || !a.ours(h.IPv4.Dst, h.UDP.SrcPort, h.UDP.DstPort) {
				continue
			}
		}
		return o
	}
	return nil
}

// ours tells the probe's TCP or UDP packet by its ports; without a known
// source port, by its destination.
func (a *analysis) ours(dst netip.Addr, sport, dport uint16) bool {
	req, out := a.rec.Request, a.rec.Outcome
	if out.LocalPort != 0 {
		return sport == out.LocalPort && (dport == req.Probe.Port || dst != req.To)
	}
	return dst == req.To && dport == req.Probe.Port
}

// same collects every sighting of the packet o is, in order: by time across
// namespaces, in capture order within one.
func (a *analysis) same(o *obs) []*obs {
	var out []*obs
	for _, x := range a.obs {
		if x.ok && x.sig == o.sig && !x.pkt.Time.Before(o.pkt.Time.Add(-time.Millisecond)) {
			out = append(out, x)
		}
	}
	return out
}

// reply finds the answer to the probe: the first packet after it that
// answers it at some point of its journey (a NAT may have changed its
// addresses anywhere), or an ICMP error about it.
func (a *analysis) reply(origin *obs, request []*obs) *obs {
	tuples := map[tuple]bool{}
	var seqAck uint32
	for _, o := range request {
		tuples[o.tuple()] = true
	}
	if t := origin.inner.TCP; t != nil {
		seqAck = t.Seq + 1
	}
	isRequest := map[*obs]bool{}
	for _, o := range request {
		isRequest[o] = true
	}
	for _, x := range a.obs {
		if !x.ok || isRequest[x] || x.pkt.Time.Before(origin.pkt.Time) {
			continue
		}
		h := x.inner
		if isError(h.ICMP) {
			for t := range tuples {
				if quotes(h.ICMP.Quoted, t) {
					return x
				}
			}
			continue
		}
		if !tuples[x.tuple().reversed()] {
			continue
		}
		switch a.rec.Request.Probe.Protocol {
		case ICMP:
			if h.ICMP != nil && h.ICMP.Type == capture.ICMPEchoReply && x.echo == origin.echo {
				return x
			}
		case TCP:
			if h.TCP != nil && h.TCP.Ack == seqAck && h.TCP.Flags&(capture.TCPSyn|capture.TCPRst) != 0 {
				return x
			}
		case UDP:
			if h.UDP != nil {
				return x
			}
		}
	}
	return nil
}

// path turns a packet's sightings into hops: one per namespace it crossed,
// in order. request is the request's hops when this is the reply.
func (a *analysis) path(sightings []*obs, first *obs, request []Hop) Path {
	p := Path{Packet: first.inner.String(), Hops: []Hop{}}
	var groups [][]*obs
	for _, o := range sightings {
		if n := len(groups); n > 0 && groups[n-1][0].place.Namespace == o.place.Namespace {
			groups[n-1] = append(groups[n-1], o)
			continue
		}
		groups = append(groups, []*obs{o})
	}
	for i, g := range groups {
		slices.SortStableFunc(g, func(x, y *obs) int { return x.idx - y.idx })
		p.Hops = append(p.Hops, a.hop(g, i == 0, request))
	}
	// Rewrites between namespaces: nothing on a cable changes addresses,
	// but a namespace whose own sighting was missed would.
	for i := 1; i < len(p.Hops); i++ {
		prev, h := p.Hops[i-1].OutSighting(), &p.Hops[i]
		if in := h.InSighting(); prev != nil && in != nil {
			h.NAT = append(rewrites(*prev, *in), h.NAT...)
		}
	}
	return p
}

// hop describes the packet's passage through one namespace.
func (a *analysis) hop(g []*obs, first bool, request []Hop) Hop {
	pl := g[0].place
	h := Hop{Place: pl.Name, Role: pl.Role, Namespace: nsName(pl.Namespace), ns: pl.Namespace}
	for _, o := range g {
		h.Sightings = append(h.Sightings, a.sighting(o))
	}
	in, out := g[0], g[len(g)-1]
	if in.pkt.Type.Outgoing() {
		in = nil
	} else {
		h.In = in.pkt.Interface
	}
	if out.pkt.Type.Outgoing() {
		h.Out = out.pkt.Interface
	} else {
		out = nil
	}
	links := a.links(pl.Namespace)
	last := g[len(g)-1]
	// A frame that came in on a bridge port and never showed on the
	// bridge's own interface was forwarded at layer 2: the namespace's IP
	// layer never saw it.
	if in != nil {
		if m := links[in.pkt.Interface].Master; m != "" && !slices.ContainsFunc(g, func(o *obs) bool { return o.pkt.Interface == m }) {
			h.Bridge = m
		}
	}
	switch {
	case in == nil && out == nil:
		h.Action = ActStopped // sent to itself (lo): judged delivered below
	case in == nil:
		h.Action = ActSent
	case out == nil:
		h.Action = ActStopped // until judged delivered
	case out.inner.IPv4.TTL < in.inner.IPv4.TTL || h.Bridge == "":
		h.Action = ActRouted
		h.Bridge = ""
	default:
		h.Action = ActSwitched
	}

	// Tunnels: the packet is deeper inside headers when it leaves than
	// when it came (or started), or the other way round.
	inDepth, outDepth := 0, last.depth
	if in != nil {
		inDepth = in.depth
	}
	if outDepth > inDepth {
		t := tunnelOf(last)
		for _, o := range g {
			if o.pkt.Type.Outgoing() && o.depth == inDepth {
				t.Device = o.pkt.Interface
			}
		}
		h.Encapsulated = &t
		h.OuterRoute = a.route(pl.Namespace, RouteQuery{Dst: t.Dst, Src: t.Src})
	}
	if inDepth > outDepth {
		t := tunnelOf(in)
		for _, o := range g {
			if !o.pkt.Type.Outgoing() && o.depth == outDepth {
				t.Device = o.pkt.Interface
				break
			}
		}
		h.Decapsulated = &t
	}

	// NAT: what the namespace changed between taking the packet in and
	// sending it on; where it started, against what the socket asked.
	end := h.Sightings[len(g)-1]
	switch {
	case in != nil:
		h.NAT = rewrites(h.Sightings[0], end)
	case first && request == nil:
		req := a.rec.Request
		asked := end
		asked.Dst = req.To
		if req.Probe.Protocol != ICMP {
			asked.DstPort = req.Probe.Port
		}
		h.NAT = rewrites(asked, end)
	}

	// The route that sent it on.
	if h.Bridge == "" {
		q := RouteQuery{Dst: end.Dst, Src: end.Src}
		if in != nil {
			q.Src = h.Sightings[0].Src
			q.Iif = l3In(g, links)
		}
		h.Route = a.route(pl.Namespace, q)
		if h.Action == ActStopped && h.Route.Type == "local" {
			h.Action = ActDelivered
		}
	}
	return h
}

// l3In is the interface the namespace's IP layer took the packet in on:
// the bridge rather than its port, the tunnel device rather than eth0.
func l3In(g []*obs, links map[string]Link) string {
	iif, depth := "", -1
	for _, o := range g {
		if o.pkt.Type.Outgoing() {
			break
		}
		if depth < 0 || o.depth <= depth {
			iif, depth = o.pkt.Interface, o.depth
		}
	}
	// A bridge port hands frames for the bridge's own address up as the
	// bridge: the port is never the IP layer's input.
	if l, ok := links[iif]; ok && l.Master != "" {
		return l.Master
	}
	return iif
}

// tunnelOf describes the tunnel around a tunnelled packet.
func tunnelOf(o *obs) Tunnel {
	out := o.outer()
	t := Tunnel{Kind: "ipip", Src: out.IPv4.Src, Dst: out.IPv4.Dst}
	if out.VXLAN != nil {
		t.Kind, t.VNI = "vxlan", out.VXLAN.VNI
		if out.UDP != nil {
			t.SrcPort, t.DstPort = out.UDP.SrcPort, out.UDP.DstPort
		}
	}
	return t
}

// rewrites lists the addresses and ports that differ between two
// sightings of one packet.
func rewrites(before, after Sighting) []Rewrite {
	var out []Rewrite
	if before.Dst != after.Dst || before.DstPort != after.DstPort {
		out = append(out, Rewrite{Kind: "dnat", From: addrPort(before.Dst, before.DstPort), To: addrPort(after.Dst, after.DstPort)})
	}
	if before.Src != after.Src || before.SrcPort != after.SrcPort {
		out = append(out, Rewrite{Kind: "snat", From: addrPort(before.Src, before.SrcPort), To: addrPort(after.Src, after.SrcPort)})
	}
	return out
}

func (a *analysis) sighting(o *obs) Sighting {
	p, h := o.pkt, o.inner
	s := Sighting{
		Time:      p.Time,
		At:        Duration(p.Time.Sub(a.t0)),
		Interface: p.Interface,
		Direction: "in",
		Type:      p.Type.String(),
		Src:       h.IPv4.Src,
		Dst:       h.IPv4.Dst,
		TTL:       h.IPv4.TTL,
		IPID:      h.IPv4.ID,
		Length:    int(h.IPv4.Length),
		Wire:      p.Length,
		DF:        h.IPv4.DF,
		Line:      p.String(),
	}
	if p.Type.Outgoing() {
		s.Direction = "out"
	}
	if e := p.Eth; e != nil {
		s.SrcMAC, s.DstMAC = e.Src.String(), e.Dst.String()
	}
	switch {
	case h.TCP != nil:
		s.SrcPort, s.DstPort = h.TCP.SrcPort, h.TCP.DstPort
	case h.UDP != nil:
		s.SrcPort, s.DstPort = h.UDP.SrcPort, h.UDP.DstPort
	}
	if o.depth > 0 {
		t := tunnelOf(o)
		s.Outer = &t
	}
	return s
}

func (a *analysis) links(ns string) map[string]Link {
	out := map[string]Link{}
	links, err := a.k.Links(ns)
	if err != nil {
		return out
	}
	for _, l := range links {
		out[l.Name] = l
	}
	return out
}

func (a *analysis) route(ns string, q RouteQuery) *Route {
	r := a.k.Route(ns, q)
	return &r
}

// notSent is the request's path when the capture never saw the probe
// leave: the sender's route for the destination says why.
func (a *analysis) notSent() Path {
	req := a.rec.Request
	from := req.From
	r := a.route(from.Namespace, RouteQuery{Dst: req.To})
	h := Hop{Place: from.Name, Role: from.Role, Namespace: nsName(from.Namespace), ns: from.Namespace, Action: ActStopped, Route: r, Sightings: []Sighting{}}
	stop := &Stop{Place: from.Name, Namespace: nsName(from.Namespace), Reason: ReasonNotSeen}
	out := a.rec.Outcome
	switch {
	case r.Err != "":
		stop.Reason = ReasonNoRoute
		stop.Detail = fmt.Sprintf("%s has no route to %s (%s): the kernel refused to send the probe", from.Name, req.To, r.Err)
	case r.Type != "unicast" && r.Type != "local":
		stop.Reason = ReasonNoRoute
		stop.Detail = fmt.Sprintf("%s's route to %s is a %s route: the kernel discards the probe", from.Name, req.To, r.Type)
	case out.MTU > 0 && out.Kind == AnswerNotSent:
		stop.Reason = ReasonMTU
		stop.Detail = fmt.Sprintf("the probe (%d bytes, DF set) does not fit the path MTU %d of %s's route %s: the kernel refused to send it",
			a.probeLength(), out.MTU, from.Name, r)
	case out.Kind == AnswerNotSent:
		stop.Reason = ReasonNotSent
		stop.Detail = fmt.Sprintf("%s's kernel refused to send the probe: %s", from.Name, out.Err)
	default:
		stop.Detail = fmt.Sprintf("no capture in %s saw the probe leave (route %s)", from.Name, r)
	}
	if fw := a.grew(from.Namespace); len(fw) > 0 && stop.Reason != ReasonNoRoute {
		stop.Reason = ReasonDropRule
		stop.Detail = fmt.Sprintf("an nftables rule in %s dropped the probe as it left", from.Name)
		stop.Evidence = fw
	}
	return Path{Hops: []Hop{h}, Stop: stop}
}

// probeLength is the IP length of the probe as sent.
func (a *analysis) probeLength() int {
	p := a.rec.Request.Probe
	switch p.Protocol {
	case TCP:
		return 60
	case UDP:
		return 28 + p.Size
	}
	return 28 + p.Size
}

// answer says how the probe ended, from the answer's packet when one was
// captured, else from what the socket reported.
func (a *analysis) answer(reply *obs, request []*obs) Answer {
	out := a.rec.Outcome
	ans := Answer{Kind: out.Kind, From: out.From, RTT: out.RTT}
	req := a.rec.Request
	if reply != nil {
		h := reply.inner
		ans.From = h.IPv4.Src
		switch {
		case isError(h.ICMP):
			ans.Kind = AnswerError
			if refused(reply, request) {
				ans.Kind = AnswerRefused
			}
			ans.Summary = fmt.Sprintf("%s from %s", icmpText(h.ICMP), h.IPv4.Src)
		case h.TCP != nil && h.TCP.Flags&capture.TCPRst != 0:
			ans.Kind = AnswerRefused
			ans.Summary = fmt.Sprintf("connection refused: RST from %s", addrPort(h.IPv4.Src, h.TCP.SrcPort))
		case h.TCP != nil:
			ans.Kind = AnswerReply
			ans.Summary = fmt.Sprintf("connected: SYN-ACK from %s", addrPort(h.IPv4.Src, h.TCP.SrcPort))
		case h.UDP != nil:
			ans.Kind = AnswerReply
			ans.Summary = fmt.Sprintf("a datagram back from %s", addrPort(h.IPv4.Src, h.UDP.SrcPort))
		default:
			ans.Kind = AnswerReply
			ans.Summary = fmt.Sprintf("echo reply from %s", h.IPv4.Src)
		}
		return ans
	}
	switch out.Kind {
	case AnswerNone:
		ans.Summary = fmt.Sprintf("no answer within %s", time.Duration(req.Timeout))
	case AnswerNotSent:
		ans.Summary = fmt.Sprintf("not sent: %s's kernel refused it: %s", req.From.Name, out.Err)
		if out.MTU > 0 {
			ans.Summary += fmt.Sprintf(" (path MTU %d)", out.MTU)
		}
	default:
		// The socket heard something the capture did not show.
		ans.Summary = out.Err
		if ans.Summary == "" {
			ans.Summary = out.Kind
		}
		if out.From.IsValid() {
			ans.Summary += " from " + out.From.String()
		}
	}
	return ans
}

// judge decides which paths arrived and, for those that did not, where and
// why they stopped.
func (a *analysis) judge(j *Journey, request []*obs, reply *obs) {
	req := &j.Request
	if n := len(req.Hops); n > 0 {
		last := &req.Hops[n-1]
		switch {
		case last.Action == ActDelivered:
			req.Arrived = true
		case j.Reply != nil && len(j.Reply.Hops) > 0 && j.Reply.Hops[0].Namespace == last.Namespace && !isError(reply.inner.ICMP):
			// Answered from where it was last seen: it arrived there
			// (a DNAT on the way changed whose address it was).
			req.Arrived, last.Action = true, ActDelivered
		case refused(reply, request):
			req.Arrived, last.Action = true, ActDelivered
		default:
			if last.Out != "" {
				last.Action = ActLeft
			}
			req.Stop = a.diagnose(last, request, reply)
		}
	}
	if j.Reply == nil {
		return
	}
	rep := j.Reply
	n := len(rep.Hops)
	if n == 0 {
		return
	}
	last := &rep.Hops[n-1]
	if last.Namespace == j.From.Namespace && (last.In != "" || last.Action == ActDelivered) {
		rep.Arrived = true
		last.Action = ActDelivered
		return
	}
	if last.Out != "" {
		last.Action = ActLeft
	}
	rep.Stop = a.diagnose(last, a.same(reply), nil)
}

// refused says whether the answer is the destination's own "port (or
// protocol) unreachable": it got the probe, and nothing serves the port.
// The same message from anyone else is a firewall rejecting the probe on
// the destination's behalf (nftables' plain reject sends it).
func refused(reply *obs, request []*obs) bool {
	if reply == nil || !isError(reply.inner.ICMP) {
		return false
	}
	m := reply.inner.ICMP
	if m.Type != capture.ICMPUnreachable || (m.Code != 2 && m.Code != 3) {
		return false
	}
	from := reply.inner.IPv4.Src
	for _, o := range request {
		if o.inner.IPv4.Dst == from {
			return true
		}
	}
	return false
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

// icmpText names an ICMP error as ping does.
func icmpText(m *capture.ICMP) string {
	switch m.Type {
	case capture.ICMPUnreachable:
		names := map[uint8]string{
			0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
			4: "fragmentation needed", 6: "destination network unknown", 7: "destination host unknown",
			9: "network administratively prohibited", 10: "host administratively prohibited",
			11: "network unreachable for TOS", 12: "host unreachable for TOS", 13: "communication administratively prohibited",
		}
		s, ok := names[m.Code]
		if !ok {
			s = fmt.Sprintf("destination unreachable (code %d)", m.Code)
		}
		if m.Code == 4 && m.Quoted != nil && m.Quoted.MTU > 0 {
			s += fmt.Sprintf(" (next-hop MTU %d)", m.Quoted.MTU)
		}
		return s
	case capture.ICMPTimeExceeded:
		if m.Code == 1 {
			return "fragment reassembly time exceeded"
		}
		return "time to live exceeded"
	case capture.ICMPParamProblem:
		return "parameter problem"
	}
	return fmt.Sprintf("ICMP type %d code %d", m.Type, m.Code)
}
