package spec

import (
	"fmt"
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/labctl/labctl/emulator/yamldoc"
)

// External hosts are machines outside the cluster: the tutorial's VM1 on a
// network of its own, a client on the node network. Each is a namespace
// of its own, cabled either to the underlay, next to the nodes, or to an
// external network that the lab's router joins to the underlay, as a
// cloud's VPC router joins subnets. Nothing outside the cluster knows the
// pod subnets: an external host reaches a pod only through a node (a
// NodePort), and pod traffic reaches it only masqueraded to its node's
// address (Network.Masquerade), unless its routes say otherwise.

// Limits of external hosts, checked before anything is allocated for them.
const (
	// MaxExternals: every external host is a port of a bridge in the
	// underlay namespace.
	MaxExternals = MaxBridgePorts
	// MaxExternalNetworks: each is a bridge in the underlay namespace and
	// a device of the router (eth1 to eth64).
	MaxExternalNetworks = 64
	// MaxExternalRoutes per external host.
	MaxExternalRoutes = 100
)

// RouterName is the router's object name; its namespace is <lab>-router,
// so no node, pod or external host of a lab with a router may take it.
const RouterName = "router"

// External is a machine outside the cluster.
type External struct {
	Name string     `json:"name"`
	IP   netip.Addr `json:"ip"`
	// Network is the network it is on: the underlay's prefix, or one of
	// the router's external networks.
	Network netip.Prefix `json:"network"`
	// Gateway is its default gateway, the router's address on its
	// network; invalid in a lab without a router.
	Gateway netip.Addr `json:"gateway"`
	// Routes are the routes the topology gives it besides the default.
	Routes        []Route       `json:"routes"`
	RestartPolicy RestartPolicy `json:"restartPolicy"`
	Containers    []Container   `json:"containers"`
}

// Route is a route of an external host: Dst (invalid for the default
// route) via a gateway on its own network.
type Route struct {
	Dst netip.Prefix `json:"dst"`
	Via netip.Addr   `json:"via"`
}

// Router joins the external networks to the underlay: a namespace with
// eth0 on the underlay at the underlay's first address (every node's
// default gateway) and a leg on each external network, forwarding between
// them. It knows no pod subnet, as the tutorial's cloud network does not.
type Router struct {
	IP       netip.Addr        `json:"ip"`
	Networks []ExternalNetwork `json:"networks"`
}

// ExternalNetwork is a network of external hosts other than the underlay.
type ExternalNetwork struct {
	CIDR netip.Prefix `json:"cidr"`
	// Bridge is its switch, in the underlay namespace next to the
	// underlay's own: ext1, ext2, ... in the order the file names them.
	Bridge string `json:"bridge"`
	// Device is the router's leg on it: eth1, eth2, ...
	Device string `json:"device"`
	// Gateway is the router's address on it, its first host address.
	Gateway netip.Addr `json:"gateway"`
}

// External returns the external host with the given name.
func (t *Topology) External(name string) (External, bool) {
	for _, e := range t.Externals {
		if e.Name == name {
			return e, true
		}
	}
	return External{}, false
}

// ExternalNetworkOf returns the external network e is on, or nil when e is
// on the underlay.
func (t *Topology) ExternalNetworkOf(e External) *ExternalNetwork {
	if t.Router == nil {
		return nil
	}
	for i := range t.Router.Networks {
		if t.Router.Networks[i].CIDR == e.Network {
			return &t.Router.Networks[i]
		}
	}
	return nil
}

// rawExternals is what the file says under externals.
type rawExternals struct {
	at    *yaml.Node
	items []rawExternal
}

type rawExternal struct {
	at                        *yaml.Node
	ok                        bool // a mapping; otherwise already reported and skipped
	path                      string
	name, network, ip, routes *yaml.Node
	tmpl                      rawPodTemplate
}

