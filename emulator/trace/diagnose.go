package trace

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/labctl/labctl/emulator/capture"
)

// diagnose says where a packet that did not arrive was last seen, and the
// likeliest reason it went no further: an ICMP error about it says so
// outright; otherwise the namespace's route for it, the MTU on the way, its
// firewall counters and its ARP exchanges are asked in turn.
func (a *analysis) diagnose(h *Hop, seen []*obs, reply *obs) *Stop {
	last := h.Sightings[len(h.Sightings)-1]
	ns := a.nsPath(h)
	stop := &Stop{Place: h.Place, Namespace: h.Namespace, Interface: last.Interface}
	if reply != nil && isError(reply.inner.ICMP) {
		return a.fromICMP(stop, h, last, reply)
	}
	links := a.links(ns)
	if h.Out != "" {
		stop.Reason = ReasonLost
		l := links[h.Out]
		switch {
		case l.Kind == "tuntap":
			stop.Detail = fmt.Sprintf("it went into %s in %s, a TUN device: the userspace datapath serving it (labctl's IPIP datapath) did not send it on; `labctl status` says whether it runs",
				h.Out, h.Place)
		default:
			stop.Detail = fmt.Sprintf("it left %s by %s and no capture saw it again", h.Place, h.Out)
		}
		return stop
	}
	if h.Bridge != "" {
		return a.stuckInBridge(stop, h, last, links)
	}
	r := h.Route
	dst := last.Dst
	switch {
	case r == nil:
		stop.Reason, stop.Detail = ReasonUnknown, fmt.Sprintf("it was last seen coming into %s on %s", h.Place, last.Interface)
		return stop
	case r.Err != "":
		stop.Reason = ReasonNoRoute
		stop.Detail = fmt.Sprintf("%s has no route to %s (%s)", h.Place, dst, r.Err)
		stop.Evidence = []string{fmt.Sprintf("ip route get %s%s in %s: %s", dst, iifText(r), h.Namespace, r.Err)}
		return stop
	case r.Type == "blackhole" || r.Type == "unreachable" || r.Type == "prohibit":
		stop.Reason = ReasonNoRoute
		stop.Detail = fmt.Sprintf("%s's route for %s (%s) discards it", h.Place, dst, r)
		return stop
	}
	if rules := a.grew(ns); len(rules) > 0 {
		stop.Reason = ReasonDropRule
		stop.Detail = fmt.Sprintf("an nftables rule in %s dropped it: its counter grew while the probe passed", h.Place)
		stop.Evidence = rules
		return stop
	}
	if r.Type == "local" {
		stop.Reason = ReasonNoAnswer
		stop.Detail = fmt.Sprintf("it reached %s, which owns %s, and nothing answered", h.Place, dst)
		if chains := a.dropping(ns, "input", "prerouting"); len(chains) > 0 {
			stop.Reason = ReasonDropRule
			stop.Detail += ": a chain that drops by default may have dropped it"
			stop.Evidence = chains
		}
		return stop
	}
	out := links[r.Dev]
	if last.DF && out.MTU > 0 && last.Length > out.MTU {
		stop.Reason = ReasonMTU
		stop.Detail = fmt.Sprintf("the %d-byte packet has DF set and does not fit %s's MTU %d in %s", last.Length, r.Dev, out.MTU, h.Place)
		stop.Evidence = []string{fmt.Sprintf("route %s; %s mtu %d", r, r.Dev, out.MTU)}
		return stop
	}
	if ev, ok := a.unresolved(ns, h.Place, nextHop(*r, dst), r.Dev); ok {
		stop.Reason = ReasonNeighbour
		stop.Detail = fmt.Sprintf("%s routes it to %s on %s, whose MAC address it never learnt: nothing answered its ARP requests", h.Place, nextHop(*r, dst), r.Dev)
		stop.Evidence = ev
		return stop
	}
	if chains := a.dropping(ns, "forward", "prerouting", "postrouting"); len(chains) > 0 {
		stop.Reason = ReasonDropRule
		stop.Detail = fmt.Sprintf("%s routes it (%s) but did not send it: a chain that drops by default may have dropped it", h.Place, r)
		stop.Evidence = chains
		return stop
	}
	stop.Reason = ReasonUnknown
	stop.Detail = fmt.Sprintf("%s routes it (%s), but it was not seen leaving", h.Place, r)
	return stop
}

