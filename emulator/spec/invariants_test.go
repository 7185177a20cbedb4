package spec

import (
	"net/netip"
	"testing"
)

// checkInvariants asserts what every accepted topology guarantees, whatever
// the input: the contract the plan package builds on.
func checkInvariants(t testing.TB, topo *Topology) {
	t.Helper()
	nw := topo.Network
	for _, p := range []netip.Prefix{nw.Underlay, nw.ClusterCIDR, nw.ServiceCIDR} {
		if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p || p.Bits() > 30 {
			t.Fatalf("network prefix %s is not a valid IPv4 CIDR of /30 or larger", p)
		}
	}
	if nw.Underlay.Overlaps(nw.ClusterCIDR) || nw.Underlay.Overlaps(nw.ServiceCIDR) || nw.ClusterCIDR.Overlaps(nw.ServiceCIDR) {
		t.Fatalf("network prefixes overlap: %+v", nw)
	}
	if nw.NodeMaskSize < nw.ClusterCIDR.Bits() || nw.NodeMaskSize > 30 {
		t.Fatalf("node mask /%d does not fit cluster CIDR %s", nw.NodeMaskSize, nw.ClusterCIDR)
	}
	if nw.Backend != BackendHostGW && nw.Backend != BackendVXLAN && nw.Backend != BackendIPIP {
		t.Fatalf("backend %q accepted", nw.Backend)
	}
	if nw.MTU < 576 || nw.MTU > 65535 || topo.PodMTU() < 576 || topo.PodMTU() > nw.MTU {
		t.Fatalf("MTU %d / pod MTU %d out of range", nw.MTU, topo.PodMTU())
	}
	if checkName(topo.Name) != "" {
		t.Fatalf("lab name %q is invalid", topo.Name)
	}
	if len(topo.Nodes) == 0 {
		t.Fatal("a topology without nodes was accepted")
	}
	for _, p := range []netip.Prefix{nw.Underlay, nw.ClusterCIDR, nw.ServiceCIDR} {
		if msg := reserved(p); msg != "" {
			t.Fatalf("network prefix accepted: %s", msg)
		}
	}
	if len(topo.Nodes) > MaxNodes {
		t.Fatalf("%d nodes accepted", len(topo.Nodes))
	}
	// What the kernel would refuse: one veth name twice in a namespace,
	// two devices of one name in a node.
	underlayVeths := map[string]bool{}
	tunnels := nodeTunnels(topo)
	for _, n := range topo.Nodes {
		if v := VethName(n.Name); underlayVeths[v] {
			t.Fatalf("node %s: underlay veth %s repeated", n.Name, v)
		} else {
			underlayVeths[v] = true
		}
		podVeths := map[string]bool{}
		for _, p := range n.Pods {
			if v := topo.HostVeth(p.Name); podVeths[v] {
				t.Fatalf("pod %s: veth %s repeated on %s", p.Name, v, n.Name)
			} else {
				podVeths[v] = true
			}
		}
		devs := map[string]bool{}
		if n.Bridge != "" {
			devs[n.Bridge] = true
		}
		for i, dev := range []string{nw.VXLAN.Device, nw.IPIP.Device} {
			if !tunnels[n.Name][i] {
				continue
			}
			if devs[dev] {
				t.Fatalf("node %s: device %s twice", n.Name, dev)
			}
			devs[dev] = true
		}
		if n.Bridge != "" && fallbackDevice(n.Bridge) != "" {
			t.Fatalf("node %s: bridge %s is a tunnel module's device", n.Name, n.Bridge)
		}
	}
	names := map[string]bool{}
	nodeIPs := map[netip.Addr]bool{}
	podIPs := map[netip.Addr]bool{}
	var subnets []netip.Prefix
	for _, n := range topo.Nodes {
		if checkName(n.Name) != "" || reservedNames[n.Name] || names[n.Name] {
			t.Fatalf("node name %q is invalid, reserved or repeated", n.Name)
		}
		names[n.Name] = true
		calico := topo.Calico()
		switch {
		case calico && (n.Bridge != "" || n.HairpinMode || n.Gateway != CalicoGateway):
			t.Fatalf("Calico node %s has bridge %q, hairpin %v, gateway %s", n.Name, n.Bridge, n.HairpinMode, n.Gateway)
		case !calico && (checkIfName(n.Bridge) != "" || reservedIfName(n.Bridge)):
			t.Fatalf("node %s: bridge name %q is invalid", n.Name, n.Bridge)
		}
		if !n.IP.Is4() || !nw.Underlay.Contains(n.IP) || n.IP == nw.Underlay.Addr() || n.IP == broadcast(nw.Underlay) || nodeIPs[n.IP] {
			t.Fatalf("node %s: IP %s is not a free host address of the underlay %s", n.Name, n.IP, nw.Underlay)
		}
		if calico && n.IP == UnderlayGateway(nw.Underlay) {
			t.Fatalf("Calico node %s has the underlay's gateway address %s", n.Name, n.IP)
		}
		nodeIPs[n.IP] = true
		s := n.PodSubnet
		if !s.IsValid() || s.Masked() != s || s.Bits() > 30 || s.Bits() < nw.ClusterCIDR.Bits() || !nw.ClusterCIDR.Contains(s.Addr()) {
			t.Fatalf("node %s: pod subnet %s is not inside the cluster CIDR %s", n.Name, s, nw.ClusterCIDR)
		}
		for _, o := range subnets {
			if o.Overlaps(s) {
				t.Fatalf("node %s: pod subnet %s overlaps %s", n.Name, s, o)
			}
		}
		subnets = append(subnets, s)
		if !calico && (!s.Contains(n.Gateway) || n.Gateway == s.Addr() || n.Gateway == broadcast(s)) {
			t.Fatalf("node %s: gateway %s is not a host address of %s", n.Name, n.Gateway, s)
		}
		for _, p := range n.Pods {
			if checkName(p.Name) != "" || reservedNames[p.Name] || names[p.Name] {
				t.Fatalf("pod name %q is invalid, reserved or repeated", p.Name)
			}
			names[p.Name] = true
			if p.Node != n.Name {
				t.Fatalf("pod %s: node %q, want %q", p.Name, p.Node, n.Name)
			}
			if !p.IP.Is4() || !s.Contains(p.IP) || p.IP == s.Addr() || p.IP == n.Gateway || (!calico && p.IP == broadcast(s)) || podIPs[p.IP] {
				t.Fatalf("pod %s: IP %s is not a free host address of %s's subnet %s", p.Name, p.IP, n.Name, s)
			}
			podIPs[p.IP] = true
		}
	}
	checkExternalInvariants(t, topo, names, nodeIPs, underlayVeths)
}

