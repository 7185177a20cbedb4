// Package graph draws a lab: its nodes, pods, bridges, the underlay and the
// backend between every two nodes, with their addresses, and outside the
// cluster its router and external hosts. One Graph renders
// three ways: Text for terminals (and the TUI's topology pane: it fits 80
// columns), Mermaid for course notes (GitHub, GitLab and most Markdown
// tools render it), and Dot for Graphviz.
//
// A Graph comes from a topology alone (FromTopology: no root, nothing
// running) or from a running lab's status (FromStatus: the same picture,
// with what is missing and which IPIP datapath serves each node).
package graph

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
)

// Graph is a lab as the pictures show it. Its fields are plain values, so a
// front end may draw it its own way too.
type Graph struct {
	Lab         string
	Underlay    Underlay
	ClusterCIDR netip.Prefix
	ServiceCIDR netip.Prefix
	PodMTU      int
	Nodes       []Node
	// Pairs gives the backend of node pairs: every pair when the lab has
	// at most MaxListedNodes nodes, else only the pairs the topology's
	// links name, and Others counts the rest.
	Pairs  []Pair
	Others *Others
	// Overlay is set for bridged VXLAN (the article's L2 overlay): one
	// segment for the whole lab instead of a backend per pair.
	Overlay *Tunnel
	// Live says the graph was drawn from a running lab; node and pod
	// states are set then.
	Live bool
	// Services are the lab's services (services.go): the text form lists
	// them; the diagrams leave them out.
	Services []Service
	// Outside the cluster (externals.go): the router, nil without one;
	// the external networks; the external hosts; whether pod traffic to
	// them is masqueraded.
	Router     *Router
	Networks   []Network
	Externals  []External
	Masquerade bool
}

// MaxListedNodes bounds the labs whose every node pair is listed: a lab of
// n nodes has n(n-1)/2 pairs, which no picture shows usefully for large n.
const MaxListedNodes = 8

// Underlay is the "physical" network between the nodes.
type Underlay struct {
	Namespace string
	Bridge    string
	CIDR      netip.Prefix
	MTU       int
	State     string // live only: "up", "missing" or "foreign"
}

// Node is one node and what it holds.
type Node struct {
	Name      string
	Namespace string
	IP        netip.Addr
	// Prefix is IP with the underlay's prefix length, as eth0 has it.
	Prefix netip.Prefix
	// Veth is the node's port on the underlay bridge (the other end of
	// its eth0).
	Veth    string
	PodCIDR netip.Prefix
	// Bridge is the pod bridge holding Gateway; "" on a Calico node, whose
	// pods each have a veth of their own, routed, with Gateway
	// (169.254.1.1) answered by proxy ARP.
	Bridge  string
	Gateway netip.Addr
	// Tunnels are the node's VXLAN and IPIP devices, when its pairs use
	// them.
	Tunnels []Tunnel
	Pods    []Pod
	State   string // live only
}

// Tunnel is a VXLAN or IPIP device of a node (or, in Graph.Overlay, the
// bridged VXLAN segment).
type Tunnel struct {
	Backend spec.Backend // vxlan or ipip
	Device  string
	// Addr is the device's own address (flannel gives flannel.1 its
	// subnet's network address, Calico tunl0 one of its block); invalid
	// for bridged VXLAN, whose device is a bridge port.
	Addr netip.Prefix
	MTU  int
	// VXLAN
	VNI      int
	Port     int
	Bridged  bool       // a port of the pod bridge (bridged mode)
	Flooding string     // bridged: multicast or unicast
	Group    netip.Addr // bridged multicast group
	// IPIP: auto, kernel or userspace as the topology asks; live, what
	// serves it ("kernel" or "userspace").
	Datapath string
}

// Pod is a pod on its node's bridge.
type Pod struct {
	Name       string
	Namespace  string
	IP         netip.Addr
	Veth       string // the host side: a port of the node's bridge, or Calico's cali* veth
	Deployment string
	Containers int
	State      string // live only
}

