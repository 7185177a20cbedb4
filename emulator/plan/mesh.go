package plan

import (
	"iter"
	"net"
	"net/netip"
	"slices"

	"github.com/labctl/labctl/emulator/spec"
)

// Mesh is what every node knows of every other, once for the whole plan:
// node addresses and pod subnets, the tunnel devices, and the backend of
// each pair. A lab of N nodes has N(N-1) cross-node routes (three times as
// many entries with VXLAN); the kernel needs each of them, but a plan that
// held them all would grow with N² (a 4000-node lab took more than 6 GB).
// Each node's PeerOps refer to the mesh instead and expand into the
// operations one at a time, when the script is written or the kernel
// applier runs them.
type Mesh struct {
	nodes   []meshNode
	backend spec.Backend // between nodes without a link
	links   [][]meshLink // per node, sorted by peer
	counts  [][3]int     // per node, peers per backend (host-gw, vxlan, ipip)
	vxlan   string       // routed VXLAN device
	ipip    string       // IPIP device
	bridged bool         // bridged VXLAN: no per-pair backends
	// calico: routes as Calico's daemons install them (proto bird from
	// BIRD; Felix's VXLAN routes with the device's MTU as theirs).
	calico   bool
	vxlanMTU int
}

type meshNode struct {
	ip     netip.Addr
	subnet netip.Prefix
	mac    [6]byte // the node's VTEP MAC (VTEPMAC, or CalicoVTEPMAC in Calico's style)
}

type meshLink struct {
	peer    int
	backend spec.Backend
}

// PeerKind says which per-peer operations a PeerOps stands for.
type PeerKind string

const (
	PeersHostGW PeerKind = "host-gw" // a route per peer via its node IP
	PeersVXLAN  PeerKind = "vxlan"   // neighbour, FDB entry and onlink route per peer
	PeersIPIP   PeerKind = "ipip"    // an onlink route per peer through the IPIP device
	PeersFlood  PeerKind = "flood"   // bridged VXLAN with unicast flooding: an all-zero FDB entry per peer
)

func kindIndex(k PeerKind) int {
	switch k {
	case PeersVXLAN:
		return 1
	case PeersIPIP:
		return 2
	}
	return 0
}

func newMesh(t *spec.Topology) *Mesh {
	nw := t.Network
	m := &Mesh{
		nodes:   make([]meshNode, len(t.Nodes)),
		backend: nw.Backend,
		links:   make([][]meshLink, len(t.Nodes)),
		counts:  make([][3]int, len(t.Nodes)),
		vxlan:   nw.VXLAN.Device,
		ipip:    nw.IPIP.Device,
		bridged: nw.Backend == spec.BackendVXLAN && nw.VXLAN.Mode == spec.VXLANBridged,
		calico:  t.Calico(),
		// Felix gives its VXLAN routes the MTU of vxlan.calico.
		vxlanMTU: nw.MTU - spec.BackendVXLAN.Overhead(),
	}
	index := make(map[string]int, len(t.Nodes))
	for i, n := range t.Nodes {
		mac := VTEPMAC(n.IP)
		if m.calico {
			mac = CalicoVTEPMAC(n.Name)
		}
		m.nodes[i] = meshNode{ip: n.IP, subnet: n.PodSubnet, mac: [6]byte(mac)}
		if _, dup := index[n.Name]; !dup {
			index[n.Name] = i
		}
	}
	// As Topology.LinkBackend does: the first link of a pair counts.
	seen := map[[2]int]bool{}
	for _, l := range t.Links {
		a, okA := index[l.Nodes[0]]
		b, okB := index[l.Nodes[1]]
		key := [2]int{min(a, b), max(a, b)}
		if !okA || !okB || a == b || seen[key] {
			continue
		}
		seen[key] = true
		m.links[a] = append(m.links[a], meshLink{b, l.Backend})
		m.links[b] = append(m.links[b], meshLink{a, l.Backend})
	}
	for i := range m.links {
		slices.SortFunc(m.links[i], func(x, y meshLink) int { return x.peer - y.peer })
		m.counts[i][kindIndex(PeerKind(m.backend))] = len(t.Nodes) - 1 - len(m.links[i])
		for _, l := range m.links[i] {
			m.counts[i][kindIndex(PeerKind(l.backend))]++
		}
	}
	return m
}

// uses reports whether node i has a peer of kind.
func (m *Mesh) uses(i int, kind PeerKind) bool { return m.counts[i][kindIndex(kind)] > 0 }

// peers yields node i's peers of kind, in node order.
func (m *Mesh) peers(i int, kind PeerKind) iter.Seq[meshNode] {
	return func(yield func(meshNode) bool) {
		links := m.links[i]
		for j, peer := range m.nodes {
			if j == i {
				continue
			}
			b := m.backend
			if len(links) > 0 && links[0].peer == j {
				b, links = links[0].backend, links[1:]
			}
			if kind == PeersFlood || PeerKind(b) == kind {
				if !yield(peer) {
					return
				}
			}
		}
	}
}

// PeerOps stands for the per-peer operations of one node for one kind of
// peer, in node order. It is one operation in the plan and many in the
// kernel: Expand yields them.
type PeerOps struct {
	Namespace string
	Node      int // the node's index in the topology
	Kind      PeerKind
	Mesh      *Mesh
}

// Expand yields the operations PeerOps stands for, one at a time.
func (o PeerOps) Expand() iter.Seq[Op] {
	return func(yield func(Op) bool) {
		ns, m := o.Namespace, o.Mesh
		for peer := range m.peers(o.Node, o.Kind) {
			var ops [3]Op
			n := 0
			// Calico's BGP routes (host-gw is its no-encapsulation mode)
			// come from BIRD; its VXLAN routes from Felix, with an MTU.
			var proto uint8
			mtu := 0
			if m.calico {
				proto, mtu = ProtoBIRD, m.vxlanMTU
			}
			switch o.Kind {
			case PeersHostGW:
				ops[0], n = AddRoute{Namespace: ns, Dst: peer.subnet, Via: peer.ip, Device: "eth0", Protocol: proto}, 1
			case PeersVXLAN:
				vtep, mac := peer.subnet.Addr(), net.HardwareAddr(peer.mac[:])
				ops[0] = AddNeighbor{Namespace: ns, Device: m.vxlan, IP: vtep, MAC: mac}
				ops[1] = AddFDB{Namespace: ns, Device: m.vxlan, MAC: mac, Dst: peer.ip}
				ops[2], n = AddRoute{Namespace: ns, Dst: peer.subnet, Via: vtep, Device: m.vxlan, OnLink: true, MTU: mtu}, 3
			case PeersIPIP:
				ops[0], n = AddRoute{Namespace: ns, Dst: peer.subnet, Via: peer.ip, Device: m.ipip, OnLink: true, Protocol: proto}, 1
			case PeersFlood:
				ops[0], n = AddFDB{Namespace: ns, Device: m.vxlan, MAC: zeroMAC, Dst: peer.ip, Append: true}, 1
			}
			for _, op := range ops[:n] {
				if !yield(op) {
					return
				}
			}
		}
	}
}

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// Where is the node's namespace, where every operation of the group is
// performed.
func (o PeerOps) Where() string { return o.Namespace }

// Describe says what every operation PeerOps stands for does, at once: as
// long as the node has peers. The script and the applier expand the group
// instead and describe one operation at a time.
func (o PeerOps) Describe() Description {
	var d Description
	for op := range o.Expand() {
		d.Commands = append(d.Commands, op.Describe().Commands...)
	}
	return d
}
