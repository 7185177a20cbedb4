// Package plan compiles a validated topology into the ordered list of kernel
// operations that build it. Every operation knows the namespace it is
// performed from and describes itself as the equivalent iproute2/sysctl
// commands, so `labctl up --dry-run` doubles as a teaching aid: the same
// plan either goes to the kernel through netlink or becomes a shell script,
// and labctl's messages about an operation quote the same commands. The
// package is pure: no system calls.
package plan

import (
	"fmt"
	"iter"
	"net"
	"net/netip"
	"slices"

	"github.com/labctl/labctl/emulator/spec"
)

// UnderlayBridge is the bridge in the underlay namespace that plays the
// "physical" switch every node's eth0 is cabled to.
const UnderlayBridge = "underlay0"

// Roles of the namespaces a lab owns (and RoleRouter, RoleExternal).
const (
	RoleUnderlay = "underlay"
	RoleNode     = "node"
	RolePod      = "pod"
)

// Plan is everything `labctl up` does, in order.
type Plan struct {
	Lab        string
	Namespaces []Namespace
	Stages     []Stage
	Calico     bool // the nodes wire their pods in Calico's style (the script's notes say so)
	// ExternalNetworks counts the external networks, whose switches the
	// underlay namespace holds too (the script's notes say so).
	ExternalNetworks int
	// ContainerPods and Containers count what the plan leaves to
	// emulator/lab once the network is up: the pods that run containers
	// (each with its supervisor) and their containers.
	ContainerPods, Containers int
	// ContainerExternals and ExternalContainers count the same for the
	// external hosts that run containers (on supervisors like pods').
	ContainerExternals, ExternalContainers int
}

// Namespace is one network namespace the lab owns.
type Namespace struct {
	Name   string // as listed by `ip netns`
	Role   string // underlay, node, pod, router or external
	Object string // the node, pod or external host it emulates, "router" for the router ("" for the underlay)
}

// Stage is a step every unit of which can run in parallel; stages run one
// after the other because later ones use what earlier ones created.
type Stage struct {
	Name  string
	Units []Unit
}

// Unit is the work done from inside one namespace, in order. Its first
// operation usually creates that namespace.
type Unit struct {
	Namespace string
	Ops       []Op
}

// Op is one kernel operation. A new kind of operation is one type here and
// one case in the applier (package kernel); the applier checks Where and
// words its messages with Describe for every kind alike.
type Op interface {
	// Where is the namespace the operation is performed from: its
	// unit's namespace, where the applier's netlink socket lives.
	Where() string
	// Describe says what the operation does, as the iproute2 (or
	// sysctl) commands a person would type for the same effect.
	Describe() Description
}

// Group is an operation that stands for many (PeerOps). The applier, the
// script and Plan.Ops expand it one operation at a time: holding them all
// would make a plan grow with the square of the lab.
type Group interface {
	Op
	Expand() iter.Seq[Op]
}

// AddNamespace creates a named network namespace (`ip netns add`). It is
// performed from the namespace it creates: the first operation of that
// namespace's unit.
type AddNamespace struct {
	Name string
}

// SetSysctl writes sysctls inside a namespace, in order. Only net.* keys
// are per-namespace, so only those are ever planned.
type SetSysctl struct {
	Namespace string
	Settings  []Sysctl
}

// Sysctl is one key (dotted form, e.g. net.ipv4.ip_forward) and its value.
type Sysctl struct {
	Key, Value string
}

// noIPv6 switches IPv6 off in a new namespace before it has devices: labs
// are IPv4, and without it every new link chatters (router solicitations,
// MLD reports, duplicate address detection), which clutters captures and
// VXLAN learning tables and costs time.
var noIPv6 = []Sysctl{{"net.ipv6.conf.all.disable_ipv6", "1"}, {"net.ipv6.conf.default.disable_ipv6", "1"}}

// SetLinkUp brings an existing device up.
type SetLinkUp struct {
	Namespace string
	Device    string
}

// AddBridge creates a Linux bridge and brings it up.
type AddBridge struct {
	Namespace string
	Name      string
	MTU       int
}

// AddVeth creates a veth pair with each end directly in its namespace. The
// first end is attached to Master (if set) and brought up; the peer is left
// down for its own namespace to configure. It is performed from the peer's
// namespace: each new namespace's unit makes its own cable, to a namespace
// (node or underlay) that an earlier stage made.
type AddVeth struct {
	Namespace     string
	Name          string
	Master        string
	PeerNamespace string
	PeerName      string
	MTU           int
	MAC           net.HardwareAddr // of the first end; nil: the kernel's random one
}

