// Package labgen generates large topologies for tests and benchmarks: n
// nodes with every address automatic, on an underlay and cluster CIDR
// large enough for thousands of nodes.
package labgen

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/labctl/emulator/spec"
)

// YAML writes a lab of nodes n0..n<nodes-1> with the given backend and
// pods per node (p<node>-<i>), every address left to spec's IPAM.
func YAML(name string, nodes, podsPerNode int, backend spec.Backend) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated: %d nodes, %d pods each, backend %s, every address automatic.\n", nodes, podsPerNode, backend)
	fmt.Fprintf(&b, "name: %s\nnetwork:\n  underlay: 10.0.0.0/16\n  clusterCIDR: 10.128.0.0/9\n  backend: %s\nnodes:\n", name, backend)
	for i := range nodes {
		fmt.Fprintf(&b, "  - name: n%d\n", i)
		if podsPerNode > 0 {
			b.WriteString("    pods:\n")
			for j := range podsPerNode {
				fmt.Fprintf(&b, "      - name: p%d-%d\n", i, j)
			}
		}
	}
	return []byte(b.String())
}

// Topology returns the lab YAML describes, validated by spec. Past
// spec.MaxNodes, which no host can build (the underlay bridge takes at most
// 1023 ports), it extends a validated one-node lab with the nodes spec's
// IPAM would give, so planning can still be measured at that size.
func Topology(name string, nodes int, backend spec.Backend) (*spec.Topology, error) {
	if nodes <= spec.MaxNodes {
		return spec.Parse(name+".yaml", YAML(name, nodes, 0, backend))
	}
	t, err := spec.Parse(name+".yaml", YAML(name, 1, 0, backend))
	if err != nil {
		return nil, err
	}
	nw := t.Network
	first := t.Nodes[0]
	t.Nodes = make([]spec.Node, nodes)
	ip := first.IP
	subnet := first.PodSubnet
	size := uint32(1) << (32 - nw.NodeMaskSize)
	for i := range t.Nodes {
		t.Nodes[i] = spec.Node{Name: fmt.Sprintf("n%d", i), IP: ip, PodSubnet: subnet,
			Gateway: subnet.Addr().Next(), Bridge: first.Bridge, HairpinMode: first.HairpinMode}
		ip = ip.Next()
		subnet = netip.PrefixFrom(add(subnet.Addr(), size), nw.NodeMaskSize)
		if !nw.Underlay.Contains(ip) || !nw.ClusterCIDR.Contains(subnet.Addr()) {
			return nil, fmt.Errorf("%d nodes do not fit %s and %s", nodes, nw.Underlay, nw.ClusterCIDR)
		}
	}
	return t, nil
}

func add(a netip.Addr, n uint32) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + n
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
