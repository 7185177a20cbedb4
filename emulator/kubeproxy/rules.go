package kubeproxy

import (
	"fmt"
	"net/netip"
	"slices"
)

// Table and object names, as kube-proxy and flannel call them.
const (
	// KubeProxyTable is kube-proxy's table (family ip).
	KubeProxyTable = "kube-proxy"
	// FlannelTable is flannel's table in its nftables mode (family ip).
	FlannelTable = "flannel-ipv4"

	clusterIPsSet          = "cluster-ips"
	nodePortIPsSet         = "nodeport-ips"
	serviceIPsMap          = "service-ips"
	serviceNodePortsMap    = "service-nodeports"
	noEndpointServicesMap  = "no-endpoint-services"
	noEndpointNodePortsMap = "no-endpoint-nodeports"
	firewallIPsMap         = "firewall-ips"

	servicesChain           = "services"
	serviceEndpointsCheck   = "service-endpoints-check"
	nodePortEndpointsCheck  = "nodeport-endpoints-check"
	clusterIPsCheck         = "cluster-ips-check"
	firewallCheck           = "firewall-check"
	rejectChain             = "reject-chain"
	markForMasqueradeChain  = "mark-for-masquerade"
	masqueradingChain       = "masquerading"
	flannelPostroutingChain = "postrtg"
	flannelForwardChain     = "forward"
	masqueradeMark          = 0x4000 // kube-proxy's default --masquerade-bit 14
	multicast               = "224.0.0.0/4"
	loopback                = "127.0.0.0/8" // nftables mode never serves NodePorts there
)

// Hooks and priorities of kube-proxy's base chains. Filter chains that
// must see the destination before DNAT run at dstnat-10.
var kubeProxyBaseChains = []struct {
	name string
	hook Hook
}{
	{"filter-prerouting-pre-dnat", Hook{"filter", "prerouting", -110}},
	{"filter-output-pre-dnat", Hook{"filter", "output", -110}},
	{"filter-input", Hook{"filter", "input", 0}},
	{"filter-forward", Hook{"filter", "forward", 0}},
	{"filter-output", Hook{"filter", "output", 0}},
	{"nat-prerouting", Hook{"nat", "prerouting", -100}},
	{"nat-output", Hook{"nat", "output", -100}},
	{"nat-postrouting", Hook{"nat", "postrouting", 100}},
}

// kubeProxyJumps are the rules that enter kube-proxy's top chains from its
// base chains. reject is not allowed at prerouting on older kernels, so
// the endpoint checks hang off input, forward and output.
var kubeProxyJumps = []struct {
	to, from string
	newOnly  bool
}{
	{nodePortEndpointsCheck, "filter-input", true},
	{serviceEndpointsCheck, "filter-input", true},
	{serviceEndpointsCheck, "filter-forward", true},
	{serviceEndpointsCheck, "filter-output", true},
	{firewallCheck, "filter-prerouting-pre-dnat", true},
	{firewallCheck, "filter-output-pre-dnat", true},
	{servicesChain, "nat-output", false},
	{servicesChain, "nat-prerouting", false},
	{masqueradingChain, "nat-postrouting", false},
	{clusterIPsCheck, "filter-forward", true},
	{clusterIPsCheck, "filter-output", true},
}

// Rules builds node's ruleset for services: kube-proxy's table as its
// nftables proxier writes it, and flannel's masquerade table when the node
// masquerades pod traffic leaving the cluster. Every problem of the input
// is reported at once.
func Rules(node Node, services []Service) (*Ruleset, error) {
	if err := validate(&node, services); err != nil {
		return nil, fmt.Errorf("rules for node %q: %w", node.Name, err)
	}
	rs := &Ruleset{Node: node.Name, Tables: []*Table{kubeProxy(&node, sortedServices(services))}, cache: &batchCache{}}
	if node.MasqueradeOutside {
		rs.Tables = append(rs.Tables, flannel(&node))
	} else {
		rs.Absent = append(rs.Absent, FlannelTable)
	}
	return rs, nil
}

// builder accumulates one table.
type builder struct {
	t *Table
}

func (b *builder) addSet(s *Set) *Set { b.t.Sets = append(b.t.Sets, s); return s }

func (b *builder) addChain(name string, hook *Hook) *Chain {
	c := &Chain{Name: name, Hook: hook}
	b.t.Chains = append(b.t.Chains, c)
	return c
}