// AddAddress assigns an address with its prefix length to a device.
type AddAddress struct {
	Namespace string
	Device    string
	Address   netip.Prefix // address/len, e.g. 192.168.1.1/24
}

// AddRoute adds a unicast route. A zero Dst means the default route; a zero
// Via makes it a device route (scope link). OnLink tells the kernel the
// gateway is directly reachable on Device even though no address of the
// device covers it, as flannel's and Calico's tunnel routes do.
type AddRoute struct {
	Namespace string
	Dst       netip.Prefix
	Via       netip.Addr
	Device    string // optional when Via is set
	OnLink    bool
	// Protocol says who installed the route (RTPROT_*, `proto` in ip
	// route); 0 is what `ip route add` sets unasked, boot.
	Protocol uint8
	MTU      int // the route's mtu metric; 0: the device's
}

// AddVXLAN creates a VXLAN device bound to an underlay device and brings it
// up. Without Group it only sends where FDB entries say (flannel); with a
// multicast Group it floods there. Master makes it a bridge port.
type AddVXLAN struct {
	Namespace string
	Name      string
	VNI       int
	Port      int
	Local     netip.Addr
	Underlay  string // the device carrying the encapsulated packets (eth0)
	Learning  bool
	Group     netip.Addr
	MAC       net.HardwareAddr // fixed VTEP MAC (flannel publishes it); nil: kernel-chosen
	Master    string
	MTU       int
}

// AddNeighbor adds a permanent neighbour (ARP) entry.
type AddNeighbor struct {
	Namespace string
	Device    string
	IP        netip.Addr
	MAC       net.HardwareAddr
}

// AddFDB adds a permanent forwarding entry to a VXLAN device's own FDB:
// frames for MAC go to the VTEP at Dst. Append adds another destination for
// the same MAC, which is how unicast flooding lists every node for the
// all-zero MAC.
type AddFDB struct {
	Namespace string
	Device    string
	MAC       net.HardwareAddr
	Dst       netip.Addr
	Append    bool
}

// AddIPIPTunnel makes an IPIP device ready, as Calico does with tunl0: the
// ipip module's fallback device (remote any, local any), which sends to
// whatever gateway the route names. Where the kernel lacks ipip, or
// Datapath is userspace, the kernel package builds a TUN device of the same
// name and labctl serves it from userspace.
type AddIPIPTunnel struct {
	Namespace string
	Name      string
	Local     netip.Addr // set for a device other than tunl0, which needs its own parameters
	MTU       int
	Datapath  string // spec.DatapathAuto, DatapathKernel or DatapathUserspace
}

func (o AddNamespace) Where() string  { return o.Name }
func (o SetSysctl) Where() string     { return o.Namespace }
func (o SetLinkUp) Where() string     { return o.Namespace }
func (o AddBridge) Where() string     { return o.Namespace }
func (o AddVeth) Where() string       { return o.PeerNamespace }
func (o AddAddress) Where() string    { return o.Namespace }
func (o AddRoute) Where() string      { return o.Namespace }
func (o AddVXLAN) Where() string      { return o.Namespace }
func (o AddNeighbor) Where() string   { return o.Namespace }
func (o AddFDB) Where() string        { return o.Namespace }
func (o AddIPIPTunnel) Where() string { return o.Namespace }

func (o AddNamespace) Describe() Description {
	return describe(tool("ip", "").words("netns", "add").name(o.Name))
}

func (o SetSysctl) Describe() Description {
	c := tool("sysctl", o.Namespace).words("-qw")
	for _, kv := range o.Settings {
		c = c.words(kv.Key + "=" + kv.Value)
	}
	return describe(c)
}

func (o SetLinkUp) Describe() Description {
	return describe(tool("ip", o.Namespace).words("link", "set").name(o.Device).words("up"))
}

func (o AddBridge) Describe() Description {
	return describe(tool("ip", o.Namespace).words("link", "add").name(o.Name).
		words("mtu", itoa(o.MTU), "up", "type", "bridge"))
}

