package plan

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/labctl/labctl/emulator/kubeproxy"
	"github.com/labctl/labctl/emulator/spec"
)

// This file holds what a node gets for the lab's services: kube-proxy's
// rules in its nftables mode (emulator/kubeproxy), and what the node needs
// for them to work, as a kubeadm node has it.

// ProgramRuleset makes a node's nftables state kube-proxy's (and flannel's,
// when the node masquerades pod traffic to the outside): the tables of
// Ruleset, programmed over netlink in the node's namespace.
type ProgramRuleset struct {
	Namespace string
	Ruleset   *kubeproxy.Ruleset
	Services  int // how many services the rules serve, for the reader
}

func (o ProgramRuleset) Where() string { return o.Namespace }

// Describe is the ruleset as `nft -f` input in a here-document: the same
// tables `nft list ruleset` prints on the node once labctl has programmed
// them (counters at zero).
func (o ProgramRuleset) Describe() Description {
	c := tool("nft", o.Namespace).words("-f", "-")
	c.Shell = "<<'EOF'\n" + o.Ruleset.Script() + "EOF"
	return Description{
		Note: fmt.Sprintf("kube-proxy's rules (nftables mode) for %d %s, as labctl programs them over netlink:\n"+
			"read them back with `ip netns exec %s nft list ruleset`.", o.Services, plural(o.Services, "service"), o.Namespace),
		Commands: []Command{c},
	}
}

// hasServices reports whether the nodes get kube-proxy's rules: the lab
// has services (the cluster DNS service counts). A lab that only
// masquerades pod traffic leaving the cluster gets flannel's table alone
// (outsideOps), and needs no bridge netfilter.
func hasServices(t *spec.Topology) bool {
	return len(t.Services) > 0
}

// serviceOps is what node i gets for the services, after everything that
// wires its pods and peers (planned is that, to look at):
//
//   - bridge netfilter on (the bridge style only): a pod and an endpoint
//     on one bridge talk across it, and only with bridge netfilter does
//     the endpoint's bridged answer pass the conntrack that turns its
//     source back into the service address (kubeadm's preflight checks
//     for it too). An endpoint reaching itself through its service is then
//     DNATed while its frame is bridged, so the bridge must send the frame
//     back out of the port it came in by: hairpin mode, which hairpinMode:
//     false turns off to show that failure;
//   - a default route, as every real node has (via the underlay's first
//     address, as Calico's nodes get it already): a packet to a cluster IP
//     that kube-proxy does not DNAT must be routed before its filter
//     chains can reject it;
//   - kube-proxy's ruleset, rulesets[i] (nodeRulesets).
func serviceOps(t *spec.Topology, i int, ns string, planned []Op, rulesets []*kubeproxy.Ruleset) []Op {
	if !hasServices(t) {
		return nil
	}
	var ops []Op
	if !t.Calico() {
		ops = append(ops, SetSysctl{ns, []Sysctl{{"net.bridge.bridge-nf-call-iptables", "1"}}})
	}
	if !hasDefaultRoute(planned) {
		ops = append(ops, AddRoute{Namespace: ns, Via: spec.UnderlayGateway(t.Network.Underlay), Device: "eth0"})
	}
	return append(ops, ProgramRuleset{Namespace: ns, Ruleset: rulesets[i], Services: len(t.Services)})
}

// nodeRulesets builds every node's kube-proxy ruleset, or none when the
// lab has no services. Nodes whose rules come out the same share them
// (kubeproxy.RulesForNodes), so a large lab builds and marshals them once.
func nodeRulesets(t *spec.Topology) ([]*kubeproxy.Ruleset, error) {
	if !hasServices(t) {
		return nil, nil
	}
	nodes := make([]kubeproxy.Node, len(t.Nodes))
	for i, n := range t.Nodes {
		nodes[i] = KubeProxyNode(t, n)
	}
	return kubeproxy.RulesForNodes(nodes, KubeProxyServices(t))
}

// hasDefaultRoute reports whether ops add a default route.
func hasDefaultRoute(ops []Op) bool {
	for _, op := range ops {
		if r, ok := op.(AddRoute); ok && !r.Dst.IsValid() {
			return true
		}
	}
	return false
}

// KubeProxyNode is what kube-proxy and flannel know of node n: its
// address, its pod subnet, the cluster and service CIDRs.
func KubeProxyNode(t *spec.Topology, n spec.Node) kubeproxy.Node {
	return kubeproxy.Node{
		Name:              n.Name,
		IPs:               []netip.Addr{n.IP},
		PodCIDR:           n.PodSubnet,
		ClusterCIDR:       t.Network.ClusterCIDR,
		ServiceCIDR:       t.Network.ServiceCIDR,
		MasqueradeOutside: t.Network.Masquerade,
	}
}

// KubeProxyServices is the lab's services as kube-proxy reads them from
// the API server: each port with the endpoints of its EndpointSlices.
func KubeProxyServices(t *spec.Topology) []kubeproxy.Service {
	out := make([]kubeproxy.Service, 0, len(t.Services))
	for _, s := range t.Services {
		ks := kubeproxy.Service{
			Namespace: s.Namespace, Name: s.Name, Type: kubeproxy.ServiceType(s.Type), ClusterIP: s.ClusterIP,
			ExternalTrafficPolicy: kubeproxy.TrafficPolicy(s.ExternalTrafficPolicy),
			SessionAffinity:       kubeproxy.SessionAffinity(s.SessionAffinity),
			AffinityTimeout:       time.Duration(s.AffinityTimeoutSeconds) * time.Second,
		}
		for _, p := range s.Ports {
			kp := kubeproxy.ServicePort{
				Name: p.Name, Protocol: kubeproxy.Protocol(p.Protocol), Port: uint16(p.Port),
				TargetPort: uint16(p.TargetPort), NodePort: uint16(p.NodePort),
			}
			for _, e := range p.Endpoints {
				kp.Endpoints = append(kp.Endpoints, kubeproxy.Endpoint{IP: e.IP, Port: uint16(e.Port), NodeName: e.Node})
			}
			ks.Ports = append(ks.Ports, kp)
		}
		out = append(out, ks)
	}
	return out
}

// programsRules reports whether the plan programs nftables rules
// (kube-proxy's, or flannel's masquerade alone): its script then needs nft.
func (p *Plan) programsRules() bool {
	for _, s := range p.Stages {
		for _, u := range s.Units {
			for _, op := range u.Ops {
				switch op.(type) {
				case ProgramRuleset, ProgramMasquerade:
					return true
				}
			}
		}
	}
	return false
}