// namespaces counts the namespaces the externals ask for: one each, and
// the router's when some external names a network.
func (r rawExternals) namespaces() int {
	n := len(r.items)
	for _, e := range r.items {
		if e.network != nil {
			return n + 1
		}
	}
	return n
}

// decodeExternals reads the externals list: a pod's keys for containers
// (no labels: nothing selects an external host) and its own.
func (d *decoder) decodeExternals(n *yaml.Node) rawExternals {
	r := rawExternals{at: n}
	if n.Kind == yaml.SequenceNode && len(n.Content) > MaxExternals {
		d.Addf(n, "externals", "%d external hosts are more than one host can hold: at most %d (each is a port of a bridge in the underlay namespace, and a Linux bridge takes at most %d ports)",
			len(n.Content), MaxExternals, MaxBridgePorts)
		return r
	}
	d.List(n, "externals", func(i int, item *yaml.Node, path string) {
		e := rawExternal{at: item, path: path}
		e.tmpl.path = path
		fields := d.templateFields(&e.tmpl)
		delete(fields, "labels")
		fields["name"] = func(v *yaml.Node) { e.name = v }
		fields["network"] = func(v *yaml.Node) { e.network = v }
		fields["ip"] = func(v *yaml.Node) { e.ip = v }
		fields["routes"] = func(v *yaml.Node) { e.routes = v }
		e.ok = d.Mapping(item, path, fields)
		r.items = append(r.items, e)
	})
	return r
}

// buildMasquerade reads network.masquerade: on by default in the bridge
// style, as flannel's --ip-masq; Calico's own NAT (natOutgoing) is not
// built, so a Calico lab has none.
func (v *validator) buildMasquerade(nw *Network, raw rawNetwork) {
	nw.Masquerade = nw.CNI == CNIBridge
	on, set := v.Bool(raw.masquerade, "network.masquerade")
	switch {
	case !set:
	case on && nw.CNI == CNICalico:
		v.Addf(raw.masquerade, "network.masquerade", "labctl masquerades pod traffic as flannel's ip-masq does, and does not build Calico's own (its IP pool's natOutgoing): leave masquerade out in a Calico lab")
	default:
		nw.Masquerade = on
	}
}

// externalPasses builds the external hosts once the nodes are built, in
// passes like theirs: names, networks and containers; the router; explicit
// addresses; automatic addresses around every explicit one; routes.
type externalPasses struct {
	*nodePasses
	ext rawExternals
	// ips holds every external host's address taken, lab-wide (the
	// networks do not overlap each other or the underlay).
	ips map[netip.Addr]located
	// netOK says which externals' networks are known good; onUnderlay
	// which of those are the underlay.
	netOK, onUnderlay []bool
}

func (p *nodePasses) buildExternals(raw rawExternals) {
	if len(raw.items) == 0 {
		return
	}
	x := &externalPasses{nodePasses: p, ext: raw, ips: map[netip.Addr]located{},
		netOK: make([]bool, len(raw.items)), onUnderlay: make([]bool, len(raw.items))}
	t := p.t
	t.Externals = make([]External, len(raw.items))
	for i, re := range raw.items {
		if re.ok {
			x.identity(&t.Externals[i], re)
		}
	}
	nets := x.networks()
	if len(nets) > 0 {
		t.Router = &Router{IP: UnderlayGateway(t.Network.Underlay), Networks: nets}
		x.checkRouter()
	}
	for i, re := range raw.items {
		if re.ok && x.netOK[i] {
			x.explicitIP(&t.Externals[i], re, i)
		}
	}
	x.autoIPs()
	for i, re := range raw.items {
		if re.ok && x.netOK[i] {
			x.routes(&t.Externals[i], re, i)
		}
	}
	x.checkPorts()
}

