package grade

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/scenario"
)

// This file is the grader's only contact with package capture: opening
// captures on interfaces, reading them until told to stop, and flattening
// each packet into the few fields a packet match looks at. When capture's
// engine changes, this is what changes with it.

// sniffed is one captured packet as a packet match sees it.
type sniffed struct {
	tap   string // where it was seen: NAME/INTERFACE
	encap string // scenario.EncapNone, EncapVXLAN or EncapIPIP
	vni   int
	outer header
	inner header // the innermost packet when tunnelled
	line  string // as tcpdump would print it, for messages
}

// header is one IPv4 header and the ports of what it carries.
type header struct {
	ok         bool
	src, dst   netip.Addr
	proto      string
	sport, dpt int
	ttl        int
}

// tapAt is a tap with its namespace path.
type tapAt struct {
	name   string // NAME/INTERFACE, as the scenario wrote it
	nsPath string
	dev    string
}

// sniffer reads captures on several interfaces at once.
type sniffer struct {
	caps   []*capture.Capture
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   []sniffed
}

// sniff starts capturing on every tap; packets sent before it returns are
// not seen.
func sniff(taps []tapAt) (*sniffer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sniffer{cancel: cancel}
	for _, t := range taps {
		c, err := capture.Open(t.nsPath, t.dev, capture.Options{})
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("capture on %s: %w", t.name, err)
		}
		s.caps = append(s.caps, c)
		s.wg.Go(func() {
			for p := range c.Packets(ctx) {
				f := flatten(t.name, p)
				s.mu.Lock()
				s.seen = append(s.seen, f)
				s.mu.Unlock()
			}
		})
	}
	return s, nil
}

// settle waits until no packet has arrived for a moment (at most a
// second): what the probe sent is read before the captures close.
func (s *sniffer) settle() {
	const quiet, most = 50 * time.Millisecond, time.Second
	end := time.Now().Add(most)
	last := -1
	for time.Now().Before(end) {
		s.mu.Lock()
		n := len(s.seen)
		s.mu.Unlock()
		if n == last {
			return
		}
		last = n
		time.Sleep(quiet)
	}
}

// stop closes the captures and returns what they saw.
func (s *sniffer) stop() []sniffed {
	s.cancel()
	for _, c := range s.caps {
		_ = c.Close()
	}
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen
}

func flatten(tap string, p capture.Packet) sniffed {
	f := sniffed{tap: tap, encap: scenario.EncapNone, outer: headerOf(&p.Headers), line: p.String()}
	switch {
	case p.VXLAN != nil:
		f.encap, f.vni = scenario.EncapVXLAN, int(p.VXLAN.VNI)
	case p.IPv4 != nil && p.IPv4.Protocol == layers.IPProtocolIPv4:
		f.encap = scenario.EncapIPIP
	}
	if f.encap != scenario.EncapNone && p.Inner != nil {
		f.inner = headerOf(p.Inner.Innermost())
	}
	return f
}

func headerOf(h *capture.Headers) header {
	if h == nil || h.IPv4 == nil {
		return header{}
	}
	out := header{ok: true, src: h.IPv4.Src, dst: h.IPv4.Dst, ttl: int(h.IPv4.TTL)}
	switch {
	case h.ICMP != nil:
		out.proto = "icmp"
	case h.TCP != nil:
		out.proto, out.sport, out.dpt = "tcp", int(h.TCP.SrcPort), int(h.TCP.DstPort)
	case h.UDP != nil:
		out.proto, out.sport, out.dpt = "udp", int(h.UDP.SrcPort), int(h.UDP.DstPort)
	case h.IPv4.Protocol == layers.IPProtocolIPv4:
		out.proto = "ipip"
	default:
		out.proto = strings.ToLower(h.IPv4.Protocol.String())
	}
	return out
}

// matches reports whether a packet fits the description.
func matches(m scenario.PacketMatch, p sniffed) bool {
	if m.Encap != scenario.EncapAny && p.encap != m.Encap {
		return false
	}
	if m.VNI != 0 && p.vni != m.VNI {
		return false
	}
	if !m.Outer.IsZero() && !layerMatches(m.Outer, p.outer) {
		return false
	}
	return m.Inner.IsZero() || layerMatches(m.Inner, p.inner)
}

func layerMatches(l scenario.Layer, h header) bool {
	return h.ok &&
		(!l.Src.IsValid() || l.Src == h.src) && (!l.Dst.IsValid() || l.Dst == h.dst) &&
		(l.Protocol == "" || l.Protocol == h.proto) &&
		(l.SrcPort == 0 || l.SrcPort == h.sport) && (l.DstPort == 0 || l.DstPort == h.dpt) &&
		(l.TTL == 0 || l.TTL == h.ttl)
}