// stuckInBridge explains a frame a bridge took in and did not forward.
func (a *analysis) stuckInBridge(stop *Stop, h *Hop, last Sighting, links map[string]Link) *Stop {
	var small []string
	for _, l := range links {
		if l.Master == h.Bridge && l.Name != last.Interface && l.MTU < wireIP(last) {
			small = append(small, fmt.Sprintf("%s mtu %d", l.Name, l.MTU))
		}
	}
	slices.Sort(small)
	if len(small) > 0 {
		stop.Reason = ReasonMTU
		stop.Detail = fmt.Sprintf("bridge %s in %s drops frames larger than the port they leave by, and this one carries a %d-byte packet", h.Bridge, h.Place, wireIP(last))
		stop.Evidence = small
		return stop
	}
	if rules := a.grew(a.nsPath(h)); len(rules) > 0 {
		stop.Reason = ReasonDropRule
		stop.Detail = fmt.Sprintf("an nftables rule in %s dropped it: its counter grew while the probe passed", h.Place)
		stop.Evidence = rules
		return stop
	}
	stop.Reason = ReasonUnknown
	stop.Detail = fmt.Sprintf("bridge %s in %s took the frame in on %s and did not forward it", h.Bridge, h.Place, last.Interface)
	return stop
}

// wireIP is the length of the outermost IP packet of a sighting: what a
// link's MTU limits.
func wireIP(s Sighting) int {
	if s.SrcMAC != "" {
		return s.Wire - 14
	}
	return s.Wire
}

// fromICMP explains a stop from the ICMP error sent about the packet.
func (a *analysis) fromICMP(stop *Stop, h *Hop, last Sighting, reply *obs) *Stop {
	m := reply.inner.ICMP
	router := reply.place.Name
	stop.Place, stop.Namespace = router, nsName(reply.place.Namespace)
	stop.Evidence = []string{reply.pkt.String()}
	what := icmpText(m)
	switch m.Type {
	case capture.ICMPTimeExceeded:
		stop.Reason = ReasonTTL
		stop.Detail = fmt.Sprintf("its TTL ran out in %s (%s): a routing loop?", router, what)
		return stop
	case capture.ICMPUnreachable:
	default:
		stop.Reason, stop.Detail = ReasonUnreached, fmt.Sprintf("%s answered %s", router, what)
		return stop
	}
	ns := reply.place.Namespace
	switch m.Code {
	case 4:
		stop.Reason = ReasonMTU
		stop.Detail = fmt.Sprintf("the %d-byte packet has DF set and %s cannot send it on: it answered %s", last.Length, router, what)
		if r := h.Route; r != nil && r.Dev != "" && h.Namespace == stop.Namespace {
			if l, ok := a.links(ns)[r.Dev]; ok {
				stop.Detail = fmt.Sprintf("the %d-byte packet has DF set and does not fit %s's MTU %d in %s: it answered %s", last.Length, r.Dev, l.MTU, router, what)
			}
		}
	case 0, 6, 11:
		stop.Reason = ReasonNoRoute
		stop.Detail = fmt.Sprintf("%s has no route to %s: it answered %s", router, last.Dst, what)
		if r := h.Route; r != nil && r.Err != "" {
			stop.Evidence = append(stop.Evidence, fmt.Sprintf("ip route get %s%s in %s: %s", last.Dst, iifText(r), h.Namespace, r.Err))
		}
	case 1, 7, 12:
		stop.Reason = ReasonNoRoute
		stop.Detail = fmt.Sprintf("%s could not reach %s: it answered %s", router, last.Dst, what)
		if r := h.Route; r != nil && r.Err == "" {
			if ev, ok := a.unresolved(ns, router, nextHop(*r, last.Dst), r.Dev); ok {
				stop.Reason = ReasonNeighbour
				stop.Detail = fmt.Sprintf("%s routes it to %s on %s, whose MAC address it never learnt (it answered %s)", router, nextHop(*r, last.Dst), r.Dev, what)
				stop.Evidence = append(stop.Evidence, ev...)
			}
		}
	case 2, 3, 9, 10, 13:
		// The destination's own port unreachable is an answer, not a
		// stop (judge): from anyone else it is a reject rule's.
		stop.Reason = ReasonDropRule
		stop.Detail = fmt.Sprintf("a rule in %s rejects it: it answered %s", router, what)
		if m.Code == 2 || m.Code == 3 {
			stop.Detail = fmt.Sprintf("%s answered %s for %s, an address it does not own: a firewall rule there rejects it", router, what, last.Dst)
		}
		stop.Evidence = append(stop.Evidence, a.grew(ns)...)
		stop.Evidence = append(stop.Evidence, a.rejecting(ns)...)
	default:
		stop.Reason = ReasonUnreached
		stop.Detail = fmt.Sprintf("%s answered %s", router, what)
	}
	return stop
}