// identity is pass 1 for one external host: its name (unique among nodes,
// pods and externals, its veth unique in the underlay namespace) and its
// containers.
func (x *externalPasses) identity(e *External, re rawExternal) {
	e.Name = x.underlayName(re.at, re.name, re.path, "external", "in the underlay namespace")
	tmpl := x.buildTemplate(re.tmpl)
	e.RestartPolicy, e.Containers = tmpl.restartPolicy, tmpl.containers
	x.countContainers(re.at, re.path+".containers", len(e.Containers))
}

// networks reads every external host's network: the underlay when none is
// given (or the underlay's own prefix), else a network outside the lab's
// ranges that overlaps no other but is the same as another's. It returns
// the external networks in the order the file first names them.
func (x *externalPasses) networks() []ExternalNetwork {
	nw := x.t.Network
	var nets []ExternalNetwork
	type claim struct {
		p netip.Prefix
		located
	}
	var first []claim
	tooMany := false
	for i, re := range x.ext.items {
		if !re.ok {
			continue
		}
		e := &x.t.Externals[i]
		if re.network == nil {
			e.Network, x.netOK[i], x.onUnderlay[i] = nw.Underlay, x.ok.underlay, true
			continue
		}
		path := re.path + ".network"
		p, good := x.prefix(re.network, path)
		if !good {
			continue
		}
		if x.ok.underlay && p == nw.Underlay {
			e.Network, x.netOK[i], x.onUnderlay[i] = p, true, true
			continue
		}
		if msg := reserved(p); msg != "" {
			x.Addf(re.network, path, "%s", msg)
			continue
		}
		if !x.separate(re.network, path, p) {
			continue
		}
		seen, clash := false, false
		for _, c := range first {
			if c.p == p {
				seen = true
			} else if c.p.Overlaps(p) {
				x.Addf(re.network, path, "%s overlaps the network %s of %s: external hosts share a network by giving the same one", p, c.p, c.owner("external"))
				clash = true
				break
			}
		}
		if clash {
			continue
		}
		if !seen {
			if len(nets) == MaxExternalNetworks {
				if !tooMany {
					x.Addf(re.network, path, "network %s is one more than the %d external networks a lab may have (each is a bridge and a device of the router)", p, MaxExternalNetworks)
					tooMany = true
				}
				continue
			}
			first = append(first, claim{p, located{path, e.Name}})
			k := len(nets) + 1
			nets = append(nets, ExternalNetwork{CIDR: p, Bridge: fmt.Sprintf("ext%d", k), Device: fmt.Sprintf("eth%d", k), Gateway: p.Addr().Next()})
		}
		e.Network, x.netOK[i] = p, true
	}
	return nets
}

// separate reports an external network that overlaps the lab's own ranges.
func (x *externalPasses) separate(n *yaml.Node, path string, p netip.Prefix) bool {
	nw := x.t.Network
	for _, r := range []struct {
		ok   bool
		q    netip.Prefix
		what string
	}{
		{x.ok.underlay, nw.Underlay, "the underlay %s (network.underlay): leave network out to put the host on the underlay, or give the underlay's own prefix"},
		{x.ok.cluster, nw.ClusterCIDR, "the cluster CIDR %s (network.clusterCIDR), where the pods' addresses come from"},
		{x.ok.service, nw.ServiceCIDR, "the service CIDR %s (network.serviceCIDR)"},
	} {
		if r.ok && r.q.Overlaps(p) {
			x.Addf(n, path, "%s overlaps "+r.what, p, r.q)
			return false
		}
	}
	return true
}

// checkRouter reports what the router cannot share: its namespace name
// and its address on the underlay, the underlay's first.
func (x *externalPasses) checkRouter() {
	at, path := x.firstNetwork()
	if prev, taken := x.names[RouterName]; taken {
		x.Addf(at, path, "an external network needs the lab's router, whose namespace %q takes the name %q from the %s at %s (rename it)",
			namespaceName(x.t.Name, RouterName), RouterName, prev.kind, strings.TrimSuffix(prev.path, ".name"))
	}
	gw := x.t.Router.IP
	for i, rn := range x.raw.nodes {
		if rn.ok && i < len(x.t.Nodes) && rn.ip != nil && x.t.Nodes[i].IP == gw {
			x.Addf(rn.ip, rn.path+".ip", "%s is the underlay's first address, the router's, which joins the external networks to the underlay (%s) and is every node's default gateway", gw, path)
		}
	}
}

