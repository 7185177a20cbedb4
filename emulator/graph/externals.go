package graph

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
)

// What the pictures show outside the cluster: the router, joining the
// external networks (each a switch of its own) to the underlay, and the
// external hosts on the underlay or on those networks.

// Router is the lab's router: a leg on the underlay and on each external
// network.
type Router struct {
	Namespace string
	Legs      []RouterLeg
	State     string // live only
}

// RouterLeg is one device of the router, cabled to a switch.
type RouterLeg struct {
	Device string       // eth0 on the underlay, eth1... on the external networks
	Addr   netip.Prefix // the router's address there, the network's first
	Veth   string       // its port on the switch
	Switch string       // the bridge it is cabled to
}

// Network is an external network: its switch, in the underlay namespace.
type Network struct {
	CIDR   netip.Prefix
	Bridge string
	State  string // live only: the underlay's
}

// External is a machine outside the cluster.
type External struct {
	Name      string
	Namespace string
	Addr      netip.Prefix // its address with its network's prefix length
	Veth      string       // its port on the switch
	Switch    string       // the bridge it is cabled to: the underlay's or its network's
	Gateway   netip.Addr   // its default gateway (the router); invalid without a router
	Routes    []spec.Route
	// Containers counts what it runs, as a pod's.
	Containers int
	State      string // live only
}

// addOutside fills in the router, the external networks and hosts.
func (g *Graph) addOutside(t *spec.Topology) {
	g.Masquerade = t.Network.Masquerade
	if r := t.Router; r != nil {
		router := &Router{Namespace: plan.RouterNamespace(t.Name)}
		router.Legs = append(router.Legs, RouterLeg{Device: "eth0", Addr: netip.PrefixFrom(r.IP, t.Network.Underlay.Bits()),
			Veth: plan.RouterVeth("eth0"), Switch: g.Underlay.Bridge})
		for _, n := range r.Networks {
			g.Networks = append(g.Networks, Network{CIDR: n.CIDR, Bridge: n.Bridge})
			router.Legs = append(router.Legs, RouterLeg{Device: n.Device, Addr: netip.PrefixFrom(n.Gateway, n.CIDR.Bits()),
				Veth: plan.RouterVeth(n.Device), Switch: n.Bridge})
		}
		g.Router = router
	}
	for _, e := range t.Externals {
		sw := g.Underlay.Bridge
		if n := t.ExternalNetworkOf(e); n != nil {
			sw = n.Bridge
		}
		g.Externals = append(g.Externals, External{
			Name: e.Name, Namespace: plan.NamespaceName(t.Name, e.Name), Addr: netip.PrefixFrom(e.IP, e.Network.Bits()),
			Veth: plan.VethName(e.Name), Switch: sw, Gateway: e.Gateway, Routes: e.Routes, Containers: len(e.Containers),
		})
	}
}

// outsideStates sets the live states of what addOutside drew.
func (g *Graph) outsideStates(state map[string]string) {
	if g.Router != nil {
		g.Router.State = state[g.Router.Namespace]
	}
	for i := range g.Networks {
		g.Networks[i].State = g.Underlay.State
	}
	for i := range g.Externals {
		g.Externals[i].State = state[g.Externals[i].Namespace]
	}
}

// textOutside is the text picture's part for the router and the external
// hosts, after the nodes.
func (g *Graph) textOutside(b *strings.Builder) {
	if g.Router == nil && len(g.Externals) == 0 {
		return
	}
	var rows [][3]string
	if r := g.Router; r != nil {
		rows = append(rows, [3]string{}, [3]string{"router" + state(r.State) + "  joins the external networks to the underlay; no route to the pods"})
		for _, l := range r.Legs {
			where := "on " + l.Switch
			if l.Switch != g.Underlay.Bridge {
				where += ", network " + g.network(l.Switch).String()
			}
			rows = append(rows, [3]string{"  " + l.Device, l.Addr.String(), fmt.Sprintf("─ %s %s", l.Veth, where)})
		}
	}
	masq := "pods reach them masqueraded to their node's address"
	if !g.Masquerade {
		masq = "pods reach them with their own address (no masquerade)"
	}
	rows = append(rows, [3]string{}, [3]string{"outside the cluster · " + masq})
	for _, e := range g.Externals {
		how := fmt.Sprintf("eth0 ─ %s on %s", e.Veth, e.Switch)
		if e.Gateway.IsValid() {
			how += ", default via " + e.Gateway.String()
		}
		for _, r := range e.Routes {
			dst := "default"
			if r.Dst.IsValid() {
				dst = r.Dst.String()
			}
			how += fmt.Sprintf(", %s via %s", dst, r.Via)
		}
		rows = append(rows, [3]string{"  " + e.Name, e.Addr.String(), how + state(e.State)})
	}
	writeRows(b, "", rows)
}

// network is the CIDR of the external network whose switch is bridge.
func (g *Graph) network(bridge string) netip.Prefix {
	for _, n := range g.Networks {
		if n.Bridge == bridge {
			return n.CIDR
		}
	}
	return netip.Prefix{}
}

// layoutOutside adds the external networks' switches, the router (a group
// of its legs) and the external hosts to a diagram.
func (g *Graph) layoutOutside(l *layout) {
	switchID := map[string]string{g.Underlay.Bridge: l.sw.id}
	for i, n := range g.Networks {
		id := fmt.Sprintf("x%d", i)
		switchID[n.Bridge] = id
		l.switches = append(l.switches, box{id: id, kind: "switch", label: lines(n.Bridge, n.CIDR.String(), state(n.State))})
	}
	if r := g.Router; r != nil {
		c := cluster{id: "r", label: strings.TrimSpace("router" + state(r.State))}
		for _, leg := range r.Legs {
			id := "r" + leg.Device
			c.boxes = append(c.boxes, box{id: id, kind: "eth", label: lines(leg.Device, leg.Addr.String())})
			l.edges = append(l.edges, edge{from: switchID[leg.Switch], to: id, label: leg.Veth})
		}
		l.clusters = append(l.clusters, c)
	}
	for i, e := range g.Externals {
		id := fmt.Sprintf("e%d", i)
		l.boxes = append(l.boxes, box{id: id, kind: "external", label: lines(e.Name+state(e.State), e.Addr.String())})
		l.edges = append(l.edges, edge{from: switchID[e.Switch], to: id, label: e.Veth})
	}
}
