package spec

import (
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"
)

// nodePasses builds the nodes and their pods in three passes over the file,
// each establishing what the next relies on:
//
//  1. names and explicit values: every node and pod name claimed, explicit
//     node IPs and pod subnets claimed, bridges, labels, pod containers;
//  2. automatic subnets, then automatic node IPs, stepping around every
//     explicit one, even a later node's;
//  3. per node, its gateway and pod IPs: explicit ones first, then
//     automatic ones around them.
//
// Each pass visits every node once, so validation stays linear in the lab.
type nodePasses struct {
	*validator
	t   *Topology
	raw rawTopology
	ok  netCheck
	// names holds every node and pod name: they share the lab's namespace
	// names, so they are unique together.
	names map[string]nameClaim
	// nodeIPs holds every node IP taken: explicit ones after pass 1,
	// automatic ones too after pass 2.
	nodeIPs map[netip.Addr]located
	// underlayVeths holds the nodes' veths, which share the underlay.
	underlayVeths vethClaims
	// subnets and claimed hold the explicit pod subnets after pass 1.
	subnets []subnetClaim
	claimed subnetIndex
	// podIPs holds every pod IP taken, lab-wide, during pass 3.
	podIPs map[netip.Addr]located
}

type nameClaim struct{ path, kind string }

// buildNodes returns its passes' claims, which the external hosts share
// (buildExternals).
func (v *validator) buildNodes(t *Topology, raw rawTopology, ok netCheck) *nodePasses {
	p := &nodePasses{
		validator: v, t: t, raw: raw, ok: ok,
		names:         map[string]nameClaim{},
		nodeIPs:       map[netip.Addr]located{},
		underlayVeths: vethClaims{},
		podIPs:        map[netip.Addr]located{},
	}
	t.Nodes = make([]Node, len(raw.nodes))
	for i, rn := range raw.nodes {
		if rn.ok {
			p.explicitNode(&t.Nodes[i], rn)
		}
	}
	if ok.cluster && ok.mask {
		p.autoSubnets()
	}
	if ok.underlay {
		p.autoNodeIPs()
	}
	for i, rn := range raw.nodes {
		if rn.ok {
			p.podAddresses(&t.Nodes[i], rn)
		}
	}
	return p
}

// claimName reports a node or pod name already taken in the lab.
func (p *nodePasses) claimName(n *yaml.Node, path, name, kind string) {
	if prev, dup := p.names[name]; dup {
		p.Addf(n, path, "%s name %q is already used by the %s at %s (node, pod and external host names must be unique in a lab)",
			kind, name, prev.kind, strings.TrimSuffix(prev.path, ".name"))
		return
	}
	p.names[name] = nameClaim{path, kind}
}

// underlayName reads the name of an object whose veth is in the underlay
// namespace (a node, an external host) and claims it lab-wide, and its
// veth there; "" when it has none or a bad one (reported).
func (p *nodePasses) underlayName(at, n *yaml.Node, path, kind, where string) string {
	if n == nil {
		p.Missing(at, path, "name", "every %s needs a name", kindWords[kind])
		return ""
	}
	name, good := p.name(n, path+".name", kind)
	if !good {
		return ""
	}
	p.claimName(n, path+".name", name, kind)
	p.claimVeth(p.underlayVeths, n, path+".name", kind, name, VethName(name), where)
	return name
}

var kindWords = map[string]string{"node": "node", "external": "external host"}

// explicitNode is pass 1 for one node: its name, what the file sets
// explicitly, and its pods' names and containers.
func (p *nodePasses) explicitNode(n *Node, rn rawNode) {
	n.Name = p.underlayName(rn.at, rn.name, rn.path, "node", "on the underlay bridge")
	p.explicitNodeIP(n, rn)
	p.explicitSubnet(n, rn)
	p.podWiring(n, rn)
	n.Labels = p.labels(rn.labels, rn.path+".labels")
	p.podNames(n, rn)
}

// podWiring sets what the node's CNI style gives it: a bridge with its
// hairpin setting, or in Calico's style neither.
func (p *nodePasses) podWiring(n *Node, rn rawNode) {
	on, hairpinSet := p.Bool(rn.hairpin, rn.path+".hairpinMode")
	if p.t.Calico() {
		if rn.bridge != nil {
			p.Addf(rn.bridge, rn.path+".bridge", "a Calico node has no pod bridge: each pod has a routed veth of its own (remove bridge, or use network.cni: %s)", CNIBridge)
		}
		if hairpinSet {
			p.Addf(rn.hairpin, rn.path+".hairpinMode", "%s", noBridgeHairpin)
		}
		return
	}
	n.Bridge = p.bridge(rn)
	n.HairpinMode = p.t.Network.HairpinMode
	if hairpinSet {
		n.HairpinMode = on
	}
}

