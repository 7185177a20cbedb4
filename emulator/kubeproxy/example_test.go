package kubeproxy_test

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/labctl/emulator/kubeproxy"
)

// Rules for one node and one service, rendered as the script a dry run
// prints; Program(netns.Path("node1"), rs) would send the same
// ruleset to the node's namespace in one netlink batch.
func ExampleRules() {
	node := kubeproxy.Node{
		Name:              "node1",
		IPs:               []netip.Addr{netip.MustParseAddr("10.128.0.2")},
		PodCIDR:           netip.MustParsePrefix("10.244.1.0/24"),
		ClusterCIDR:       netip.MustParsePrefix("10.244.0.0/16"),
		ServiceCIDR:       netip.MustParsePrefix("10.96.0.0/12"),
		MasqueradeOutside: true,
	}
	svc := kubeproxy.Service{
		Name:      "kube-svc-1",
		ClusterIP: netip.MustParseAddr("10.96.0.2"),
		Ports: []kubeproxy.ServicePort{{Port: 8080, Endpoints: []kubeproxy.Endpoint{
			{IP: netip.MustParseAddr("10.244.1.2"), NodeName: "node1"},
			{IP: netip.MustParseAddr("10.244.2.2"), NodeName: "node2"},
		}}},
	}
	rs, err := kubeproxy.Rules(node, []kubeproxy.Service{svc})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, line := range strings.Split(rs.Script(), "\n") {
		if strings.Contains(line, "numgen") || strings.Contains(line, "dnat to") {
			fmt.Println(strings.TrimSpace(line))
		}
	}
	// Output:
	// numgen random mod 2 vmap { 0 : goto endpoint-MK25SC67-default/kube-svc-1/tcp/__10.244.1.2/8080, 1 : goto endpoint-NFKAHUPF-default/kube-svc-1/tcp/__10.244.2.2/8080 }
	// meta l4proto tcp counter packets 0 bytes 0 dnat to 10.244.1.2:8080
	// meta l4proto tcp counter packets 0 bytes 0 dnat to 10.244.2.2:8080
}