// checkExternalInvariants asserts what every accepted topology guarantees
// of its external hosts and router: names unique with the nodes' and pods',
// veths unique in the underlay namespace, addresses free host addresses of
// their networks, networks apart from each other and the lab's ranges.
func checkExternalInvariants(t testing.TB, topo *Topology, names map[string]bool, nodeIPs map[netip.Addr]bool, veths map[string]bool) {
	t.Helper()
	nw := topo.Network
	if r := topo.Router; r != nil {
		if names[RouterName] || r.IP != UnderlayGateway(nw.Underlay) || nodeIPs[r.IP] {
			t.Fatalf("router: name taken or address %s not the underlay's free first address", r.IP)
		}
		for i, n := range r.Networks {
			if reserved(n.CIDR) != "" || n.CIDR.Overlaps(nw.Underlay) || n.CIDR.Overlaps(nw.ClusterCIDR) || n.CIDR.Overlaps(nw.ServiceCIDR) || n.Gateway != n.CIDR.Addr().Next() {
				t.Fatalf("external network %+v overlaps the lab or has a wrong gateway", n)
			}
			for _, o := range r.Networks[:i] {
				if o.CIDR.Overlaps(n.CIDR) || o.Bridge == n.Bridge || o.Device == n.Device {
					t.Fatalf("external networks %+v and %+v clash", o, n)
				}
			}
		}
	}
	ips := map[netip.Addr]bool{}
	for _, e := range topo.Externals {
		if checkName(e.Name) != "" || reservedNames[e.Name] || names[e.Name] {
			t.Fatalf("external name %q is invalid, reserved or repeated", e.Name)
		}
		names[e.Name] = true
		if v := VethName(e.Name); veths[v] {
			t.Fatalf("external %s: underlay veth %s repeated", e.Name, v)
		} else {
			veths[v] = true
		}
		onUnderlay := e.Network == nw.Underlay
		if !onUnderlay && topo.ExternalNetworkOf(e) == nil {
			t.Fatalf("external %s: network %s is neither the underlay nor the router's", e.Name, e.Network)
		}
		if !e.Network.Contains(e.IP) || e.IP == e.Network.Addr() || e.IP == broadcast(e.Network) || ips[e.IP] || (onUnderlay && nodeIPs[e.IP]) || e.IP == e.Gateway {
			t.Fatalf("external %s: IP %s is not a free host address of %s", e.Name, e.IP, e.Network)
		}
		ips[e.IP] = true
		if (topo.Router != nil) != e.Gateway.IsValid() {
			t.Fatalf("external %s: gateway %s in a lab with router %v", e.Name, e.Gateway, topo.Router)
		}
		for _, r := range e.Routes {
			if !e.Network.Contains(r.Via) || r.Via == e.IP || (!r.Dst.IsValid() && e.Gateway.IsValid()) {
				t.Fatalf("external %s: route %+v", e.Name, r)
			}
		}
	}
}