// explicitNodeIP claims the node IP the file sets, if it is a host address
// of the underlay no other node has.
func (p *nodePasses) explicitNodeIP(n *Node, rn rawNode) {
	nw := p.t.Network
	ip, good := p.Addr(rn.ip, rn.path+".ip")
	if !good || !p.ok.underlay {
		return
	}
	path := rn.path + ".ip"
	switch {
	case !nw.Underlay.Contains(ip):
		p.Addf(rn.ip, path, "%s is outside the underlay %s", ip, nw.Underlay)
	case ip == nw.Underlay.Addr():
		p.Addf(rn.ip, path, "%s is the network address of the underlay %s", ip, nw.Underlay)
	case ip == broadcast(nw.Underlay):
		p.Addf(rn.ip, path, "%s is the broadcast address of the underlay %s", ip, nw.Underlay)
	case ip == UnderlayGateway(nw.Underlay) && p.t.Calico():
		p.Addf(rn.ip, path, "%s is the underlay's first address, the default gateway of Calico's nodes: Calico's proxy ARP answers a pod only for an address the node has a route to, and the pods' gateway 169.254.1.1 is reached by the default route", ip)
	default:
		if prev, dup := p.nodeIPs[ip]; dup {
			p.Addf(rn.ip, path, "%s is already the IP of %s", ip, prev.owner("node"))
		} else {
			p.nodeIPs[ip] = located{path, n.Name}
			n.IP = ip
		}
	}
}

// explicitSubnet claims the pod subnet the file sets, if it lies in the
// cluster CIDR and overlaps no other node's.
func (p *nodePasses) explicitSubnet(n *Node, rn rawNode) {
	nw := p.t.Network
	s, good := p.prefix(rn.podCIDR, rn.path+".podCIDR")
	if !good || !p.ok.cluster {
		return
	}
	path := rn.path + ".podCIDR"
	if !(nw.ClusterCIDR.Contains(s.Addr()) && s.Bits() >= nw.ClusterCIDR.Bits()) {
		p.Addf(rn.podCIDR, path, "%s is outside the cluster CIDR %s", s, nw.ClusterCIDR)
	} else if prev, clash := p.claimed.overlap(s); clash {
		p.Addf(rn.podCIDR, path, "%s overlaps the pod subnet %s of %s", s, prev.p, prev.owner("node"))
	} else {
		c := subnetClaim{s, located{path, n.Name}}
		p.subnets = append(p.subnets, c)
		p.claimed.add(c)
		n.PodSubnet = s
	}
}

// bridge is the node's pod bridge: the file's, if the node can have a
// device of that name, or the default.
func (p *nodePasses) bridge(rn rawNode) string {
	s, good := p.String(rn.bridge, rn.path+".bridge")
	if !good {
		return DefaultBridge
	}
	if msg := checkIfName(s); msg != "" {
		p.Addf(rn.bridge, rn.path+".bridge", "bridge name %q %s", s, msg)
	} else if reservedIfName(s) {
		p.Addf(rn.bridge, rn.path+".bridge", "bridge name %q clashes with the node's eth0, lo or pod veth devices", s)
	} else if msg := fallbackDevice(s); msg != "" {
		p.Addf(rn.bridge, rn.path+".bridge", "bridge name %s", msg)
	} else {
		return s
	}
	return DefaultBridge
}

// podNames builds the node's pods but for their addresses: names (claimed
// lab-wide, their veths node-wide), labels, restart policy, containers. A
// deployment's pod takes its template, checked once with the deployment.
func (p *nodePasses) podNames(n *Node, rn rawNode) {
	podVeths := vethClaims{}
	where := "on " + nodeLabel(n.Name, rn.path)
	for _, rp := range rn.pods {
		pod := Pod{Node: n.Name}
		if !rp.ok {
			n.Pods = append(n.Pods, pod)
			continue
		}
		if rp.deployment != "" {
			pod.Name, pod.Deployment = rp.generated, rp.deployment
			p.claimName(rp.at, rp.path+".name", pod.Name, "pod")
			p.claimVeth(podVeths, rp.at, rp.path+".name", "pod", pod.Name, p.t.HostVeth(pod.Name), where)
			tmpl := p.templates[rp.deployment]
			pod.Labels, pod.RestartPolicy, pod.Containers = tmpl.labels, tmpl.restartPolicy, tmpl.containers
			if rp.deployment == clusterDNSTemplate { // services.go
				pod.Deployment, pod.Namespace = "", ClusterDNSNamespace
			}
			p.countContainers(rp.at, rp.path+".template.containers", len(pod.Containers))
			n.Pods = append(n.Pods, pod)
			continue
		}
		tmpl := p.buildTemplate(rp.rawPodTemplate)
		pod.Labels, pod.RestartPolicy, pod.Containers = tmpl.labels, tmpl.restartPolicy, tmpl.containers
		p.countContainers(rp.at, rp.path+".containers", len(pod.Containers))
		if rp.name == nil {
			p.Missing(rp.at, rp.path, "name", "every pod needs a name")
		} else if name, good := p.name(rp.name, rp.path+".name", "pod"); good {
			pod.Name = name
			p.claimName(rp.name, rp.path+".name", name, "pod")
			p.claimVeth(podVeths, rp.name, rp.path+".name", "pod", name, p.t.HostVeth(name), where)
		}
		n.Pods = append(n.Pods, pod)
	}
}

