package plan

import (
	"crypto/sha1"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/labctl/labctl/emulator/spec"
)

// This file holds how a node wires its pods, in the two styles a lab can
// choose (network.cni): the bridge style of flannel and the bridge CNI
// plugin, and Calico's routed style.

// Route protocols (the kernel's RTPROT_*) of the routes Calico's daemons
// install, as `ip route` names them.
const (
	// ProtoBIRD marks the routes BIRD installs for Calico's BGP: the node's
	// blackhole block and the remote blocks of IPIP and no-encapsulation
	// mode (`proto bird`).
	ProtoBIRD = 12
	// ProtoFelix marks the blackhole block Felix installs when it, not
	// BIRD, programs the routes, as in Calico's VXLAN mode (`proto 80`,
	// Felix's default route protocol, which iproute2 has no name for).
	ProtoFelix = 80
)

// protocolName is a route protocol as ip route writes and reads it.
func protocolName(p uint8) string {
	if p == ProtoBIRD {
		return "bird"
	}
	return strconv.Itoa(int(p))
}

// CalicoHostMAC is the MAC of the node end of every Calico pod's veth
// (the CNI plugin's hostSideMAC): the MAC pods resolve their gateway
// 169.254.1.1 to, by proxy ARP.
var CalicoHostMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}

// BridgeMAC is the MAC a node's pod bridge is pinned to, derived from the
// gateway address it holds: pinned, the bridge no longer takes the lowest
// MAC of its ports, so the pods' gateway keeps its MAC as pods come and go
// (the bridge CNI plugin pins the one the bridge has); derived, it is the
// same every time the lab is built. Locally administered, unicast.
func BridgeMAC(gateway netip.Addr) net.HardwareAddr {
	a := gateway.As4()
	return net.HardwareAddr{0x0e, 0xfb, a[0], a[1], a[2], a[3]}
}

// CalicoVTEPMAC is the MAC of a Calico node's vxlan.calico: the one Felix
// derives from the node's name when the node resource holds none, "f"
// (0x66) and the first five bytes of the name's SHA-1 (calico-node
// normally stores a random one there instead).
func CalicoVTEPMAC(node string) net.HardwareAddr {
	sum := sha1.Sum([]byte(node))
	return net.HardwareAddr{'f', sum[0], sum[1], sum[2], sum[3], sum[4]}
}

// SetLinkMAC sets a device's MAC (`ip link set DEV address MAC`). On a
// bridge this pins it: the kernel then keeps it whatever ports join.
type SetLinkMAC struct {
	Namespace string
	Device    string
	MAC       net.HardwareAddr
}

// SetHairpin turns hairpin mode on for a bridge port: the bridge may send
// a frame back out of the port it came in by, so a pod reaches itself
// through an address that leads it out of the pod, such as a service's.
type SetHairpin struct {
	Namespace string
	Device    string
}

// AddBlackhole adds a blackhole route: packets to Dst are dropped without
// an answer, unless a longer prefix matches. Calico blackholes its own
// block, so an address of it no pod has goes nowhere else.
type AddBlackhole struct {
	Namespace string
	Dst       netip.Prefix
	Protocol  uint8
}

// Across holds operations performed in another namespace of the lab from
// a unit: a pod's unit configures the node end of its veth, which exists
// only once that unit has made the veth. Namespace must be made by an
// earlier stage; every operation of Ops is planned from it.
type Across struct {
	From      string // the unit's namespace
	Namespace string // where Ops are performed
	Ops       []Op
}

func (o SetLinkMAC) Where() string   { return o.Namespace }
func (o SetHairpin) Where() string   { return o.Namespace }
func (o AddBlackhole) Where() string { return o.Namespace }
func (o Across) Where() string       { return o.From }

func (o SetLinkMAC) Describe() Description {
	return describe(tool("ip", o.Namespace).words("link", "set").name(o.Device).words("address", o.MAC.String()))
}

func (o SetHairpin) Describe() Description {
	return describe(tool("bridge", o.Namespace).words("link", "set", "dev").name(o.Device).words("hairpin", "on"))
}

func (o AddBlackhole) Describe() Description {
	c := tool("ip", o.Namespace).words("route", "add", "blackhole", o.Dst.String())
	return describe(c.when(o.Protocol != 0, "proto", protocolName(o.Protocol)))
}

// Describe is the description of every operation Across holds, in order:
// each command names the namespace it works in.
func (o Across) Describe() Description {
	var d Description
	for _, op := range o.Ops {
		sub := op.Describe()
		if sub.Note != "" {
			if d.Note != "" {
				d.Note += "\n"
			}
			d.Note += sub.Note
		}
		d.Commands = append(d.Commands, sub.Commands...)
	}
	return d
}

// ipv6Sysctls switch IPv6 off in a new namespace, or keep it on where the
// lab keeps IPv6 link-local addresses (written even then: a host may hand
// its own setting down to new namespaces, net.core.devconf_inherit_init_net).
func ipv6Sysctls(t *spec.Topology) []Sysctl {
	if t.Network.IPv6LinkLocal {
		return []Sysctl{{"net.ipv6.conf.all.disable_ipv6", "0"}, {"net.ipv6.conf.default.disable_ipv6", "0"}}
	}
	return noIPv6
}