func (o AddVeth) Describe() Description {
	c := tool("ip", o.Namespace).words("link", "add").name(o.Name).
		when(o.MAC != nil, "address", o.MAC.String()).words("mtu", itoa(o.MTU))
	if o.Master != "" {
		c = c.words("master").name(o.Master)
	}
	return describe(c.words("up", "type", "veth", "peer", "name").name(o.PeerName).
		words("mtu", itoa(o.MTU), "netns").name(o.PeerNamespace))
}

func (o AddAddress) Describe() Description {
	return describe(tool("ip", o.Namespace).words("addr", "add", o.Address.String(), "dev").name(o.Device))
}

func (o AddRoute) Describe() Description {
	dst := "default"
	if o.Dst.IsValid() {
		dst = o.Dst.String()
	}
	c := tool("ip", o.Namespace).words("route", "add", dst).when(o.Via.IsValid(), "via", o.Via.String())
	if o.Device != "" {
		c = c.words("dev").name(o.Device)
	}
	c = c.when(o.Protocol != 0, "proto", protocolName(o.Protocol)).when(o.OnLink, "onlink")
	return describe(c.when(o.MTU > 0, "mtu", itoa(o.MTU)))
}

func (o AddVXLAN) Describe() Description {
	c := tool("ip", o.Namespace).words("link", "add").name(o.Name).
		when(o.MAC != nil, "address", o.MAC.String()).words("mtu", itoa(o.MTU))
	if o.Master != "" {
		c = c.words("master").name(o.Master)
	}
	c = c.words("up", "type", "vxlan", "id", itoa(o.VNI)).when(o.Group.IsValid(), "group", o.Group.String()).
		words("local", o.Local.String(), "dev").name(o.Underlay).words("dstport", itoa(o.Port))
	return describe(c.when(!o.Learning, "nolearning"))
}

func (o AddNeighbor) Describe() Description {
	return describe(tool("ip", o.Namespace).words("neigh", "add", o.IP.String(), "lladdr", o.MAC.String(), "dev").
		name(o.Device).words("nud", "permanent"))
}

func (o AddFDB) Describe() Description {
	verb := "add"
	if o.Append {
		verb = "append"
	}
	return describe(tool("bridge", o.Namespace).words("fdb", verb, o.MAC.String(), "dev").name(o.Device).
		words("dst", o.Dst.String(), "self", "permanent"))
}

func (o AddIPIPTunnel) Describe() Description {
	up := tool("ip", o.Namespace).words("link", "set").name(o.Name).words("mtu", itoa(o.MTU), "up")
	if o.Datapath == spec.DatapathUserspace {
		return Description{
			Note: fmt.Sprintf("labctl serves %s from userspace (network.ipip.datapath: userspace): a TUN device whose packets\n"+
				"it wraps in IPIP (protocol 4) itself; the kernel's own device would be `ip link add %[1]s type ipip`.", o.Name),
			Commands: []Command{tool("ip", o.Namespace).words("tuntap", "add", "dev").name(o.Name).words("mode", "tun", "multi_queue"), up},
		}
	}
	add := tool("ip", o.Namespace).words("link", "add").name(o.Name).words("type", "ipip").
		when(o.Local.IsValid(), "local", o.Local.String())
	note := "Without the ipip module, labctl runs the same device as a TUN served by its userspace IPIP datapath."
	if o.Name == "tunl0" {
		note = "tunl0 is the ipip module's fallback device and exists once the module is loaded, hence || true.\n" + note
		add.Shell = "2>/dev/null || true"
	}
	return Description{Note: note, Commands: []Command{add, up}}
}

// NamespaceName is the name of the namespace emulating object in lab. Lab
// names are part of it so two labs never collide.
func NamespaceName(lab, object string) string { return lab + "-" + object }

// UnderlayNamespace is the name of the lab's underlay namespace.
func UnderlayNamespace(lab string) string { return NamespaceName(lab, "underlay") }

// VethName names the host-side veth of object (a pod on its node's bridge,
// or a node on the underlay bridge); spec owns the rule, so validation
// can refuse two names that would hash to the same veth.
func VethName(object string) string { return spec.VethName(object) }

