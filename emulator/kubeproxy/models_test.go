package kubeproxy

import (
	"net/netip"
	"time"
)

// The models the golden files and the cross-checks share. The cluster is
// the tutorial's: nodes 10.128.0.2 and .3, pod subnets 10.244.1.0/24 and
// 10.244.2.0/24, services in 10.96.0.0/12.
var (
	node1 = Node{
		Name:              "node1",
		IPs:               []netip.Addr{netip.MustParseAddr("10.128.0.2")},
		PodCIDR:           netip.MustParsePrefix("10.244.1.0/24"),
		ClusterCIDR:       netip.MustParsePrefix("10.244.0.0/16"),
		ServiceCIDR:       netip.MustParsePrefix("10.96.0.0/12"),
		MasqueradeOutside: true,
	}
	podA = netip.MustParseAddr("10.244.1.2") // on node1
	podB = netip.MustParseAddr("10.244.2.2") // on node2
	podC = netip.MustParseAddr("10.244.2.3") // on node2
)

func ep(ip netip.Addr, node string) Endpoint { return Endpoint{IP: ip, NodeName: node} }

var goldenModels = []struct {
	name     string
	node     Node
	services []Service
}{
	{"clusterip-two-endpoints", node1, []Service{{
		Name: "kube-svc-1", ClusterIP: netip.MustParseAddr("10.96.0.2"),
		Ports: []ServicePort{{Port: 8080, Endpoints: []Endpoint{ep(podA, "node1"), ep(podB, "node2")}}},
	}}},
	{"nodeport-cluster", node1, []Service{{
		Name: "web", Type: NodePort, ClusterIP: netip.MustParseAddr("10.96.0.3"),
		Ports: []ServicePort{{Name: "http", Port: 80, TargetPort: 8080, NodePort: 30001,
			Endpoints: []Endpoint{ep(podA, "node1"), ep(podB, "node2")}}},
	}}},
	{"nodeport-local", node1, []Service{
		{Name: "web-local", Type: NodePort, ExternalTrafficPolicy: PolicyLocal, ClusterIP: netip.MustParseAddr("10.96.0.4"),
			Ports: []ServicePort{{Name: "http", Port: 80, TargetPort: 8080, NodePort: 30002,
				Endpoints: []Endpoint{ep(podA, "node1"), ep(podB, "node2")}}}},
		{Name: "web-elsewhere", Type: NodePort, ExternalTrafficPolicy: PolicyLocal, ClusterIP: netip.MustParseAddr("10.96.0.5"),
			Ports: []ServicePort{{Name: "http", Port: 80, TargetPort: 8080, NodePort: 30003,
				Endpoints: []Endpoint{ep(podB, "node2")}}}},
	}},
	{"clientip-affinity", node1, []Service{{
		Name: "sticky", ClusterIP: netip.MustParseAddr("10.96.0.6"),
		SessionAffinity: AffinityClientIP, AffinityTimeout: 600 * time.Second,
		Ports: []ServicePort{{Port: 8080, Endpoints: []Endpoint{ep(podA, "node1"), ep(podB, "node2"), ep(podC, "node2")}}},
	}}},
	{"no-endpoints", node1, []Service{
		{Name: "empty", ClusterIP: netip.MustParseAddr("10.96.0.7"), Ports: []ServicePort{{Port: 80}}},
		{Name: "empty-np", Type: NodePort, ClusterIP: netip.MustParseAddr("10.96.0.8"),
			Ports: []ServicePort{{Port: 80, NodePort: 30004,
				Endpoints: []Endpoint{{IP: podA, NodeName: "node1", NotReady: true}}}}},
	}},
	{"udp-dns", node1, []Service{{
		Namespace: "kube-system", Name: "kube-dns", ClusterIP: netip.MustParseAddr("10.96.0.10"),
		Ports: []ServicePort{
			{Name: "dns", Protocol: UDP, Port: 53, Endpoints: []Endpoint{ep(podA, "node1")}},
			{Name: "dns-tcp", Protocol: TCP, Port: 53, Endpoints: []Endpoint{ep(podA, "node1")}},
		},
	}}},
	{"primary-nodeport-addresses", Node{
		Name: "node2", IPs: []netip.Addr{netip.MustParseAddr("10.128.0.3")},
		PodCIDR: netip.MustParsePrefix("10.244.2.0/24"), ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
		NodePortAddresses: []netip.Prefix{netip.MustParsePrefix("10.128.0.3/32")},
	}, []Service{{
		Name: "web", Type: NodePort, ClusterIP: netip.MustParseAddr("10.96.0.3"),
		Ports: []ServicePort{{Name: "http", Port: 80, TargetPort: 8080, NodePort: 30001,
			Endpoints: []Endpoint{ep(podA, "node1"), ep(podB, "node2")}}},
	}}},
}
