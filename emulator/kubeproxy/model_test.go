package kubeproxy

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestRulesRejectsBadInput: every problem is reported at once, each saying
// where it is.
func TestRulesRejectsBadInput(t *testing.T) {
	web := func(f func(*Service)) []Service {
		s := Service{Name: "web", ClusterIP: netip.MustParseAddr("10.96.0.3"),
			Ports: []ServicePort{{Port: 80, Endpoints: []Endpoint{{IP: podA, NodeName: "node1"}}}}}
		f(&s)
		return []Service{s}
	}
	for _, c := range []struct {
		name     string
		node     func(*Node)
		services []Service
		want     []string
	}{
		{"node without name and addresses", func(n *Node) { n.Name = ""; n.IPs = nil }, nil,
			[]string{"node: has no name", `node "": has no IP address`}},
		{"IPv6 node", func(n *Node) { n.IPs = []netip.Addr{netip.MustParseAddr("fd00::1")} }, nil,
			[]string{"address fd00::1 is not IPv4"}},
		{"pod CIDR outside the cluster", func(n *Node) { n.PodCIDR = netip.MustParsePrefix("10.245.1.0/24") }, nil,
			[]string{"pod CIDR 10.245.1.0/24 is outside cluster CIDR 10.244.0.0/16"}},
		{"host bits", func(n *Node) { n.ClusterCIDR = netip.MustParsePrefix("10.244.0.1/16") }, nil,
			[]string{"cluster CIDR 10.244.0.1/16 has host bits set (did you mean 10.244.0.0/16?)"}},
		{"cluster IP outside the service CIDR", nil, web(func(s *Service) { s.ClusterIP = netip.MustParseAddr("10.200.0.1") }),
			[]string{`service "default/web": cluster IP 10.200.0.1 is outside the service CIDR 10.96.0.0/12`}},
		{"bad names", nil, web(func(s *Service) { s.Name = "Web_1"; s.Namespace = "-x" }),
			[]string{`namespace "-x" is not a DNS label`, `name "Web_1" is not a DNS label`}},
		{"Local without NodePort", nil, web(func(s *Service) { s.ExternalTrafficPolicy = PolicyLocal }),
			[]string{"externalTrafficPolicy Local needs type NodePort"}},
		{"NodePort without a node port", nil, web(func(s *Service) { s.Type = NodePort }),
			[]string{`service "default/web": ports[0]: has no nodePort (type NodePort needs one)`}},
		{"unnamed ports", nil, web(func(s *Service) { s.Ports = append(s.Ports, ServicePort{Port: 443, Protocol: "SCTP"}) }),
			[]string{"ports[0]: has no name", "ports[1]: has no name", `ports[1]: protocol "SCTP" is not TCP or UDP`}},
		{"affinity timeout", nil, web(func(s *Service) { s.SessionAffinity = AffinityClientIP; s.AffinityTimeout = 2 * 86400 * time.Second }),
			[]string{"affinity timeout 48h0m0s is not a whole number of seconds between 1 and 86400"}},
		{"endpoint without port", nil, web(func(s *Service) { s.Ports[0].Endpoints[0].IP = netip.Addr{}; s.Ports[0].Port = 0 }),
			[]string{"ports[0]: has no port", "endpoints[0]: address invalid IP is not IPv4", "endpoints[0]: has no port"}},
		{"node port taken twice", nil, append(
			web(func(s *Service) { s.Type = NodePort; s.Ports[0].NodePort = 30001 }),
			Service{Name: "other", Type: NodePort, ClusterIP: netip.MustParseAddr("10.96.0.9"), Ports: []ServicePort{{Port: 80, NodePort: 30001}}}),
			[]string{`service "default/other": ports[0]: nodePort 30001/TCP is taken by service "default/web"`}},
		{"service twice", nil, append(web(func(*Service) {}), web(func(*Service) {})...),
			[]string{`service "default/web": defined twice`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			node := node1
			if c.node != nil {
				c.node(&node)
			}
			_, err := Rules(node, c.services)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestEndpointChoice covers what decides which endpoints a node sends to.
func TestEndpointChoice(t *testing.T) {
	s := Service{Name: "web", Type: NodePort, ExternalTrafficPolicy: PolicyLocal, ClusterIP: netip.MustParseAddr("10.96.0.3"),
		Ports: []ServicePort{{Port: 80, TargetPort: 8080, NodePort: 30001, Endpoints: []Endpoint{
			{IP: podB, NodeName: "node2"},
			{IP: podA, NodeName: "node1", Port: 9090},
			{IP: podC, NodeName: "node2", NotReady: true},
			{IP: podB, NodeName: "node2"},
		}}}}
	sp := servicePort{node: &node1, svc: &s, port: &s.Ports[0]}
	cluster, local := sp.endpoints()
	want := []netip.AddrPort{netip.MustParseAddrPort("10.244.1.2:9090"), netip.MustParseAddrPort("10.244.2.2:8080")}
	if len(cluster) != 2 || cluster[0] != want[0] || cluster[1] != want[1] {
		t.Errorf("cluster endpoints %v, want %v (ready only, sorted, once each, port defaulted)", cluster, want)
	}
	if len(local) != 1 || local[0] != want[0] {
		t.Errorf("local endpoints %v, want %v", local, want[:1])
	}
}

func TestPriorityAndDurationText(t *testing.T) {
	for _, c := range []struct {
		hook string
		prio int
		want string
	}{
		{"prerouting", -110, "dstnat - 10"}, {"output", -110, "-110"}, {"prerouting", -100, "dstnat"},
		{"output", -100, "-100"}, {"input", 0, "filter"}, {"postrouting", 100, "srcnat"}, {"forward", 5, "filter + 5"},
		{"forward", -200, "-200"},
	} {
		if got := priorityText(c.hook, c.prio); got != c.want {
			t.Errorf("priorityText(%s, %d) = %q, want %q", c.hook, c.prio, got, c.want)
		}
	}
	for d, want := range map[time.Duration]string{
		10800 * time.Second: "3h", 600 * time.Second: "10m", 90 * time.Second: "1m30s", 86400 * time.Second: "1d", 0: "0s",
	} {
		if got := nftDuration(d); got != want {
			t.Errorf("nftDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