// Compile turns a validated topology into a plan.
func Compile(t *spec.Topology) (*Plan, error) {
	p := &Plan{Lab: t.Name, Calico: t.Calico()}
	if t.Router != nil {
		p.ExternalNetworks = len(t.Router.Networks)
	}
	underlay := UnderlayNamespace(t.Name)
	mtu := t.PodMTU()
	ipv6 := ipv6Sysctls(t)

	p.Namespaces = append(p.Namespaces, Namespace{Name: underlay, Role: RoleUnderlay})
	p.Stages = append(p.Stages, Stage{Name: "underlay", Units: []Unit{{
		Namespace: underlay,
		Ops: []Op{
			AddNamespace{underlay},
			SetSysctl{underlay, ipv6},
			SetLinkUp{underlay, "lo"},
			AddBridge{underlay, UnderlayBridge, t.Network.MTU},
		},
	}}})
	p.Stages[0].Units[0].Ops = append(p.Stages[0].Units[0].Ops, externalBridges(t, underlay)...)

	nodes := Stage{Name: "nodes"}
	pods := Stage{Name: "pods"}
	underlayVeths := map[string]string{}
	mesh := newMesh(t)
	rulesets, err := nodeRulesets(t) // services.go
	if err != nil {
		return nil, err // validation lets no service through that kube-proxy cannot build
	}
	for i, n := range t.Nodes {
		ns := NamespaceName(t.Name, n.Name)
		p.Namespaces = append(p.Namespaces, Namespace{Name: ns, Role: RoleNode, Object: n.Name})
		veth := VethName(n.Name)
		if other, clash := underlayVeths[veth]; clash {
			return nil, fmt.Errorf("node %q: veth name %q clashes with node %q's", n.Name, veth, other)
		}
		underlayVeths[veth] = n.Name
		ops := []Op{
			AddNamespace{ns},
			SetSysctl{ns, append(slices.Clone(ipv6), Sysctl{"net.ipv4.ip_forward", "1"})},
			SetLinkUp{ns, "lo"},
			AddVeth{Namespace: underlay, Name: veth, Master: UnderlayBridge, PeerNamespace: ns, PeerName: "eth0", MTU: t.Network.MTU},
			SetLinkUp{ns, "eth0"},
			AddAddress{ns, "eth0", netip.PrefixFrom(n.IP, t.Network.Underlay.Bits())},
		}
		ops = append(ops, nodeWiringOps(t, mesh, i, ns, mtu)...)
		ops = append(ops, crossNodeOps(t, mesh, i, ns)...)
		outside, err := outsideOps(t, i, ns)
		if err != nil {
			return nil, fmt.Errorf("node %q: %w", n.Name, err)
		}
		ops = append(ops, outside...)
		ops = append(ops, serviceOps(t, i, ns, ops, rulesets)...) // services.go
		nodes.Units = append(nodes.Units, Unit{Namespace: ns, Ops: ops})

		podVeths := map[string]string{}
		for _, pod := range n.Pods {
			pns := NamespaceName(t.Name, pod.Name)
			p.Namespaces = append(p.Namespaces, Namespace{Name: pns, Role: RolePod, Object: pod.Name})
			pveth := t.HostVeth(pod.Name)
			if other, clash := podVeths[pveth]; clash || pveth == n.Bridge {
				return nil, fmt.Errorf("pod %q: veth name %q clashes with %q on node %q", pod.Name, pveth, other, n.Name)
			}
			podVeths[pveth] = pod.Name
			if len(pod.Containers) > 0 {
				p.ContainerPods++
				p.Containers += len(pod.Containers)
			}
			ops := []Op{AddNamespace{pns}, SetSysctl{pns, podSysctls(t, ipv6)}, SetLinkUp{pns, "lo"}}
			pods.Units = append(pods.Units, Unit{Namespace: pns, Ops: append(ops, podOps(t, n, pod, ns, pns, mtu)...)})
		}
	}
	p.Stages = append(p.Stages, nodes, pods)
	if len(t.Externals) > 0 {
		externals, names := externalsStage(t, underlay, ipv6)
		p.Stages = append(p.Stages, externals)
		p.Namespaces = append(p.Namespaces, names...)
		for _, e := range t.Externals {
			if len(e.Containers) > 0 {
				p.ContainerExternals++
				p.ExternalContainers += len(e.Containers)
			}
		}
	}
	return p, nil
}

