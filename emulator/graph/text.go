package graph

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/labctl/labctl/emulator/spec"
)

// Text draws the lab for a terminal: a header with the lab's networks, one
// block per node (its eth0 on the underlay, its bridge, tunnel devices and
// pods), then the backend of the node pairs, then the services. Lines fit 80 columns unless
// names are unusually long; the TUI's topology pane shows it as is.
func (g *Graph) Text() string { return g.topologyText() + g.servicesText() }

// topologyText is Text without the services.
func (g *Graph) topologyText() string {
	var b strings.Builder
	nodes, pods := len(g.Nodes), g.Pods()
	var backends []string
	for _, be := range g.Backends() {
		backends = append(backends, string(be))
	}
	head := fmt.Sprintf("%s · %d %s · %d %s", g.Lab, nodes, plural(nodes, "node"), pods, plural(pods, "pod"))
	if len(backends) > 0 {
		head += " · " + strings.Join(backends, ", ")
	}
	b.WriteString(head + "\n")
	u := fmt.Sprintf("underlay %s on bridge %s, MTU %d", g.Underlay.CIDR, g.Underlay.Bridge, g.Underlay.MTU)
	b.WriteString(u + state(g.Underlay.State) + "\n")
	fmt.Fprintf(&b, "pods %s · services %s · pod MTU %d\n", g.ClusterCIDR, g.ServiceCIDR, g.PodMTU)

	// One table for all nodes, so their columns line up; a row with only
	// its first cell set is a node's own line, written as it is.
	var rows [][3]string
	for _, n := range g.Nodes {
		rows = append(rows, [3]string{}, [3]string{fmt.Sprintf("%s  eth0 %s ─ %s on %s%s", n.Name, n.Prefix, n.Veth, g.Underlay.Bridge, state(n.State))})
		if n.Bridge == "" {
			// Calico: no bridge; the node routes to each pod's /32 and
			// keeps its own block as a blackhole.
			rows = append(rows, [3]string{"  routes", "blackhole " + n.PodCIDR.String(), fmt.Sprintf("pods via %s (proxy ARP)", n.Gateway)})
		} else {
			rows = append(rows, [3]string{"  " + n.Bridge, fmt.Sprintf("%s/%d", n.Gateway, n.PodCIDR.Bits()), "gateway of " + n.PodCIDR.String()})
		}
		for _, t := range n.Tunnels {
			addr := "-"
			if t.Addr.IsValid() {
				addr = t.Addr.String()
			}
			rows = append(rows, [3]string{"  " + t.Device, addr, t.describe(n.Bridge)})
		}
		for i, p := range n.Pods {
			branch := "  ├─ "
			if i == len(n.Pods)-1 {
				branch = "  └─ "
			}
			where := "on " + n.Bridge
			if n.Bridge == "" {
				where = "(routed /32)"
			}
			rows = append(rows, [3]string{branch + p.Name, p.IP.String(), fmt.Sprintf("eth0 ─ %s %s%s", p.Veth, where, state(p.State))})
		}
		if len(n.Pods) == 0 {
			rows = append(rows, [3]string{"  └─ no pods", "-", ""})
		}
	}
	writeRows(&b, "", rows)
	g.textOutside(&b)

	if g.Overlay != nil {
		o := g.Overlay
		b.WriteString("\noverlay\n")
		fmt.Fprintf(&b, "  %s on every node's bridge: one L2 segment, vni %d, udp %d\n", o.Device, o.VNI, o.Port)
		if o.Flooding == spec.FloodUnicast {
			b.WriteString("  unknown MACs flooded to every other node, learned as pods talk\n")
		} else {
			fmt.Fprintf(&b, "  unknown MACs flooded to group %s, learned as pods talk\n", o.Group)
		}
		return b.String()
	}
	if len(g.Pairs) == 0 && g.Others == nil {
		return b.String()
	}
	b.WriteString("\nnode pairs\n")
	rows = rows[:0]
	for _, p := range g.Pairs {
		rows = append(rows, [3]string{p.A + " ⇄ " + p.B, string(p.Backend), g.describePair(p)})
	}
	if o := g.Others; o != nil {
		rows = append(rows, [3]string{fmt.Sprintf("%d other %s", o.Count, plural(o.Count, "pair")), string(o.Backend), "the network's backend"})
	}
	writeRows(&b, "  ", rows)
	return b.String()
}

// describe says what a tunnel device is, for its row under its node.
func (t Tunnel) describe(bridge string) string {
	switch t.Backend {
	case spec.BackendVXLAN:
		if t.Bridged {
			return fmt.Sprintf("vxlan vni %d, udp %d, port of %s", t.VNI, t.Port, bridge)
		}
		return fmt.Sprintf("vxlan vni %d, udp %d, MTU %d", t.VNI, t.Port, t.MTU)
	case spec.BackendIPIP:
		s := fmt.Sprintf("ipip, MTU %d", t.MTU)
		if t.Datapath != "" && t.Datapath != spec.DatapathAuto {
			s += ", " + t.Datapath
		}
		return s
	}
	return string(t.Backend)
}

// describePair says how a pair's packets cross the underlay.
func (g *Graph) describePair(p Pair) string {
	a, b := g.node(p.A), g.node(p.B)
	ends := fmt.Sprintf("%s ⇄ %s", a.IP, b.IP)
	switch p.Backend {
	case spec.BackendVXLAN:
		if t := a.tunnel(spec.BackendVXLAN); t != nil {
			return fmt.Sprintf("vni %d, udp %d: %s", t.VNI, t.Port, ends)
		}
	case spec.BackendIPIP:
		return "IP protocol 4: " + ends
	}
	return "no tunnel, routed: " + ends
}

// writeRows writes rows of three columns, the first two padded to their
// widest cell. A row with only its first cell set is written as it is.
func writeRows(b *strings.Builder, indent string, rows [][3]string) {
	var w [2]int
	for _, r := range rows {
		if r[1] == "" && r[2] == "" {
			continue
		}
		for i := range w {
			w[i] = max(w[i], utf8.RuneCountInString(r[i]))
		}
	}
	for _, r := range rows {
		if r[1] == "" && r[2] == "" {
			b.WriteString(strings.TrimRight(indent+r[0], " ") + "\n")
			continue
		}
		line := indent + pad(r[0], w[0]) + "  " + pad(r[1], w[1]) + "  " + r[2]
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
}

func pad(s string, w int) string {
	return s + strings.Repeat(" ", max(0, w-utf8.RuneCountInString(s)))
}

// state marks what a live lab lacks; nothing when it is there.
func state(s string) string {
	if s == "" || s == "up" {
		return ""
	}
	return " [" + s + "]"
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