func (c *Chain) add(comment string, stmts ...stmt) {
	c.Rules = append(c.Rules, Rule{Stmts: stmts, Comment: comment})
}

// nodePortIPs are the node addresses that accept NodePorts, or nil for all.
func nodePortIPs(node *Node) []netip.Addr {
	var out []netip.Addr
	for _, ip := range node.IPs {
		for _, p := range node.NodePortAddresses {
			if p.Contains(ip) && !ip.IsLoopback() {
				out = append(out, ip)
				break
			}
		}
	}
	return out
}

func kubeProxy(node *Node, services []Service) *Table {
	b := &builder{t: &Table{Name: KubeProxyTable}}
	allNodePorts := len(node.NodePortAddresses) == 0

	// The sets and maps, in the order kube-proxy's transaction adds them.
	clusterIPs := b.addSet(&Set{Name: clusterIPsSet, Key: []keyType{typeIPv4}, Comment: "Active ClusterIPs"})
	if !allNodePorts {
		s := b.addSet(&Set{Name: nodePortIPsSet, Key: []keyType{typeIPv4}, Comment: "IPs that accept NodePort traffic"})
		for _, ip := range nodePortIPs(node) {
			s.Elements = append(s.Elements, Element{Key: []keyVal{addrKey(ip)}})
		}
	}
	dispatch := []keyType{typeIPv4, typeProto, typePort}
	nodePortKey := []keyType{typeProto, typePort}
	noEndpointServices := b.addSet(&Set{Name: noEndpointServicesMap, Key: dispatch, Map: true,
		Comment: "vmap to drop or reject packets to services with no endpoints"})
	noEndpointNodePorts := b.addSet(&Set{Name: noEndpointNodePortsMap, Key: nodePortKey, Map: true,
		Comment: "vmap to drop or reject packets to service nodeports with no endpoints"})
	b.addSet(&Set{Name: firewallIPsMap, Key: dispatch, Map: true,
		Comment: "destinations that are subject to LoadBalancerSourceRanges"})
	serviceIPs := b.addSet(&Set{Name: serviceIPsMap, Key: dispatch, Map: true,
		Comment: "ClusterIP, ExternalIP and LoadBalancer IP traffic"})
	serviceNodePorts := b.addSet(&Set{Name: serviceNodePortsMap, Key: nodePortKey, Map: true,
		Comment: "NodePort traffic"})

	// The base chains and the top chains they jump to.
	chains := map[string]*Chain{}
	for _, bc := range kubeProxyBaseChains {
		hook := bc.hook
		chains[bc.name] = b.addChain(bc.name, &hook)
	}
	for _, j := range kubeProxyJumps {
		if chains[j.to] == nil {
			chains[j.to] = b.addChain(j.to, nil)
		}
		if j.newOnly {
			chains[j.from].add("", ctStateNew{}, jumpTo(j.to))
		} else {
			chains[j.from].add("", jumpTo(j.to))
		}
	}
	markMasq := b.addChain(markForMasqueradeChain, nil)
	markMasq.add("", markSet{bit: masqueradeMark})
	m := chains[masqueradingChain]
	m.add("", markBitClear{bit: masqueradeMark}, verdictOf(ret))
	m.add("", markSet{bit: masqueradeMark, flip: true})
	m.add("", masquerade{})

	check := chains[clusterIPsCheck]
	check.add("Reject traffic to invalid ports of ClusterIPs", matchIPSet{daddr, clusterIPsSet}, reject{})
	if node.ServiceCIDR.IsValid() {
		check.add("Drop traffic to unallocated ClusterIPs", ipIn(daddr, node.ServiceCIDR), verdictOf(drop))
	}
	b.addChain(rejectChain, nil).add("", reject{})
	chains[serviceEndpointsCheck].add("", vmapLookup{dispatch3, noEndpointServicesMap})
	loopbackNet := netip.MustParsePrefix(loopback)
	if allNodePorts {
		chains[nodePortEndpointsCheck].add("", ipNotIn(daddr, loopbackNet), vmapLookup{dispatch2, noEndpointNodePortsMap})
	} else {
		chains[nodePortEndpointsCheck].add("", matchIPSet{daddr, nodePortIPsSet}, vmapLookup{dispatch2, noEndpointNodePortsMap})
	}
	chains[firewallCheck].add("", vmapLookup{dispatch3, firewallIPsMap})
	svc := chains[servicesChain]
	svc.add("", vmapLookup{dispatch3, serviceIPsMap})
	if allNodePorts {
		svc.add("", fibLocal{daddr}, ipNotIn(daddr, loopbackNet), vmapLookup{dispatch2, serviceNodePortsMap})
	} else {
		svc.add("", matchIPSet{daddr, nodePortIPsSet}, vmapLookup{dispatch2, serviceNodePortsMap})
	}

	for i := range services {
		s := &services[i]
		for j := range s.Ports {
			p := &s.Ports[j]
			sp := servicePort{node: node, svc: s, port: p, b: b}
			sp.build(clusterIPs, serviceIPs, serviceNodePorts, noEndpointServices, noEndpointNodePorts)
		}
	}
	return b.t
}