// firstNetwork is where the file first names an external network.
func (x *externalPasses) firstNetwork() (*yaml.Node, string) {
	for i, re := range x.ext.items {
		if re.ok && x.netOK[i] && !x.onUnderlay[i] {
			return re.network, re.path + ".network"
		}
	}
	return x.ext.at, "externals"
}

// namespaceName is the name of the namespace emulating object in lab, as
// plan names it.
func namespaceName(lab, object string) string { return lab + "-" + object }

// explicitIP claims the address the file gives an external host: a host
// address of its network that no node, other external host or the router
// has.
func (x *externalPasses) explicitIP(e *External, re rawExternal, i int) {
	ip, good := x.Addr(re.ip, re.path+".ip")
	if !good {
		return
	}
	path := re.path + ".ip"
	where := "its network " + e.Network.String()
	if x.onUnderlay[i] {
		where = "the underlay " + e.Network.String()
	}
	switch {
	case !e.Network.Contains(ip):
		x.Addf(re.ip, path, "%s is outside %s", ip, where)
	case ip == e.Network.Addr():
		x.Addf(re.ip, path, "%s is the network address of %s", ip, where)
	case ip == broadcast(e.Network):
		x.Addf(re.ip, path, "%s is the broadcast address of %s", ip, where)
	case x.t.Router != nil && ip == x.gatewayOf(e, i):
		x.Addf(re.ip, path, "%s is the router's address on %s (the network's first address)", ip, where)
	default:
		if prev, dup := x.nodeIPs[ip]; dup && x.onUnderlay[i] {
			x.Addf(re.ip, path, "%s is already the IP of %s", ip, prev.owner("node"))
		} else if prev, dup := x.ips[ip]; dup {
			x.Addf(re.ip, path, "%s is already the IP of %s", ip, prev.owner("external"))
		} else {
			x.ips[ip] = located{path, e.Name}
			e.IP = ip
		}
	}
}

// gatewayOf is the router's address on external i's network.
func (x *externalPasses) gatewayOf(e *External, i int) netip.Addr {
	if x.onUnderlay[i] {
		return x.t.Router.IP
	}
	return x.t.ExternalNetworkOf(*e).Gateway
}

// autoIPs gives every external host without an address the next free one
// of its network, in file order: on the underlay from the second address
// on, past the nodes; elsewhere from the address after the router's.
func (x *externalPasses) autoIPs() {
	next := map[netip.Prefix]netip.Addr{}
	reported := map[netip.Prefix]bool{}
	for i, re := range x.ext.items {
		e := &x.t.Externals[i]
		if !re.ok || !x.netOK[i] || re.ip != nil {
			continue
		}
		a, ok := next[e.Network]
		if !ok {
			a = e.Network.Addr().Next().Next()
		}
		last := broadcast(e.Network)
		for a != last {
			_, node := x.nodeIPs[a]
			_, ext := x.ips[a]
			if !ext && !(node && x.onUnderlay[i]) {
				break
			}
			a = a.Next()
		}
		if a == last {
			if !reported[e.Network] {
				x.Addf(re.at, re.path, "no free address left in %s for external %s", e.Network, nodeLabel(e.Name, re.path))
				reported[e.Network] = true
			}
			continue
		}
		e.IP = a
		x.ips[a] = located{re.path, e.Name}
		next[e.Network] = a.Next()
	}
}