func iifText(r *Route) string {
	if r.Iif == "" {
		return ""
	}
	return " iif " + r.Iif
}

// nextHop is where a route sends a packet for dst: its gateway, or dst
// itself on a directly connected network.
func nextHop(r Route, dst netip.Addr) netip.Addr {
	if gw, err := netip.ParseAddr(r.Via); err == nil {
		return gw
	}
	return dst
}

// unresolved tells whether the namespace failed to learn the MAC of addr:
// it asked by ARP and got no answer, or its neighbour table says so.
func (a *analysis) unresolved(ns, place string, addr netip.Addr, dev string) ([]string, bool) {
	asked, answered := 0, false
	var first string
	for _, o := range a.obs {
		arp := o.pkt.ARP
		if o.place.Namespace != ns || arp == nil {
			continue
		}
		switch {
		case arp.Op == capture.ARPRequest && arp.TargetIP == addr && o.pkt.Type.Outgoing():
			asked++
			if first == "" {
				first = o.pkt.String()
			}
		case arp.Op == capture.ARPReply && arp.SenderIP == addr:
			answered = true
		}
	}
	var ev []string
	if asked > 0 && !answered {
		ev = append(ev, fmt.Sprintf("%d ARP %s for %s, no reply: %s", asked, plural(asked, "request"), addr, first))
	}
	if nbs, err := a.k.Neighbours(ns); err == nil {
		for _, n := range nbs {
			if n.IP == addr && (n.Dev == dev || dev == "") && (n.State == "failed" || n.State == "incomplete") {
				ev = append(ev, fmt.Sprintf("ip neigh in %s: %s dev %s %s", place, addr, n.Dev, strings.ToUpper(n.State)))
			}
		}
	}
	return ev, len(ev) > 0
}

// grew lists the rules of a namespace that drop or reject and counted
// packets while the probe passed.
func (a *analysis) grew(ns string) []string {
	fc, ok := a.rec.Firewalls[ns]
	if !ok || fc.Before == nil || fc.After == nil {
		return nil
	}
	before := map[string]uint64{}
	for _, r := range fc.Before.Rules {
		before[ruleKey(r)] = r.Packets
	}
	var out []string
	for _, r := range fc.After.Rules {
		if !r.Counted || r.Verdict != "drop" && r.Verdict != "reject" {
			continue
		}
		if n := r.Packets - before[ruleKey(r)]; r.Packets > before[ruleKey(r)] {
			out = append(out, fmt.Sprintf("%s: counter +%d", r, n))
		}
	}
	return out
}

// rejecting lists the namespace's rules that reject, counted or not.
func (a *analysis) rejecting(ns string) []string {
	fc, ok := a.rec.Firewalls[ns]
	if !ok || fc.After == nil {
		return nil
	}
	var out []string
	for _, r := range fc.After.Rules {
		if r.Verdict == "reject" && !r.Counted {
			out = append(out, r.String()+": a rule that rejects")
		}
	}
	return out
}

func ruleKey(r RuleCount) string {
	return fmt.Sprintf("%s/%s/%s/%d", r.Family, r.Table, r.Chain, r.Handle)
}

// dropping lists the namespace's base chains at these hooks that drop
// what no rule accepts.
func (a *analysis) dropping(ns string, hooks ...string) []string {
	fc, ok := a.rec.Firewalls[ns]
	if !ok || fc.After == nil {
		return nil
	}
	var out []string
	for _, c := range fc.After.Dropping {
		if slices.Contains(hooks, c.Hook) {
			out = append(out, fmt.Sprintf("table %s %s chain %s (hook %s) has policy drop", c.Family, c.Table, c.Chain, c.Hook))
		}
	}
	return out
}

// nsPath is the namespace path of a hop's place.
func (a *analysis) nsPath(h *Hop) string { return h.ns }

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
