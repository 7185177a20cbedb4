package plan

import (
	"net/netip"

	"github.com/labctl/labctl/emulator/kubeproxy"
	"github.com/labctl/labctl/emulator/spec"
)

// This file holds what a lab builds outside its cluster: the external
// hosts, the router that joins their networks to the underlay, and what
// the nodes need to reach them (a default route to the router, flannel's
// masquerade of pod traffic leaving the cluster).

// Roles of the namespaces outside the cluster.
const (
	RoleRouter   = "router"
	RoleExternal = "external"
)

// RouterNamespace is the name of the lab's router namespace.
func RouterNamespace(lab string) string { return NamespaceName(lab, spec.RouterName) }

// RouterVeth names the underlay namespace's end of the router's device dev
// (router-eth0 on the underlay bridge, router-eth1 on ext1, ...): no node or
// external host veth is named so, as theirs all start with "veth".
func RouterVeth(dev string) string { return "router-" + dev }

// ProgramMasquerade loads flannel's masquerade table (ip-masq) into a node:
// pod traffic to destinations outside the cluster CIDR leaves with the
// node's address, pod-to-pod traffic keeps the pods' addresses. Rules is
// kubeproxy.Masquerade's ruleset for the node; the kernel applier programs
// it over netlink (github.com/google/nftables), the script with nft.
type ProgramMasquerade struct {
	Namespace string
	Rules     *kubeproxy.Ruleset
}

func (o ProgramMasquerade) Where() string { return o.Namespace }

// Describe is `nft -f -` with the table as a here-document: the same
// ruleset Program sends, as `nft list ruleset` prints it.
func (o ProgramMasquerade) Describe() Description {
	c := tool("nft", o.Namespace).words("-f", "-")
	c.Shell = "<<'EOF'\n" + o.Rules.Script() + "EOF"
	return Description{
		Note:     "flannel's ip-masq: pod traffic leaving the cluster is masqueraded to the node's address.",
		Commands: []Command{c},
	}
}

// externalBridges are the switches of the external networks, in the
// underlay namespace next to the underlay's own.
func externalBridges(t *spec.Topology, underlay string) []Op {
	if t.Router == nil {
		return nil
	}
	var ops []Op
	for _, n := range t.Router.Networks {
		ops = append(ops, AddBridge{underlay, n.Bridge, t.Network.MTU})
	}
	return ops
}

// outsideOps is what node i needs for traffic leaving the cluster: a
// default route to the router when the lab has one (a Calico node has one
// already, to the same address), and flannel's masquerade when the lab
// masquerades.
func outsideOps(t *spec.Topology, i int, ns string) ([]Op, error) {
	n := t.Nodes[i]
	var ops []Op
	if t.Router != nil && !t.Calico() {
		ops = append(ops, AddRoute{Namespace: ns, Via: t.Router.IP, Device: "eth0"})
	}
	if t.Network.Masquerade && !hasServices(t) {
		// With services, flannel's table comes with kube-proxy's
		// (serviceOps).
		rs, err := kubeproxy.Masquerade(kubeproxy.Node{
			Name: n.Name, IPs: []netip.Addr{n.IP}, PodCIDR: n.PodSubnet, ClusterCIDR: t.Network.ClusterCIDR,
		})
		if err != nil {
			return nil, err
		}
		ops = append(ops, ProgramMasquerade{Namespace: ns, Rules: rs})
	}
	return ops, nil
}

// externalsStage builds the router and the external hosts, each from
// inside its own namespace, cabled to bridges of the underlay namespace.
// They need nothing but the underlay, so all run at once.
func externalsStage(t *spec.Topology, underlay string, ipv6 []Sysctl) (Stage, []Namespace) {
	s := Stage{Name: "externals"}
	var names []Namespace
	mtu := t.Network.MTU
	if r := t.Router; r != nil {
		ns := RouterNamespace(t.Name)
		names = append(names, Namespace{Name: ns, Role: RoleRouter, Object: spec.RouterName})
		ops := []Op{
			AddNamespace{ns},
			SetSysctl{ns, append(append([]Sysctl{}, ipv6...), Sysctl{"net.ipv4.ip_forward", "1"})},
			SetLinkUp{ns, "lo"},
		}
		type leg struct {
			dev, bridge string
			addr        netip.Prefix
		}
		legs := []leg{{"eth0", UnderlayBridge, netip.PrefixFrom(r.IP, t.Network.Underlay.Bits())}}
		for _, n := range r.Networks {
			legs = append(legs, leg{n.Device, n.Bridge, netip.PrefixFrom(n.Gateway, n.CIDR.Bits())})
		}
		for _, l := range legs {
			ops = append(ops,
				AddVeth{Namespace: underlay, Name: RouterVeth(l.dev), Master: l.bridge, PeerNamespace: ns, PeerName: l.dev, MTU: mtu},
				SetLinkUp{ns, l.dev},
				AddAddress{ns, l.dev, l.addr},
			)
		}
		s.Units = append(s.Units, Unit{Namespace: ns, Ops: ops})
	}
	for _, e := range t.Externals {
		ns := NamespaceName(t.Name, e.Name)
		names = append(names, Namespace{Name: ns, Role: RoleExternal, Object: e.Name})
		bridge := UnderlayBridge
		if n := t.ExternalNetworkOf(e); n != nil {
			bridge = n.Bridge
		}
		ops := []Op{
			AddNamespace{ns},
			SetSysctl{ns, ipv6},
			SetLinkUp{ns, "lo"},
			AddVeth{Namespace: underlay, Name: VethName(e.Name), Master: bridge, PeerNamespace: ns, PeerName: "eth0", MTU: mtu},
			SetLinkUp{ns, "eth0"},
			AddAddress{ns, "eth0", netip.PrefixFrom(e.IP, e.Network.Bits())},
		}
		if e.Gateway.IsValid() {
			ops = append(ops, AddRoute{Namespace: ns, Via: e.Gateway, Device: "eth0"})
		}
		for _, r := range e.Routes {
			ops = append(ops, AddRoute{Namespace: ns, Dst: r.Dst, Via: r.Via, Device: "eth0"})
		}
		s.Units = append(s.Units, Unit{Namespace: ns, Ops: ops})
	}
	return s, names
}

// The externals stage's note in the --dry-run script.
func init() {
	stageNotes["externals"] = "Outside the cluster: the router, with eth0 on the underlay at its first\n# address (the nodes' default gateway) and a leg on every external network,\n# forwarding between them, and the external hosts, each with eth0 on the\n# underlay or on its network's bridge (in the underlay namespace) and a default\n# route to the router. None of them has a route to the pod subnets."
}

// externalNetworksNote follows the underlay's stage note in a lab with
// external networks.
const externalNetworksNote = "\n# It holds the switch of every external network too (ext1, ...), where the\n# router and the external hosts on that network are cabled."
