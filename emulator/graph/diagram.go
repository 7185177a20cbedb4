package graph

import (
	"fmt"
	"strings"

	"github.com/labctl/labctl/emulator/spec"
)

// The diagrams name their shapes by position ("n0", "n0br", "n0p1"), not
// by the lab's names: node and pod names may hold characters the diagram
// languages treat specially, and "end" is a keyword of Mermaid's.

// box is one shape of a diagram.
type box struct {
	id, label string
	kind      string // "node", "bridge", "eth", "tunnel", "pod", "switch"
}

// edge is one line of a diagram.
type edge struct {
	from, to, label string
	tunnel          bool // drawn dashed: a backend between nodes, not a cable
	// hidden only orders the shapes: the bridge below eth0, since the
	// node routes between them (no cable joins them).
	hidden bool
}

// cluster is one node's shapes, drawn as a group.
type cluster struct {
	id, label string
	boxes     []box
}

// layout is what both diagram forms draw, in drawing order.
type layout struct {
	title    string
	sw       box
	switches []box // the external networks' (externals.go)
	clusters []cluster
	boxes    []box // shapes of no group: the external hosts
	edges    []edge
}

func (g *Graph) layout() layout {
	l := layout{title: g.Lab + " · " + g.ClusterCIDR.String()}
	l.sw = box{id: "u", kind: "switch", label: lines(g.Underlay.Bridge, g.Underlay.CIDR.String(), state(g.Underlay.State))}
	ids := map[string]int{}
	for i, n := range g.Nodes {
		ids[n.Name] = i
		id := fmt.Sprintf("n%d", i)
		c := cluster{id: id, label: strings.TrimSpace(n.Name + state(n.State))}
		eth := id + "eth0"
		br := id + "br"
		brLabel := lines(n.Bridge, fmt.Sprintf("%s/%d", n.Gateway, n.PodCIDR.Bits()))
		if n.Bridge == "" {
			// Calico: no bridge; the node's routes stand in its place.
			brLabel = lines("routes", "blackhole "+n.PodCIDR.String(), "proxy ARP "+n.Gateway.String())
		}
		c.boxes = append(c.boxes,
			box{id: eth, kind: "eth", label: lines("eth0", n.Prefix.String())},
			box{id: br, kind: "bridge", label: brLabel},
		)
		// Cables run top-down: the underlay switch, each node's eth0,
		// its bridge, its pods.
		l.edges = append(l.edges, edge{from: "u", to: eth, label: n.Veth}, edge{from: eth, to: br, hidden: true})
		for _, t := range n.Tunnels {
			tid := id + tunnelID(t.Backend)
			label := lines(t.Device, t.Addr.String())
			if !t.Addr.IsValid() {
				label = t.Device
			}
			c.boxes = append(c.boxes, box{id: tid, kind: "tunnel", label: label})
			if t.Bridged {
				l.edges = append(l.edges, edge{from: br, to: tid, label: "port"})
			}
		}
		for j, p := range n.Pods {
			pid := fmt.Sprintf("%sp%d", id, j)
			c.boxes = append(c.boxes, box{id: pid, kind: "pod", label: lines(p.Name+state(p.State), p.IP.String())})
			l.edges = append(l.edges, edge{from: br, to: pid, label: p.Veth})
		}
		l.clusters = append(l.clusters, c)
	}
	g.layoutOutside(&l)
	if o := g.Overlay; o != nil {
		// One segment: a ring through the nodes' VXLAN devices says
		// "these are one L2 network" without drawing every pair.
		label := fmt.Sprintf("vxlan vni %d, udp %d", o.VNI, o.Port)
		for i := 1; i < len(g.Nodes); i++ {
			l.edges = append(l.edges, edge{from: fmt.Sprintf("n%dvx", i-1), to: fmt.Sprintf("n%dvx", i), label: label, tunnel: true})
		}
		return l
	}
	for _, p := range g.Pairs {
		a, b := ids[p.A], ids[p.B]
		from, to := fmt.Sprintf("n%deth0", a), fmt.Sprintf("n%deth0", b)
		label := "host-gw"
		if p.Backend != spec.BackendHostGW {
			from, to = fmt.Sprintf("n%d%s", a, tunnelID(p.Backend)), fmt.Sprintf("n%d%s", b, tunnelID(p.Backend))
			t := g.Nodes[a].tunnel(p.Backend)
			label = "ipip"
			if p.Backend == spec.BackendVXLAN {
				label = fmt.Sprintf("vxlan vni %d, udp %d", t.VNI, t.Port)
			}
		}
		l.edges = append(l.edges, edge{from: from, to: to, label: label, tunnel: true})
	}
	return l
}

func tunnelID(b spec.Backend) string {
	if b == spec.BackendIPIP {
		return "ip"
	}
	return "vx"
}

// lines joins the non-empty parts of a label, one per line; "\n" stands
// for a line break until a form writes its own.
func lines(parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, "\n")
}