// capture runs the probe while capturing on the taps, then counts the
// packets that match. The probe must succeed: a capture of traffic that
// never flowed proves nothing.
func (g *grader) capture(ctx context.Context, c *scenario.Capture, timeout time.Duration) outcome {
	var taps []tapAt
	for _, t := range c.On {
		ns, err := g.namespace(t.Place)
		if err != nil {
			return broken(err)
		}
		taps = append(taps, tapAt{name: tapName(t), nsPath: ns, dev: t.Interface})
	}
	s, err := sniff(taps)
	if err != nil {
		return broken(err)
	}
	probe := g.probe(ctx, c.During, timeout)
	s.settle()
	seen := s.stop()
	if probe.err != nil {
		return probe
	}
	if !probe.ok {
		return held(false, "the probe failed (%s), so its packets prove nothing", probe.observed)
	}
	n := 0
	for _, p := range seen {
		if matches(c.Match, p) {
			n++
		}
	}
	ok := n >= c.Min && (c.Max < 0 || n <= c.Max)
	obs := fmt.Sprintf("%d matching %s on %s", n, plural(n, "packet"), tapNames(c.On))
	if ok && c.Max < 0 {
		// How many more than enough (a TCP exchange's ACKs) is not what
		// the check is about, and differs from one run to the next.
		obs = fmt.Sprintf("at least %d matching %s on %s", c.Min, plural(c.Min, "packet"), tapNames(c.On))
	}
	if !ok {
		obs += fmt.Sprintf(" (%d seen", len(seen))
		for i, p := range seen {
			if i == 3 {
				obs += "; ..."
				break
			}
			obs += "; " + p.line
		}
		obs += ")"
	}
	return held(ok, "%s", obs)
}

// probe runs the traffic a capture watches.
func (g *grader) probe(ctx context.Context, p scenario.Probe, timeout time.Duration) outcome {
	switch {
	case p.Ping != nil:
		return g.ping(ctx, p.Ping, timeout)
	case p.HTTP != nil:
		return g.http(ctx, p.HTTP, timeout)
	case p.TCP != nil:
		return g.tcp(ctx, p.TCP, timeout)
	case p.UDP != nil:
		return g.udp(ctx, p.UDP, timeout)
	}
	return broken(fmt.Errorf("a capture without a probe"))
}

func tapName(t scenario.Tap) string {
	if t.Interface == "" {
		return t.Place.Name
	}
	return t.Place.Name + "/" + t.Interface
}

func tapNames(taps []scenario.Tap) string {
	names := make([]string, len(taps))
	for i, t := range taps {
		names[i] = tapName(t)
	}
	return strings.Join(names, ", ")
}

// captureWanted says what a capture check asks for.
func captureWanted(c *scenario.Capture) string {
	var count string
	switch {
	case c.Max == 0:
		count = "no packet"
	case c.Max < 0:
		count = fmt.Sprintf("at least %d %s", c.Min, plural(c.Min, "packet"))
	case c.Min == c.Max:
		count = fmt.Sprintf("exactly %d %s", c.Min, plural(c.Min, "packet"))
	default:
		count = fmt.Sprintf("%d to %d packets", c.Min, c.Max)
	}
	return fmt.Sprintf("%s [%s] on %s during %s", count, matchWords(c.Match), tapNames(c.On), probeWords(c.During))
}

func matchWords(m scenario.PacketMatch) string {
	var parts []string
	switch m.Encap {
	case scenario.EncapNone:
		parts = append(parts, "not tunnelled")
	case scenario.EncapVXLAN:
		w := "vxlan"
		if m.VNI != 0 {
			w += fmt.Sprintf(" vni %d", m.VNI)
		}
		parts = append(parts, w)
	case scenario.EncapIPIP:
		parts = append(parts, "ipip")
	}
	if !m.Outer.IsZero() {
		parts = append(parts, "outer "+layerWords(m.Outer))
	}
	if !m.Inner.IsZero() {
		parts = append(parts, "inner "+layerWords(m.Inner))
	}
	if len(parts) == 0 {
		return "any"
	}
	return strings.Join(parts, ", ")
}

func layerWords(l scenario.Layer) string {
	var w []string
	if l.Protocol != "" {
		w = append(w, l.Protocol)
	}
	if l.Src.IsValid() || l.Dst.IsValid() {
		w = append(w, addrOrAny(l.Src)+" > "+addrOrAny(l.Dst))
	}
	if l.SrcPort != 0 {
		w = append(w, fmt.Sprintf("sport %d", l.SrcPort))
	}
	if l.DstPort != 0 {
		w = append(w, fmt.Sprintf("dport %d", l.DstPort))
	}
	if l.TTL != 0 {
		w = append(w, fmt.Sprintf("ttl %d", l.TTL))
	}
	return strings.Join(w, " ")
}

func addrOrAny(a netip.Addr) string {
	if !a.IsValid() {
		return "any"
	}
	return a.String()
}

func probeWords(p scenario.Probe) string {
	switch {
	case p.Ping != nil:
		return fmt.Sprintf("ping %s → %s", p.Ping.From.Name, p.Ping.To)
	case p.HTTP != nil:
		return fmt.Sprintf("GET %s from %s", p.HTTP.URL, p.HTTP.From.Name)
	case p.TCP != nil:
		return fmt.Sprintf("tcp %s → %s:%d", p.TCP.From.Name, p.TCP.To, p.TCP.Port)
	case p.UDP != nil:
		return fmt.Sprintf("udp %s → %s:%d", p.UDP.From.Name, p.UDP.To, p.UDP.Port)
	}
	return "no probe"
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