// crossNodeOps builds what carries node i's pods' traffic to every other
// node, backend by backend (per link when the topology sets links). The
// per-peer routes, neighbours and FDB entries are PeerOps over the plan's
// one Mesh, so the plan stays linear in nodes although the lab they build
// has a route per node pair.
func crossNodeOps(t *spec.Topology, m *Mesh, i int, ns string) []Op {
	nw := t.Network
	n := t.Nodes[i]
	if nw.Backend == spec.BackendVXLAN && nw.VXLAN.Mode == spec.VXLANBridged {
		return bridgedVXLANOps(t, m, i, ns)
	}
	var ops []Op
	// host-gw (flannel): the peer's pod subnet is one hop away on the
	// underlay, via the peer's own address.
	if m.uses(i, PeersHostGW) {
		ops = append(ops, PeerOps{Namespace: ns, Node: i, Kind: PeersHostGW, Mesh: m})
	}
	// vxlan (flannel): one VTEP per node, addressed with the network
	// address of its pod subnet; per peer a route via the peer's VTEP
	// address, the neighbour entry giving that address's MAC and the FDB
	// entry sending that MAC to the peer's node IP. Nothing is learned.
	if m.uses(i, PeersVXLAN) {
		o := nw.VXLAN
		ops = append(ops,
			AddVXLAN{Namespace: ns, Name: o.Device, VNI: o.VNI, Port: o.Port, Local: n.IP, Underlay: "eth0",
				MAC: m.nodes[i].mac[:], MTU: nw.MTU - spec.BackendVXLAN.Overhead()},
			AddAddress{ns, o.Device, netip.PrefixFrom(n.PodSubnet.Addr(), 32)},
			PeerOps{Namespace: ns, Node: i, Kind: PeersVXLAN, Mesh: m},
		)
	}
	// ipip (Calico): tunl0 with an address of the node's pod subnet and per
	// peer a route to its pod subnet via its node IP, onlink through tunl0;
	// the route's gateway becomes the outer destination.
	if m.uses(i, PeersIPIP) {
		o := nw.IPIP
		tun := AddIPIPTunnel{Namespace: ns, Name: o.Device, MTU: nw.MTU - spec.BackendIPIP.Overhead(), Datapath: o.Datapath}
		if o.Device != "tunl0" {
			tun.Local = n.IP
		}
		ops = append(ops, tun, AddAddress{ns, o.Device, netip.PrefixFrom(n.PodSubnet.Addr(), 32)},
			PeerOps{Namespace: ns, Node: i, Kind: PeersIPIP, Mesh: m})
	}
	return ops
}

// bridgedVXLANOps builds the article's L2 overlay: the VXLAN device joins
// the pod bridge, so all pods share one segment; unknown destinations are
// flooded (to the multicast group, or to every other node) and MACs are
// learned. One device route sends the whole cluster CIDR to the bridge.
func bridgedVXLANOps(t *spec.Topology, m *Mesh, i int, ns string) []Op {
	nw := t.Network
	n := t.Nodes[i]
	o := nw.VXLAN
	ops := []Op{AddVXLAN{Namespace: ns, Name: o.Device, VNI: o.VNI, Port: o.Port, Local: n.IP, Underlay: "eth0",
		Learning: true, Group: o.Group, Master: n.Bridge, MTU: nw.MTU - spec.BackendVXLAN.Overhead()}}
	if o.Flooding == spec.FloodUnicast && len(t.Nodes) > 1 {
		ops = append(ops, PeerOps{Namespace: ns, Node: i, Kind: PeersFlood, Mesh: m})
	}
	return append(ops, AddRoute{Namespace: ns, Dst: nw.ClusterCIDR, Device: n.Bridge})
}

// VTEPMAC is the fixed MAC of a node's VXLAN device, derived from its node
// IP so every node can compute every other node's (flannel publishes its
// random one in a node annotation instead). Locally administered, unicast.
func VTEPMAC(nodeIP netip.Addr) net.HardwareAddr {
	a := nodeIP.As4()
	return net.HardwareAddr{0x0e, 0xfa, a[0], a[1], a[2], a[3]}
}

// Ops returns every operation in execution order, groups expanded. It
// holds them all at once, as the plan does not: for tests and small labs.
func (p *Plan) Ops() []Op {
	var ops []Op
	for _, s := range p.Stages {
		for _, u := range s.Units {
			for _, op := range u.Ops {
				if g, ok := op.(Group); ok {
					for sub := range g.Expand() {
						ops = append(ops, sub)
					}
					continue
				}
				ops = append(ops, op)
			}
		}
	}
	return ops
}