// Pair is the backend between two nodes.
type Pair struct {
	A, B    string
	Backend spec.Backend
	// Link says a topology link chose it (else it is the network's
	// default backend).
	Link bool
}

// Others stands for the pairs Pairs leaves out: they use the network's
// backend.
type Others struct {
	Count   int
	Backend spec.Backend
}

// FromTopology draws a topology as `labctl up` would build it.
func FromTopology(t *spec.Topology) *Graph {
	nw := t.Network
	g := &Graph{
		Lab:         t.Name,
		Underlay:    Underlay{Namespace: plan.UnderlayNamespace(t.Name), Bridge: plan.UnderlayBridge, CIDR: nw.Underlay, MTU: nw.MTU},
		ClusterCIDR: nw.ClusterCIDR,
		ServiceCIDR: nw.ServiceCIDR,
		PodMTU:      t.PodMTU(),
	}
	bridged := nw.Backend == spec.BackendVXLAN && nw.VXLAN.Mode == spec.VXLANBridged
	if bridged {
		g.Overlay = vxlanTunnel(t, netip.Prefix{})
	}
	// Which tunnel devices each node has follows from its pairs.
	uses := make([]map[spec.Backend]bool, len(t.Nodes))
	for i := range uses {
		uses[i] = map[spec.Backend]bool{}
	}
	index := map[string]int{}
	for i, n := range t.Nodes {
		index[n.Name] = i
	}
	explicit := map[[2]string]spec.Backend{}
	for _, l := range t.Links {
		a, b := l.Nodes[0], l.Nodes[1]
		if _, ok := index[a]; !ok || a == b {
			continue
		}
		if _, ok := index[b]; !ok {
			continue
		}
		key := [2]string{a, b}
		if index[a] > index[b] {
			key = [2]string{b, a}
		}
		if _, seen := explicit[key]; !seen {
			explicit[key] = l.Backend
		}
	}
	n := len(t.Nodes)
	if !bridged {
		listAll := n <= MaxListedNodes
		for i := range n {
			for j := i + 1; j < n; j++ {
				a, b := t.Nodes[i].Name, t.Nodes[j].Name
				backend, link := explicit[[2]string{a, b}]
				if !link {
					backend = nw.Backend
				}
				if listAll || link {
					g.Pairs = append(g.Pairs, Pair{A: a, B: b, Backend: backend, Link: link})
				}
				if !listAll && !link {
					if g.Others == nil {
						g.Others = &Others{Backend: nw.Backend}
					}
					g.Others.Count++
				}
				uses[i][backend], uses[j][backend] = true, true
			}
		}
	}
	for i, tn := range t.Nodes {
		node := Node{
			Name:      tn.Name,
			Namespace: plan.NamespaceName(t.Name, tn.Name),
			IP:        tn.IP,
			Prefix:    netip.PrefixFrom(tn.IP, nw.Underlay.Bits()),
			Veth:      plan.VethName(tn.Name),
			PodCIDR:   tn.PodSubnet,
			Bridge:    tn.Bridge,
			Gateway:   tn.Gateway,
		}
		switch {
		case bridged:
			vx := *g.Overlay
			node.Tunnels = append(node.Tunnels, vx)
		default:
			if uses[i][spec.BackendVXLAN] {
				node.Tunnels = append(node.Tunnels, *vxlanTunnel(t, netip.PrefixFrom(tn.PodSubnet.Addr(), 32)))
			}
			if uses[i][spec.BackendIPIP] {
				node.Tunnels = append(node.Tunnels, Tunnel{
					Backend:  spec.BackendIPIP,
					Device:   nw.IPIP.Device,
					Addr:     netip.PrefixFrom(tn.PodSubnet.Addr(), 32),
					MTU:      nw.MTU - spec.BackendIPIP.Overhead(),
					Datapath: nw.IPIP.Datapath,
				})
			}
		}
		for _, p := range tn.Pods {
			node.Pods = append(node.Pods, Pod{
				Name:       p.Name,
				Namespace:  plan.NamespaceName(t.Name, p.Name),
				IP:         p.IP,
				Veth:       t.HostVeth(p.Name),
				Deployment: p.Deployment,
				Containers: len(p.Containers),
			})
		}
		g.Nodes = append(g.Nodes, node)
	}
	g.Services = servicesOf(t) // services.go
	g.addOutside(t)
	return g
}