// routes sets an external host's default gateway (the router, when the
// lab has one) and reads its own routes: each to a network (or default,
// where there is no router) via an address of its network.
func (x *externalPasses) routes(e *External, re rawExternal, i int) {
	if x.t.Router != nil {
		e.Gateway = x.gatewayOf(e, i)
	}
	if re.routes == nil {
		return
	}
	path := re.path + ".routes"
	if re.routes.Kind == yaml.SequenceNode && len(re.routes.Content) > MaxExternalRoutes {
		x.Addf(re.routes, path, "%d routes are more than an external host may have (at most %d)", len(re.routes.Content), MaxExternalRoutes)
		return
	}
	seen := map[netip.Prefix]string{}
	x.List(re.routes, path, func(j int, item *yaml.Node, rpath string) {
		var dst, via *yaml.Node
		if !x.Mapping(item, rpath, yamldoc.Keys{
			"dst": func(v *yaml.Node) { dst = v },
			"via": func(v *yaml.Node) { via = v },
		}) {
			return
		}
		r := Route{}
		good := true
		switch {
		case dst == nil:
			x.Missing(item, rpath, "dst", "a route needs a destination: a CIDR, or default")
			good = false
		case dst.Kind == yaml.ScalarNode && dst.Value == "default":
			if e.Gateway.IsValid() {
				x.Addf(dst, rpath+".dst", "the default route of an external host is the router's address on its network (%s), which labctl sets", e.Gateway)
				good = false
			}
		default:
			p, ok := x.Prefix(dst, rpath+".dst")
			switch {
			case !ok:
				good = false
			case p.Bits() == 0:
				x.Addf(dst, rpath+".dst", "write the default route as dst: default")
				good = false
			case p.Overlaps(e.Network) && p.Bits() <= e.Network.Bits():
				x.Addf(dst, rpath+".dst", "%s covers the host's own network %s, which it reaches directly", p, e.Network)
				good = false
			default:
				r.Dst = p
			}
		}
		if via == nil {
			x.Missing(item, rpath, "via", "a route needs a gateway on the host's network %s", e.Network)
			good = false
		} else if a, ok := x.Addr(via, rpath+".via"); ok {
			switch {
			case !e.Network.Contains(a) || a == e.Network.Addr() || a == broadcast(e.Network):
				x.Addf(via, rpath+".via", "%s is not a host address of the host's network %s, so it cannot be its gateway", a, e.Network)
				good = false
			case a == e.IP:
				x.Addf(via, rpath+".via", "%s is the host's own address", a)
				good = false
			default:
				r.Via = a
			}
		} else {
			good = false
		}
		if !good {
			return
		}
		if prev, dup := seen[r.Dst]; dup {
			x.Addf(dst, rpath+".dst", "a route to %s is already set at %s", dstWord(r.Dst), prev)
			return
		}
		seen[r.Dst] = rpath
		e.Routes = append(e.Routes, r)
	})
}

func dstWord(p netip.Prefix) string {
	if !p.IsValid() {
		return "default"
	}
	return p.String()
}

// checkPorts reports a bridge in the underlay namespace with more ports
// than a Linux bridge takes: the underlay's holds the nodes, the external
// hosts on it and the router; an external network's its hosts and the
// router.
func (x *externalPasses) checkPorts() {
	ports := map[netip.Prefix]int{}
	if x.ok.underlay {
		ports[x.t.Network.Underlay] = len(x.t.Nodes)
		if x.t.Router != nil {
			ports[x.t.Network.Underlay]++
			for _, n := range x.t.Router.Networks {
				ports[n.CIDR] = 1
			}
		}
	}
	reported := map[netip.Prefix]bool{}
	for i, re := range x.ext.items {
		if !re.ok || !x.netOK[i] {
			continue
		}
		e := x.t.Externals[i]
		ports[e.Network]++
		if ports[e.Network] > MaxBridgePorts && !reported[e.Network] {
			reported[e.Network] = true
			x.Addf(re.at, re.path, "external %s is one host too many on %s: its bridge takes at most %d ports (the nodes, the router and the external hosts on it)",
				nodeLabel(e.Name, re.path), e.Network, MaxBridgePorts)
		}
	}
}