// podSysctls are a pod's: its IPv6 setting, and in Calico's style IP
// forwarding off, as the Calico CNI plugin writes it for a pod that is not
// allowed to forward (its default).
func podSysctls(t *spec.Topology, ipv6 []Sysctl) []Sysctl {
	if t.Calico() {
		return append(slices.Clone(ipv6), Sysctl{"net.ipv4.ip_forward", "0"})
	}
	return ipv6
}

// nodeWiringOps is what a node gets for its pods before any pod comes. In
// the bridge style: the bridge with the gateway address, its MAC pinned.
// In Calico's: a default route to the underlay's first address (Calico's
// proxy ARP answers a pod only for an address the node has a route to,
// and the pods' gateway 169.254.1.1 is reached by the default route, as on
// every real node), and the node's block as a blackhole route, installed
// by BIRD, or by Felix when it programs the routes alone (VXLAN).
func nodeWiringOps(t *spec.Topology, m *Mesh, i int, ns string, mtu int) []Op {
	n := t.Nodes[i]
	if !t.Calico() {
		return []Op{
			AddBridge{ns, n.Bridge, mtu},
			AddAddress{ns, n.Bridge, netip.PrefixFrom(n.Gateway, n.PodSubnet.Bits())},
			SetLinkMAC{ns, n.Bridge, BridgeMAC(n.Gateway)},
		}
	}
	proto := uint8(ProtoBIRD)
	if !m.uses(i, PeersHostGW) && !m.uses(i, PeersIPIP) &&
		(m.uses(i, PeersVXLAN) || t.Network.Backend == spec.BackendVXLAN) {
		proto = ProtoFelix
	}
	return []Op{
		AddRoute{Namespace: ns, Via: spec.UnderlayGateway(t.Network.Underlay), Device: "eth0"},
		AddBlackhole{Namespace: ns, Dst: n.PodSubnet, Protocol: proto},
	}
}

// podOps wires a pod to its node (ns), after its namespace, sysctls and
// lo. The bridge style is the bridge plugin's: a veth whose node end is a
// port of the bridge (hairpin on where the node asks), the pod's address
// with its subnet's length, a default route via the bridge's address.
// Calico's is its CNI plugin's: a veth whose node end, cali plus a hash,
// has Calico's fixed MAC, no address and proxy ARP on; the pod's address
// as a /32; a device route to 169.254.1.1 and the default route via it;
// on the node a /32 device route to the pod.
func podOps(t *spec.Topology, n spec.Node, pod spec.Pod, ns, pns string, mtu int) []Op {
	veth := t.HostVeth(pod.Name)
	if !t.Calico() {
		ops := []Op{AddVeth{Namespace: ns, Name: veth, Master: n.Bridge, PeerNamespace: pns, PeerName: "eth0", MTU: mtu}}
		if n.HairpinMode {
			ops = append(ops, Across{From: pns, Namespace: ns, Ops: []Op{SetHairpin{ns, veth}}})
		}
		return append(ops,
			SetLinkUp{pns, "eth0"},
			AddAddress{pns, "eth0", netip.PrefixFrom(pod.IP, n.PodSubnet.Bits())},
			AddRoute{Namespace: pns, Via: n.Gateway},
		)
	}
	gw := spec.CalicoGateway
	return []Op{
		AddVeth{Namespace: ns, Name: veth, PeerNamespace: pns, PeerName: "eth0", MTU: mtu, MAC: CalicoHostMAC},
		SetLinkUp{pns, "eth0"},
		AddRoute{Namespace: pns, Dst: netip.PrefixFrom(gw, 32), Device: "eth0"},
		AddRoute{Namespace: pns, Via: gw, Device: "eth0"},
		AddAddress{pns, "eth0", netip.PrefixFrom(pod.IP, 32)},
		Across{From: pns, Namespace: ns, Ops: []Op{
			SetSysctl{ns, calicoHostSysctls(veth)},
			AddRoute{Namespace: ns, Dst: netip.PrefixFrom(pod.IP, 32), Device: veth},
		}},
	}
}

// calicoHostSysctls are what Calico's CNI plugin sets on the node end of a
// pod's veth: routing to localhost allowed (for NAT to the node), proxy
// ARP on and answering at once, forwarding on, and IPv6 router
// advertisements ignored.
func calicoHostSysctls(veth string) []Sysctl {
	return []Sysctl{
		{"net.ipv4.conf." + veth + ".route_localnet", "1"},
		{"net.ipv4.neigh." + veth + ".proxy_delay", "0"},
		{"net.ipv4.conf." + veth + ".proxy_arp", "1"},
		{"net.ipv4.conf." + veth + ".forwarding", "1"},
		{"net.ipv6.conf." + veth + ".accept_ra", "0"},
	}
}