func vxlanTunnel(t *spec.Topology, addr netip.Prefix) *Tunnel {
	o := t.Network.VXLAN
	vx := &Tunnel{
		Backend: spec.BackendVXLAN,
		Device:  o.Device,
		Addr:    addr,
		MTU:     t.Network.MTU - spec.BackendVXLAN.Overhead(),
		VNI:     o.VNI,
		Port:    o.Port,
	}
	if o.Mode == spec.VXLANBridged {
		vx.Bridged, vx.Flooding, vx.Group = true, o.Flooding, o.Group
		vx.Addr = netip.Prefix{}
	}
	return vx
}

// FromStatus draws a lab from its status: the topology it was built from,
// with the state of every namespace and what serves each IPIP device.
func FromStatus(st *lab.Status) (*Graph, error) {
	if st.Topology == nil {
		return nil, fmt.Errorf("graph of lab %q: its record holds no topology (%s)", st.Name, st.Error)
	}
	g := FromTopology(st.Topology)
	g.Live = true
	state := map[string]string{}
	for _, ns := range st.Namespaces {
		s := ns.State
		if s == "ours" {
			s = "up"
		}
		state[ns.Namespace] = s
	}
	g.Underlay.State = state[g.Underlay.Namespace]
	for i := range g.Nodes {
		n := &g.Nodes[i]
		n.State = state[n.Namespace]
		for j := range n.Tunnels {
			tn := &n.Tunnels[j]
			if tn.Backend != spec.BackendIPIP {
				continue
			}
			k := slices.IndexFunc(st.Datapaths, func(d lab.DatapathStatus) bool { return d.Node == n.Name })
			if k >= 0 {
				tn.Datapath = st.Datapaths[k].Kind
				if !st.Datapaths[k].Running {
					tn.Datapath += ", not running"
				}
			}
		}
		for j := range n.Pods {
			n.Pods[j].State = state[n.Pods[j].Namespace]
		}
	}
	g.outsideStates(state)
	return g, nil
}

// Pods counts the lab's pods.
func (g *Graph) Pods() int {
	n := 0
	for _, node := range g.Nodes {
		n += len(node.Pods)
	}
	return n
}

// Backends lists the backends in use, in a stable order.
func (g *Graph) Backends() []spec.Backend {
	if g.Overlay != nil {
		return []spec.Backend{spec.BackendVXLAN}
	}
	used := map[spec.Backend]bool{}
	for _, p := range g.Pairs {
		used[p.Backend] = true
	}
	if g.Others != nil {
		used[g.Others.Backend] = true
	}
	var out []spec.Backend
	for _, b := range []spec.Backend{spec.BackendHostGW, spec.BackendVXLAN, spec.BackendIPIP} {
		if used[b] {
			out = append(out, b)
		}
	}
	return out
}

// node returns the node named name.
func (g *Graph) node(name string) *Node {
	for i := range g.Nodes {
		if g.Nodes[i].Name == name {
			return &g.Nodes[i]
		}
	}
	return nil
}

// tunnel returns the node's device for a backend, nil for host-gw.
func (n *Node) tunnel(b spec.Backend) *Tunnel {
	for i := range n.Tunnels {
		if n.Tunnels[i].Backend == b {
			return &n.Tunnels[i]
		}
	}
	return nil
}