// autoSubnets is pass 2a: a subnet for every node that sets none, in file
// order, never one that any node, earlier or later, asked for explicitly.
func (p *nodePasses) autoSubnets() {
	nw := p.t.Network
	explicit := make([]netip.Prefix, 0, len(p.subnets))
	for _, s := range p.subnets {
		explicit = append(explicit, s.p)
	}
	alloc := newSubnetAllocator(nw.ClusterCIDR, nw.NodeMaskSize, explicit)
	var short []int // nodes left without a subnet
	for i, rn := range p.raw.nodes {
		if !rn.ok || rn.podCIDR != nil {
			continue // explicit, or explicit but invalid (already reported)
		}
		if s, good := alloc.next(); good {
			p.t.Nodes[i].PodSubnet = s
		} else {
			short = append(short, i)
		}
	}
	if len(short) > 0 {
		rn := p.raw.nodes[short[0]]
		p.Addf(rn.at, rn.path, "no free /%d subnet left in the cluster CIDR %s for %s%s (use a larger network.clusterCIDR or a larger network.nodeCIDRMaskSize)",
			nw.NodeMaskSize, nw.ClusterCIDR, nodeLabel(p.t.Nodes[short[0]].Name, rn.path), andMore(len(short)-1))
	}
}

// autoNodeIPs is pass 2b: an underlay IP for every node that sets none, in
// file order from .2 up, around every explicit one.
func (p *nodePasses) autoNodeIPs() {
	nw := p.t.Network
	// .1 stays free for a future underlay gateway.
	next := nw.Underlay.Addr().Next().Next()
	last := broadcast(nw.Underlay)
	var short []int
	for i, rn := range p.raw.nodes {
		if !rn.ok || rn.ip != nil {
			continue
		}
		for next != last {
			if _, used := p.nodeIPs[next]; !used {
				break
			}
			next = next.Next()
		}
		if next == last {
			short = append(short, i)
			continue
		}
		p.t.Nodes[i].IP = next
		p.nodeIPs[next] = located{rn.path, p.t.Nodes[i].Name}
		next = next.Next()
	}
	if len(short) > 0 {
		rn := p.raw.nodes[short[0]]
		p.Addf(rn.at, rn.path, "no free address left in the underlay %s for %s%s (use a larger network.underlay)",
			nw.Underlay, nodeLabel(p.t.Nodes[short[0]].Name, rn.path), andMore(len(short)-1))
	}
}

// podAddresses is pass 3 for one node, whose subnet is now known: its
// gateway, then its pods' explicit IPs, then automatic IPs for the rest.
func (p *nodePasses) podAddresses(n *Node, rn rawNode) {
	if !n.PodSubnet.IsValid() {
		// The subnet is unknown (already reported): only check that
		// explicit addresses are addresses at all.
		p.Addr(rn.gateway, rn.path+".gateway")
		for _, rp := range rn.pods {
			if rp.ok {
				p.Addr(rp.ip, rp.path+".ip")
			}
		}
		return
	}
	p.gateway(n, rn)
	fits := p.podsFit(n, rn)
	local := p.explicitPodIPs(n, rn)
	if fits {
		autoPodIPs(n, rn, local, p.t.Calico())
	}
}

// gateway sets the pods' gateway: the address the file gives the bridge,
// a host address of the node's subnet, or its first; in Calico's style
// always 169.254.1.1, which no device has.
func (p *nodePasses) gateway(n *Node, rn rawNode) {
	path := rn.path + ".gateway"
	if p.t.Calico() {
		n.Gateway = CalicoGateway
		if rn.gateway != nil {
			p.Addf(rn.gateway, path, "a Calico node has no gateway address: every pod's gateway is %s, which the node's end of the pod's veth answers by proxy ARP", CalicoGateway)
		}
		return
	}
	n.Gateway = n.PodSubnet.Addr().Next()
	gw, good := p.Addr(rn.gateway, path)
	if !good {
		return
	}
	s, who := n.PodSubnet, nodeLabel(n.Name, rn.path)
	switch {
	case !s.Contains(gw):
		p.Addf(rn.gateway, path, "%s is outside %s's pod subnet %s", gw, who, s)
	case gw == s.Addr():
		p.Addf(rn.gateway, path, "%s is the network address of %s's pod subnet %s", gw, who, s)
	case gw == broadcast(s):
		p.Addf(rn.gateway, path, "%s is the broadcast address of %s's pod subnet %s", gw, who, s)
	default:
		n.Gateway = gw
	}
}

