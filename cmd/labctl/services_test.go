package main

import (
	"bytes"
	"testing"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/internal/golden"
)

func hits(n uint64) *uint64 { return &n }

// serviceStatus is the article's service lab with counters read: the
// cluster DNS service, kube-svc-1 over A0 and B, a NodePort service and
// one without endpoints.
func serviceStatus(t *testing.T) *lab.Status {
	topo := loadTopology(t, "three-node-service.yaml")
	s := &lab.Status{Name: "three-node-service", Phase: lab.PhaseUp, CreatedAt: created, Topology: topo}
	s.Services = []lab.ServiceStatus{
		{Namespace: "kube-system", Name: "kube-dns", Type: "ClusterIP", ClusterIP: "10.96.0.10", Selector: map[string]string{"k8s-app": "kube-dns"},
			ExternalTrafficPolicy: "Cluster", SessionAffinity: "None", System: true, Ports: []lab.ServicePortStatus{
				{Name: "dns", Protocol: "UDP", Port: 53, TargetPort: "53", Endpoints: []lab.EndpointStatus{{IP: "10.200.0.4", Port: 53, Pod: "coredns", Node: "node-0", Hits: hits(2), HitsByNode: map[string]uint64{"node-2": 2}}}},
				{Name: "dns-tcp", Protocol: "TCP", Port: 53, TargetPort: "53", Endpoints: []lab.EndpointStatus{{IP: "10.200.0.4", Port: 53, Pod: "coredns", Node: "node-0", Hits: hits(0)}}}}},
		{Namespace: "default", Name: "kube-svc-1", Type: "ClusterIP", ClusterIP: "10.96.0.2", Selector: map[string]string{"app": "kube-svc-1"},
			ExternalTrafficPolicy: "Cluster", SessionAffinity: "None", Ports: []lab.ServicePortStatus{
				{Name: "http", Protocol: "TCP", Port: 8080, TargetPort: "8080", Endpoints: []lab.EndpointStatus{
					{IP: "10.200.0.2", Port: 8080, Pod: "A0", Node: "node-0", Hits: hits(10), HitsByNode: map[string]uint64{"node-0": 4, "node-2": 6}},
					{IP: "10.200.1.2", Port: 8080, Pod: "B", Node: "node-1", Hits: hits(11), HitsByNode: map[string]uint64{"node-0": 3, "node-2": 8}}}}}},
		{Namespace: "default", Name: "web", Type: "NodePort", ClusterIP: "10.96.0.3", ExternalTrafficPolicy: "Local", SessionAffinity: "ClientIP",
			Ports: []lab.ServicePortStatus{{Protocol: "TCP", Port: 80, TargetPort: "http", NodePort: 30001, Endpoints: []lab.EndpointStatus{
				{IP: "10.200.0.2", Port: 8080, Pod: "A0", Node: "node-0"}}}}},
		{Namespace: "default", Name: "empty", Type: "ClusterIP", ClusterIP: "10.96.0.4", Selector: map[string]string{"app": "db"},
			ExternalTrafficPolicy: "Cluster", SessionAffinity: "None", Ports: []lab.ServicePortStatus{{Protocol: "TCP", Port: 5432, TargetPort: "5432", Endpoints: []lab.EndpointStatus{}}}},
	}
	s.ServiceProblems = []string{`node "node-1": read endpoint counters: permission denied`}
	return s
}

// The services part of a lab's status: one row per endpoint of each port,
// HITS "-" where counters were not read, <none> for a port without
// endpoints.
func TestStatusServicesGolden(t *testing.T) {
	for _, wide := range []bool{false, true} {
		var b bytes.Buffer
		writeServices(&b, serviceStatus(t), wide)
		golden.Check(t, "testdata/status-services"+wideSuffix(wide)+".golden", b.Bytes())
	}
}