var (
	dispatch3 = []field{fieldDaddr, fieldL4Proto, fieldDport}
	dispatch2 = []field{fieldL4Proto, fieldDport}
)

// servicePort builds the objects of one service port, following the
// proxier's syncProxyRules.
type servicePort struct {
	node *Node
	svc  *Service
	port *ServicePort
	b    *builder
}

// endpoints are the ready endpoints, sorted, and those local to the node.
func (sp *servicePort) endpoints() (cluster, local []netip.AddrPort) {
	type ep struct {
		ap    netip.AddrPort
		local bool
	}
	var ready []ep
	for _, e := range sp.port.Endpoints {
		if e.NotReady {
			continue
		}
		ap := netip.AddrPortFrom(e.IP, sp.port.endpointPort(e))
		if slices.ContainsFunc(ready, func(x ep) bool { return x.ap == ap }) {
			continue // the same address twice in the slices is one endpoint
		}
		ready = append(ready, ep{ap, e.NodeName == sp.node.Name})
	}
	slices.SortFunc(ready, func(a, b ep) int { return a.ap.Compare(b.ap) })
	for _, e := range ready {
		cluster = append(cluster, e.ap)
		if e.local {
			local = append(local, e.ap)
		}
	}
	return cluster, local
}

func (sp *servicePort) build(clusterIPs, serviceIPs, serviceNodePorts, noEndpointServices, noEndpointNodePorts *Set) {
	s, p := sp.svc, sp.port
	proto := p.protocol()
	clusterEPs, localEPs := sp.endpoints()
	hasEndpoints := len(clusterEPs) > 0
	isNodePort := s.serviceType() == NodePort
	policyLocal := s.externalPolicyLocal() && isNodePort

	// Which endpoints this node can send to: every ready one with Cluster
	// policy; with Local, the local ones as well (they are among them).
	reachable := clusterEPs
	clusterChain := serviceChain(s, p)
	localChainName := localChain(s, p)
	usesLocalChain := policyLocal && len(localEPs) > 0
	extChain := externalChain(s, p)
	usesExternal := hasEndpoints && isNodePort
	hasExternalEndpoints := hasEndpoints && (!policyLocal || len(localEPs) > 0)
	comment := servicePortString(s, p)

	// Internal traffic: the cluster IP goes to the Cluster policy chain, or
	// is rejected when nothing serves it.
	if sp.port == &s.Ports[0] { // one element per service, however many ports
		clusterIPs.Elements = append(clusterIPs.Elements, Element{Key: []keyVal{addrKey(s.ClusterIP)}})
	}
	dispatchKey := []keyVal{addrKey(s.ClusterIP), protoKey(proto), portKey(p.Port)}
	if hasEndpoints {
		serviceIPs.Elements = append(serviceIPs.Elements, Element{Key: dispatchKey, Verdict: verdict{kind: goTo, chain: clusterChain}})
	} else {
		noEndpointServices.Elements = append(noEndpointServices.Elements,
			Element{Key: dispatchKey, Verdict: verdict{kind: goTo, chain: rejectChain}, Comment: comment})
	}
	// NodePorts: to the external chain; a service with no endpoints at all
	// rejects, one with Local policy and none on this node drops.
	if isNodePort {
		key := []keyVal{protoKey(proto), portKey(p.NodePort)}
		if usesExternal {
			serviceNodePorts.Elements = append(serviceNodePorts.Elements, Element{Key: key, Verdict: verdict{kind: goTo, chain: extChain}})
		}
		if !hasExternalEndpoints {
			v := verdict{kind: drop}
			if !hasEndpoints {
				v = verdict{kind: goTo, chain: rejectChain}
			}
			noEndpointNodePorts.Elements = append(noEndpointNodePorts.Elements, Element{Key: key, Verdict: v, Comment: comment})
		}
	}
	if !hasEndpoints {
		return
	}

	// ClientIP affinity: one set per endpoint of the clients that chose it.
	affinity := s.clientIPAffinity()
	if affinity {
		for _, ep := range reachable {
			sp.b.addSet(&Set{Name: affinitySet(s, p, ep), Key: []keyType{typeIPv4},
				Dynamic: true, Timeout: s.affinityTimeout(), Size: 65535})
		}
	}

	// The Cluster policy chain: traffic to the cluster IP from outside the
	// pod network is masqueraded, then one endpoint is picked.
	cc := sp.b.addChain(clusterChain, nil)
	cc.add("", ipIs(daddr, s.ClusterIP), matchDport{proto, p.Port}, ipNotIn(saddr, sp.node.ClusterCIDR), jumpTo(markForMasqueradeChain))
	sp.pickEndpoint(cc, clusterEPs, affinity)
	if usesLocalChain {
		sp.pickEndpoint(sp.b.addChain(localChainName, nil), localEPs, affinity)
	}

	if usesExternal {
		ext := sp.b.addChain(extChain, nil)
		if !policyLocal {
			// The endpoint may be on another node: masquerade so that the
			// reply comes back here to be un-DNATed.
			ext.add("", jumpTo(markForMasqueradeChain))
		} else {
			ext.add("short-circuit pod traffic", ipIn(saddr, sp.node.ClusterCIDR), gotoTo(clusterChain))
			ext.add("masquerade local traffic", fibLocal{saddr}, jumpTo(markForMasqueradeChain))
			ext.add("short-circuit local traffic", fibLocal{saddr}, gotoTo(clusterChain))
		}
		if hasExternalEndpoints {
			if policyLocal {
				ext.add("", gotoTo(localChainName))
			} else {
				ext.add("", gotoTo(clusterChain))
			}
		}
	}

	for _, ep := range reachable {
		c := sp.b.addChain(endpointChain(s, p, ep), nil)
		// Hairpin: an endpoint reaching itself through the service must be
		// masqueraded, or it would answer itself directly.
		c.add("", ipIs(saddr, ep.Addr()), jumpTo(markForMasqueradeChain))
		if affinity {
			c.add("", updateSaddr{affinitySet(s, p, ep)})
		}
		// The counter is labctl's: it shows students which endpoint a
		// connection went to. kube-proxy's rule is the same without it.
		c.add("", matchL4Proto{proto}, counter{}, dnat{ep})
	}
}