// podsFit reports pods that do not fit the node: more than its subnet
// holds, or than its bridge takes. It says whether the subnet holds them,
// so that automatic addresses can be handed out.
func (p *nodePasses) podsFit(n *Node, rn rawNode) bool {
	capacity := (1 << (32 - n.PodSubnet.Bits())) - 3 // network, gateway, broadcast
	if p.t.Calico() {
		capacity += 2 // only the block's first address is kept (for the tunnel device)
	}
	at := rn.podsAt
	if at == nil {
		at = rn.at // the pods all came from deployments
	}
	if len(rn.pods) > capacity {
		p.Addf(at, rn.path+".pods", "%d pods do not fit %s's pod subnet %s, which holds %d",
			len(rn.pods), nodeLabel(n.Name, rn.path), n.PodSubnet, capacity)
		return false
	}
	if ports, why := bridgePorts(p.t); len(rn.pods) > ports && !p.t.Calico() {
		p.Addf(at, rn.path+".pods", "%d pods do not fit %s's bridge %s: a Linux bridge takes at most %d ports%s",
			len(rn.pods), nodeLabel(n.Name, rn.path), n.Bridge, MaxBridgePorts, why)
	}
	return true
}

// explicitPodIPs claims the pod IPs the file sets, if they are host
// addresses of the node's subnet other than its gateway, unique lab-wide.
// It returns the node's addresses taken.
func (p *nodePasses) explicitPodIPs(n *Node, rn rawNode) map[netip.Addr]bool {
	subnet := n.PodSubnet
	bcast := broadcast(subnet)
	local := map[netip.Addr]bool{}
	for j, rp := range rn.pods {
		if !rp.ok {
			continue
		}
		ip, good := p.Addr(rp.ip, rp.path+".ip")
		if !good {
			continue
		}
		path := rp.path + ".ip"
		calico := p.t.Calico()
		switch {
		case !subnet.Contains(ip):
			p.Addf(rp.ip, path, "%s is outside %s's pod subnet %s", ip, nodeLabel(n.Name, rn.path), subnet)
		case ip == subnet.Addr() && calico:
			p.Addf(rp.ip, path, "%s is the first address of %s's block %s, which labctl keeps for the node's tunnel device (Calico's IPAM hands it to tunl0 or vxlan.calico)", ip, nodeLabel(n.Name, rn.path), subnet)
		case ip == subnet.Addr():
			p.Addf(rp.ip, path, "%s is the network address of %s's pod subnet %s", ip, nodeLabel(n.Name, rn.path), subnet)
		case ip == n.Gateway:
			p.Addf(rp.ip, path, "%s is the gateway (bridge) address of %s's pod subnet %s", ip, nodeLabel(n.Name, rn.path), subnet)
		case ip == bcast && !calico: // Calico's /32 pods know no broadcast address
			p.Addf(rp.ip, path, "%s is the broadcast address of %s's pod subnet %s", ip, nodeLabel(n.Name, rn.path), subnet)
		default:
			if prev, dup := p.podIPs[ip]; dup {
				p.Addf(rp.ip, path, "%s is already the IP of %s", ip, prev.owner("pod"))
				continue
			}
			p.podIPs[ip] = located{path, n.Pods[j].Name}
			local[ip] = true
			n.Pods[j].IP = ip
		}
	}
	return local
}

// autoPodIPs gives every pod without an IP the next free host address
// after the gateway, going round to the subnet's first host address after
// its last (a gateway of .10 gives .11, .12, ..., .254, then .2 to .9);
// in Calico's style the next free address after the block's first, up to
// its last. podsFit has made sure there are enough.
func autoPodIPs(n *Node, rn rawNode, local map[netip.Addr]bool, calico bool) {
	first, last := n.PodSubnet.Addr().Next(), broadcast(n.PodSubnet)
	next := n.Gateway.Next()
	if calico {
		next, last = first, last.Next()
	}
	for j, rp := range rn.pods {
		if !rp.ok || rp.ip != nil {
			continue
		}
		for {
			if next == last {
				next = first
			}
			if !local[next] && next != n.Gateway {
				break
			}
			next = next.Next()
		}
		n.Pods[j].IP = next
		local[next] = true
		next = next.Next()
	}
}