// Mermaid draws the lab as a Mermaid flowchart: each node a subgraph with
// its eth0, bridge, tunnel devices and pods; solid lines are cables (veth
// pairs), dotted ones the backend between two nodes.
func (g *Graph) Mermaid() string {
	l := g.layout()
	var b strings.Builder
	fmt.Fprintf(&b, "%%%% %s: drawn by labctl graph\n", mermaidText(l.title))
	b.WriteString("flowchart TB\n")
	for _, sw := range append([]box{l.sw}, l.switches...) {
		fmt.Fprintf(&b, "  %s{{\"%s\"}}\n", sw.id, mermaidText(sw.label))
	}
	for _, c := range l.clusters {
		fmt.Fprintf(&b, "  subgraph %s [\"%s\"]\n", c.id, mermaidText(c.label))
		for _, x := range c.boxes {
			fmt.Fprintf(&b, "    %s\n", mermaidBox(x))
		}
		b.WriteString("  end\n")
	}
	for _, x := range l.boxes {
		fmt.Fprintf(&b, "  %s\n", mermaidBox(x))
	}
	for _, e := range l.edges {
		if e.hidden {
			fmt.Fprintf(&b, "  %s ~~~ %s\n", e.from, e.to)
			continue
		}
		arrow := "---"
		if e.tunnel {
			arrow = "-.-"
		}
		fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", e.from, arrow, mermaidText(e.label), e.to)
	}
	return b.String()
}

// mermaidBox is one shape: pods rounded, tunnel devices slanted, external
// hosts stadium-shaped.
func mermaidBox(x box) string {
	open, closing := "[\"", "\"]"
	switch x.kind {
	case "pod":
		open, closing = "(\"", "\")"
	case "tunnel":
		open, closing = "[/\"", "\"/]"
	case "external":
		open, closing = "([\"", "\"])"
	}
	return x.id + open + mermaidText(x.label) + closing
}

// mermaidText makes a label safe inside Mermaid's quotes: line breaks
// become <br/>, and a quote an entity.
func mermaidText(s string) string {
	s = strings.ReplaceAll(s, `"`, "#quot;")
	return strings.ReplaceAll(s, "\n", "<br/>")
}

// Dot draws the lab for Graphviz (`dot -Tsvg`): each node a cluster, pods
// as rounded boxes, the underlay switch as a hexagon, backends dashed.
func (g *Graph) Dot() string {
	l := g.layout()
	var b strings.Builder
	fmt.Fprintf(&b, "// %s: drawn by labctl graph\n", l.title)
	fmt.Fprintf(&b, "graph %s {\n", dotQuote(g.Lab))
	b.WriteString("  graph [fontname=\"Helvetica\", fontsize=11, labelloc=t, label=" + dotQuote(l.title) + "];\n")
	b.WriteString("  node [fontname=\"Helvetica\", fontsize=10, shape=box];\n")
	b.WriteString("  edge [fontname=\"Helvetica\", fontsize=9];\n")
	for _, sw := range append([]box{l.sw}, l.switches...) {
		fmt.Fprintf(&b, "  %s [shape=hexagon, label=%s];\n", sw.id, dotQuote(sw.label))
	}
	for _, c := range l.clusters {
		fmt.Fprintf(&b, "  subgraph cluster_%s {\n", c.id)
		fmt.Fprintf(&b, "    label=%s;\n", dotQuote(c.label))
		for _, x := range c.boxes {
			attrs := ""
			switch x.kind {
			case "pod":
				attrs = ", style=rounded"
			case "tunnel":
				attrs = ", shape=parallelogram"
			case "bridge":
				attrs = ", style=bold"
			}
			fmt.Fprintf(&b, "    %s [label=%s%s];\n", x.id, dotQuote(x.label), attrs)
		}
		// Tunnel devices sit beside eth0, whose address they send from.
		same := []string{c.id + "eth0"}
		for _, x := range c.boxes {
			if x.kind == "tunnel" {
				same = append(same, x.id)
			}
		}
		if len(same) > 1 {
			fmt.Fprintf(&b, "    { rank=same; %s; }\n", strings.Join(same, "; "))
		}
		b.WriteString("  }\n")
	}
	for _, x := range l.boxes {
		fmt.Fprintf(&b, "  %s [label=%s, style=\"rounded,dashed\"];\n", x.id, dotQuote(x.label))
	}
	for _, e := range l.edges {
		if e.hidden {
			fmt.Fprintf(&b, "  %s -- %s [style=invis];\n", e.from, e.to)
			continue
		}
		attrs := ""
		if e.tunnel {
			attrs = ", style=dashed, constraint=false"
		}
		fmt.Fprintf(&b, "  %s -- %s [label=%s%s];\n", e.from, e.to, dotQuote(e.label), attrs)
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote writes a DOT string: backslash and quote escaped, line breaks
// as DOT's centred \n.
func dotQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"`
}
