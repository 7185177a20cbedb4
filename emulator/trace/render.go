package trace

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// Text renders the journey for people, one line per hop, like a traceroute
// that knows the lab: where the packet was, the interfaces it came in and
// went out by, its TTL, and what the namespace did (the route that sent it
// on, the bridge that switched it, tunnels and NAT); then where and why a
// packet that did not arrive stopped. Wide adds each hop's addresses and
// MAC addresses.
func (j *Journey) Text(wide bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "trace %s → %s: %s\n", j.fromText(), j.To, j.Probe)
	fmt.Fprintf(&b, "answer: %s\n", j.Answer.Summary)
	j.Request.write(&b, "request", wide)
	if j.Reply != nil {
		j.Reply.write(&b, "reply", wide)
	}
	return b.String()
}

func (j *Journey) fromText() string {
	e := j.From
	if e.Name == "" {
		e.Name = e.Namespace
	}
	return e.String()
}

func (p *Path) write(b *strings.Builder, what string, wide bool) {
	b.WriteString("\n")
	if p.Packet != "" {
		fmt.Fprintf(b, "%s: %s\n", what, p.Packet)
	} else {
		fmt.Fprintf(b, "%s:\n", what)
	}
	if len(p.Hops) > 0 && len(p.Hops[0].Sightings) > 0 {
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		head := "  #\tAT ms\tWHERE\tIN\tOUT\tTTL\t"
		if wide {
			head += "PACKET\tMAC\t"
		}
		fmt.Fprintln(tw, head+"WHAT")
		for i, h := range p.Hops {
			first, last := h.Sightings[0], h.Sightings[len(h.Sightings)-1]
			line := fmt.Sprintf("  %d\t%s\t%s\t%s\t%s\t%d\t", i+1, msNumber(time.Duration(first.At)), h.Place, h.In, h.Out, last.TTL)
			if wide {
				mac := last
				if h.Out == "" && h.In != "" {
					mac = first
				}
				macs := ""
				if mac.SrcMAC != "" {
					macs = mac.SrcMAC + " > " + mac.DstMAC
				}
				line += last.Endpoints() + "\t" + macs + "\t"
			}
			fmt.Fprintln(tw, line+h.what())
		}
		tw.Flush()
	}
	if s := p.Stop; s != nil {
		where := s.Place
		if s.Interface != "" {
			where += " (" + s.Interface + ")"
		}
		fmt.Fprintf(b, "  stopped in %s: %s [%s]\n", where, s.Detail, s.Reason)
		for _, e := range s.Evidence {
			fmt.Fprintf(b, "    %s\n", e)
		}
	}
}

// what says what the namespace did to the packet, in words.
func (h Hop) what() string {
	var parts []string
	if t := h.Decapsulated; t != nil {
		s := "decapsulated from " + t.Kind
		if t.Kind == "vxlan" {
			s += fmt.Sprintf(" vni %d", t.VNI)
		}
		if t.Device != "" {
			s += " by " + t.Device
		}
		parts = append(parts, s)
	}
	switch h.Action {
	case ActSent:
		parts = append(parts, "sent: "+routeText(h.Route))
	case ActRouted:
		parts = append(parts, "routed: "+routeText(h.Route))
	case ActSwitched:
		s := "switched by " + h.Bridge
		if o := h.Sightings[0].Outer; o != nil {
			s += ", inside " + o.String()
		}
		parts = append(parts, s)
	case ActDelivered:
		parts = append(parts, "delivered: "+h.Sightings[len(h.Sightings)-1].Dst.String()+" is local")
	case ActLeft:
		parts = append(parts, "left: "+routeText(h.Route))
	case ActStopped:
		s := "stopped"
		if h.Bridge != "" {
			s += " in bridge " + h.Bridge
		} else if h.Route != nil {
			s += ": " + routeText(h.Route)
		}
		parts = append(parts, s)
	}
	for _, r := range h.NAT {
		parts = append(parts, r.String())
	}
	if t := h.Encapsulated; t != nil {
		s := "encapsulated: " + t.String()
		if t.Device != "" {
			s += " by " + t.Device
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func routeText(r *Route) string {
	if r == nil {
		return "-"
	}
	return r.String()
}

// msNumber writes a duration in milliseconds with microsecond digits.
func msNumber(d time.Duration) string {
	return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond))
}