// pickEndpoint writes a policy chain's choice: a client with affinity
// returns to its endpoint, anyone else gets a random one.
func (sp *servicePort) pickEndpoint(c *Chain, eps []netip.AddrPort, affinity bool) {
	targets := make([]string, len(eps))
	for i, ep := range eps {
		targets[i] = endpointChain(sp.svc, sp.port, ep)
		if affinity {
			c.add("", matchIPSet{saddr, affinitySet(sp.svc, sp.port, ep)}, gotoTo(targets[i]))
		}
	}
	c.add("", numgenVmap{targets})
}

// flannel builds flannel's nftables-mode table: masquerade pod traffic
// that leaves the cluster, never pod-to-pod traffic, and accept forwarded
// pod traffic even where the forward policy is drop.
func flannel(node *Node) *Table {
	b := &builder{t: &Table{Name: FlannelTable}}
	cluster, pods := node.ClusterCIDR, node.PodCIDR
	post := b.addChain(flannelPostroutingChain, &Hook{"nat", "postrouting", 100})
	post.add("", markIs{masqueradeMark}, verdictOf(ret)) // kube-proxy masquerades these itself
	post.add("", ipIn(saddr, pods), ipIn(daddr, cluster), verdictOf(ret))
	post.add("", ipIn(saddr, cluster), ipIn(daddr, pods), verdictOf(ret))
	post.add("", ipNotIn(saddr, pods), ipIn(daddr, cluster), verdictOf(ret))
	post.add("", ipIn(saddr, cluster), ipNotIn(daddr, netip.MustParsePrefix(multicast)), masquerade{})
	post.add("", ipNotIn(saddr, cluster), ipIn(daddr, cluster), masquerade{})
	fwd := b.addChain(flannelForwardChain, &Hook{"filter", "forward", 0})
	fwd.add("", ipIn(saddr, cluster), verdictOf(accept))
	fwd.add("", ipIn(daddr, cluster), verdictOf(accept))
	return b.t
}
