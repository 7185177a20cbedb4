package kubeproxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/conntrack"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
	"github.com/labctl/labctl/internal/whoami"
)

// testLab is the tutorial's cluster, built by hand from namespaces:
//
//	client 10.128.0.100 ─┐
//	node1 eth0 10.128.0.2 ─┤ bridge br0 in the underlay namespace
//	node2 eth0 10.128.0.3 ─┘
//	node1: bridge cni0 10.244.1.1/24, pods a 10.244.1.2 and c 10.244.1.3
//	node2: bridge cni0 10.244.2.1/24, pods b 10.244.2.2 and d 10.244.2.3
//
// Nodes route each other's pod subnet (host-gw) and forward, with a default
// route to the client, which plays the outside world. The client has no
// route to pod subnets: it reaches pods only through a NodePort.
// Bridge ports are hairpin-capable, as flannel's bridge CNI makes them.
type testLab struct {
	names  map[string]string // role -> namespace name
	nodeOf map[string]string // pod -> node
}

// Addresses of the lab.
var (
	node1IP  = netip.MustParseAddr("10.128.0.2")
	node2IP  = netip.MustParseAddr("10.128.0.3")
	clientIP = netip.MustParseAddr("10.128.0.100")
	gw1      = netip.MustParseAddr("10.244.1.1")
	podIPs   = map[string]netip.Addr{
		"a": netip.MustParseAddr("10.244.1.2"), "c": netip.MustParseAddr("10.244.1.3"),
		"b": netip.MustParseAddr("10.244.2.2"), "d": netip.MustParseAddr("10.244.2.3"),
	}
)

// labNode is the Node model of node n (1 or 2) of the test lab.
func labNode(n int) Node {
	ip := []netip.Addr{node1IP, node2IP}[n-1]
	return Node{
		Name:              fmt.Sprintf("node%d", n),
		IPs:               []netip.Addr{ip},
		PodCIDR:           netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", n)),
		ClusterCIDR:       netip.MustParsePrefix("10.244.0.0/16"),
		ServiceCIDR:       netip.MustParsePrefix("10.96.0.0/12"),
		MasqueradeOutside: true,
	}
}

func newTestLab(t testing.TB) *testLab {
	t.Helper()
	needNft(t)
	hostUnchanged(t)
	base := nstest.Unique(nsPrefix)
	l := &testLab{names: map[string]string{}, nodeOf: map[string]string{"a": "node1", "c": "node1", "b": "node2", "d": "node2"}}
	for _, role := range []string{"underlay", "node1", "node2", "client", "a", "b", "c", "d"} {
		l.names[role] = nstest.AddNamespace(t, base+"-"+role)
	}
	u := l.names["underlay"]
	nstest.IP(t, "-n", u, "link", "add", "br0", "type", "bridge")
	nstest.IP(t, "-n", u, "link", "set", "br0", "up")
	attach := func(role, port string, addr netip.Addr) {
		nstest.IP(t, "-n", u, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", l.names[role])
		nstest.IP(t, "-n", u, "link", "set", port, "master", "br0", "up")
		nstest.IP(t, "-n", l.names[role], "addr", "add", addr.String()+"/24", "dev", "eth0")
		nstest.IP(t, "-n", l.names[role], "link", "set", "eth0", "up")
	}
	attach("node1", "to-node1", node1IP)
	attach("node2", "to-node2", node2IP)
	attach("client", "to-client", clientIP)
	for n, peer := range map[int]netip.Addr{1: node2IP, 2: node1IP} {
		ns := l.names[fmt.Sprintf("node%d", n)]
		nstest.IP(t, "-n", ns, "link", "add", "cni0", "type", "bridge")
		nstest.IP(t, "-n", ns, "addr", "add", fmt.Sprintf("10.244.%d.1/24", n), "dev", "cni0")
		nstest.IP(t, "-n", ns, "link", "set", "cni0", "up")
		nstest.IP(t, "-n", ns, "route", "add", fmt.Sprintf("10.244.%d.0/24", 3-n), "via", peer.String())
		// A route for the service CIDR, as a node's default route gives
		// it: without one, a packet to a cluster IP that is not DNATed
		// fails routing before kube-proxy's filter chains can reject it.
		nstest.IP(t, "-n", ns, "route", "add", "default", "via", clientIP.String())
		sysctl(t, ns, "net/ipv4/ip_forward", "1")
	}
	for pod, ip := range podIPs {
		node := l.names[l.nodeOf[pod]]
		port := "veth-" + pod
		nstest.IP(t, "-n", node, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", l.names[pod])
		nstest.IP(t, "-n", node, "link", "set", port, "master", "cni0", "up")
		nstest.IP(t, "-n", node, "link", "set", port, "type", "bridge_slave", "hairpin", "on")
		nstest.IP(t, "-n", l.names[pod], "addr", "add", ip.String()+"/24", "dev", "eth0")
		nstest.IP(t, "-n", l.names[pod], "link", "set", "eth0", "up")
		gw := netip.AddrFrom4([4]byte{10, 244, ip.As4()[2], 1})
		nstest.IP(t, "-n", l.names[pod], "route", "add", "default", "via", gw.String())
	}
	return l
}

// ns is the path of a role's namespace.
func (l *testLab) ns(role string) string { return netns.Path(l.names[role]) }

// program builds and programs the services into both nodes.
func (l *testLab) program(t testing.TB, services []Service, tweak ...func(*Node)) {
	t.Helper()
	for n := 1; n <= 2; n++ {
		node := labNode(n)
		for _, f := range tweak {
			f(&node)
		}
		rs, err := Rules(node, services)
		if err != nil {
			t.Fatal(err)
		}
		if err := Program(l.ns(node.Name), rs); err != nil {
			t.Fatal(err)
		}
	}
}

// sysctl writes a value under /proc/sys inside namespace ns: the network
// sysctls there belong to the namespace of the writer.
func sysctl(t testing.TB, ns, key, value string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "sh", "-c", "echo "+value+" > /proc/sys/"+key).CombinedOutput()
	if err != nil {
		t.Fatalf("sysctl %s=%s in %s: %v: %s", key, value, ns, err, out)
	}
}

// hostUnchanged fails the test if the host's own nftables ruleset differs
// at its end from its start. It only ever reads the host's ruleset.
func hostUnchanged(t testing.TB) {
	t.Helper()
	before := hostRuleset()
	t.Cleanup(func() {
		if after := hostRuleset(); after != before {
			t.Errorf("the host's nftables ruleset changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// spread asks n times and counts the answers by pod; every ask must work.
func (l *testLab) spread(t *testing.T, from, addr string, n int, udp bool) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		ask := l.askTCP
		if udp {
			ask = l.askUDP
		}
		a, err := ask(from, addr, 2*time.Second)
		if err != nil {
			t.Fatalf("%s -> %s, attempt %d of %d: %v", from, addr, i+1, n, err)
		}
		counts[a.Who]++
	}
	return counts
}

// requireSplit fails unless each of pods got between 40% and 60% of n.
func requireSplit(t *testing.T, counts map[string]int, n int, pods ...string) {
	t.Helper()
	total := 0
	for _, p := range pods {
		share := float64(counts[p]) / float64(n)
		if share < 0.4 || share > 0.6 {
			t.Errorf("%s served %d of %d (%.0f%%), outside 40-60%%: %v", p, counts[p], n, 100*share, counts)
		}
		total += counts[p]
	}
	if total != n {
		t.Errorf("only %d of %d answered by %v: %v", total, n, pods, counts)
	}
}

// errConnRefused is how a TCP client sees ICMP port unreachable: what
// kube-proxy's reject sends.
var errConnRefused = syscall.ECONNREFUSED

var svc1 = Service{
	Name: "kube-svc-1", ClusterIP: netip.MustParseAddr("10.96.0.2"),
	Ports: []ServicePort{{Port: 80, TargetPort: 8080, Endpoints: []Endpoint{
		{IP: podIPs["a"], NodeName: "node1"}, {IP: podIPs["b"], NodeName: "node2"},
	}}},
}

// TestClusterIPSpreadsOverNodes: 400 connections to a ClusterIP whose
// endpoints are on two nodes, from a pod on an endpoint's node (c, beside
// a) and from a pod on the other node (d, beside b), split 40-60%; the
// endpoints see the client's own address, and the per-endpoint counters
// count exactly the connections each got.
func TestClusterIPSpreadsOverNodes(t *testing.T) {
	l := newTestLab(t)
	l.serve(t, "a", 8080)
	l.serve(t, "b", 8080)
	l.program(t, []Service{svc1})
	for _, from := range []string{"c", "d"} {
		t.Run("from "+from, func(t *testing.T) {
			before := hits(t, l.ns(l.nodeOf[from]))
			counts := l.spread(t, from, "10.96.0.2:80", 400, false)
			requireSplit(t, counts, 400, "a", "b")
			after := hits(t, l.ns(l.nodeOf[from]))
			for pod, n := range counts {
				key := netip.AddrPortFrom(podIPs[pod], 8080)
				if got := after[key] - before[key]; got != uint64(n) {
					t.Errorf("counter of endpoint %s grew by %d, but it served %d connections", key, got, n)
				}
			}
			a, err := l.askTCP(from, "10.96.0.2:80", 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if a.Seen != podIPs[from] {
				t.Errorf("%s saw the client as %s, want its pod IP %s (no masquerade inside the cluster)", a.Who, a.Seen, podIPs[from])
			}
		})
	}
}

// hits reads the node's endpoint counters: connections per endpoint.
func hits(t *testing.T, nodeNS string) map[netip.AddrPort]uint64 {
	t.Helper()
	list, err := Counters(nodeNS)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.AddrPort]uint64{}
	for _, h := range list {
		out[h.Endpoint] += h.Packets
	}
	return out
}

// TestHairpin: an endpoint connecting to its own service. With hairpin on
// its bridge port every connection works, about half served by itself, and
// those come back masqueraded to the bridge's address (the endpoint chain
// marks traffic from the endpoint itself). With hairpin off, the kernel
// will not send a frame back out of the port it came in by, and exactly
// the connections that picked the endpoint itself fail.
func TestHairpin(t *testing.T) {
	l := newTestLab(t)
	l.serve(t, "a", 8080)
	l.serve(t, "b", 8080)
	l.program(t, []Service{svc1})
	const n = 400
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		a, err := l.askTCP("a", "10.96.0.2:80", 2*time.Second)
		if err != nil {
			t.Fatalf("attempt %d with hairpin on: %v", i+1, err)
		}
		counts[a.Who]++
		if a.Who == "a" && a.Seen != gw1 {
			t.Errorf("a reached itself seen as %s, want the bridge address %s (masqueraded)", a.Seen, gw1)
		}
		if a.Who == "b" && a.Seen != podIPs["a"] {
			t.Errorf("b saw a as %s, want %s", a.Seen, podIPs["a"])
		}
	}
	requireSplit(t, counts, n, "a", "b")

	nstest.IP(t, "-n", l.names["node1"], "link", "set", "veth-a", "type", "bridge_slave", "hairpin", "off")
	failed, servedBySelf := 0, 0
	for i := 0; i < 24; i++ {
		a, err := l.askTCP("a", "10.96.0.2:80", 250*time.Millisecond)
		switch {
		case err != nil:
			failed++
		case a.Who == "a":
			servedBySelf++
		}
	}
	if servedBySelf != 0 {
		t.Errorf("with hairpin off, %d connections were still served by the endpoint itself", servedBySelf)
	}
	if failed == 0 || failed == 24 {
		t.Errorf("with hairpin off, %d of 24 connections failed; want those that picked a itself (about half)", failed)
	}

	// Why hairpin matters: with bridge netfilter on, the DNAT happens
	// while the frame is being bridged, and the bridge then sends it to
	// the port of the new destination: the one it came in by. Without
	// bridge netfilter the frame goes up to node1's IP stack, is DNATed
	// and routed out of the bridge device, and needs no hairpin.
	sysctl(t, l.names["node1"], "net/bridge/bridge-nf-call-iptables", "0")
	counts = map[string]int{}
	for i := 0; i < 40; i++ {
		a, err := l.askTCP("a", "10.96.0.2:80", 2*time.Second)
		if err != nil {
			t.Fatalf("hairpin off and bridge netfilter off, attempt %d: %v", i+1, err)
		}
		counts[a.Who]++
	}
	if counts["a"] == 0 {
		t.Errorf("with hairpin and bridge netfilter off, a never reached itself: %v", counts)
	}
}

// TestSameNodeNeedsBridgeNetfilter shows why br_netfilter is on in node
// namespaces: c and a share node1's bridge, so a's answer to c goes
// straight across the bridge. Only with net.bridge.bridge-nf-call-iptables
// does that bridged answer pass netfilter, where conntrack turns its
// source back into the service address; without it c gets an answer from
// a's own address, which its socket does not know, and the connection
// fails.
func TestSameNodeNeedsBridgeNetfilter(t *testing.T) {
	l := newTestLab(t)
	l.serve(t, "a", 8080)
	onlyA := svc1
	onlyA.Ports = []ServicePort{{Port: 80, TargetPort: 8080, Endpoints: []Endpoint{{IP: podIPs["a"], NodeName: "node1"}}}}
	l.program(t, []Service{onlyA})
	if _, err := l.askTCP("c", "10.96.0.2:80", 2*time.Second); err != nil {
		t.Fatalf("with bridge netfilter on: %v", err)
	}
	sysctl(t, l.names["node1"], "net/bridge/bridge-nf-call-iptables", "0")
	if a, err := l.askTCP("c", "10.96.0.2:80", 500*time.Millisecond); err == nil {
		t.Errorf("with bridge netfilter off, c still reached %s through the service", a.Who)
	}
	// Across nodes the answer is routed by node2, so it needs nothing.
	if _, err := l.askTCP("d", "10.96.0.2:80", 2*time.Second); err != nil {
		t.Errorf("from another node, with bridge netfilter off on node1: %v", err)
	}
}

// TestNodePortCluster: the client outside the cluster reaches a NodePort
// on either node; with Cluster policy the connection is masqueraded, so
// the pod sees an address of the node the client connected to.
func TestNodePortCluster(t *testing.T) {
	l := newTestLab(t)
	l.serve(t, "a", 8080)
	l.serve(t, "b", 8080)
	web := svc1
	web.Name, web.Type = "web", NodePort
	web.ClusterIP = netip.MustParseAddr("10.96.0.3")
	web.Ports = []ServicePort{{Name: "http", Port: 80, TargetPort: 8080, NodePort: 30001, Endpoints: svc1.Ports[0].Endpoints}}
	l.program(t, []Service{web})
	node1Addrs := []netip.Addr{node1IP, gw1}
	counts := map[string]int{}
	for i := 0; i < 100; i++ {
		a, err := l.askTCP("client", "10.128.0.2:30001", 2*time.Second)
		if err != nil {
			t.Fatalf("client -> node1:30001, attempt %d: %v", i+1, err)
		}
		counts[a.Who]++
		if a.Seen != node1Addrs[0] && a.Seen != node1Addrs[1] {
			t.Errorf("%s saw the client as %s, want one of node1's addresses %v", a.Who, a.Seen, node1Addrs)
		}
	}
	if counts["a"] == 0 || counts["b"] == 0 {
		t.Errorf("NodePort with Cluster policy used only %v", counts)
	}
	if a, err := l.askTCP("client", "10.128.0.3:30001", 2*time.Second); err != nil {
		t.Errorf("client -> node2:30001: %v", err)
	} else if a.Seen == clientIP {
		t.Errorf("%s saw the client's own address through a Cluster NodePort", a.Who)
	}
}

// TestNodePortLocal: with Local policy the pod sees the client itself, and
// a node without a local endpoint does not answer at all (it drops).
func TestNodePortLocal(t *testing.T) {
	l := newTestLab(t)
	l.serve(t, "a", 8080)
	local := Service{Name: "web-local", Type: NodePort, ExternalTrafficPolicy: PolicyLocal,
		ClusterIP: netip.MustParseAddr("10.96.0.4"),
		Ports: []ServicePort{{Name: "http", Port: 80, TargetPort: 8080, NodePort: 30002,
			Endpoints: []Endpoint{{IP: podIPs["a"], NodeName: "node1"}}}}}
	l.program(t, []Service{local})
	for i := 0; i < 20; i++ {
		a, err := l.askTCP("client", "10.128.0.2:30002", 2*time.Second)
		if err != nil {
			t.Fatalf("client -> node1:30002: %v", err)
		}
		if a.Seen != clientIP {
			t.Fatalf("%s saw the client as %s, want the client's own %s", a.Who, a.Seen, clientIP)
		}
	}
	_, err := l.askTCP("client", "10.128.0.3:30002", 500*time.Millisecond)
	if err == nil {
		t.Fatal("node2, which has no local endpoint, answered a Local NodePort")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("node2 refused instead of dropping: %v", err)
	}
	// Inside the cluster the service still works from node2, via the
	// cluster IP: Local applies to external traffic only.
	if _, err := l.askTCP("d", "10.96.0.4:80", 2*time.Second); err != nil {
		t.Errorf("d -> cluster IP of a Local service: %v", err)
	}
}

// TestClientIPAffinity: every connection of a client goes to the endpoint
// its first one picked, while another client is pinned independently.
func TestClientIPAffinity(t *testing.T) {
	l := newTestLab(t)
	for _, p := range []string{"a", "b", "d"} {
		l.serve(t, p, 8080)
	}
	sticky := Service{Name: "sticky", ClusterIP: netip.MustParseAddr("10.96.0.6"), SessionAffinity: AffinityClientIP,
		Ports: []ServicePort{{Port: 80, TargetPort: 8080, Endpoints: []Endpoint{
			{IP: podIPs["a"], NodeName: "node1"}, {IP: podIPs["b"], NodeName: "node2"}, {IP: podIPs["d"], NodeName: "node2"}}}}}
	l.program(t, []Service{sticky})
	// c is a plain client; d is an endpoint itself, whose hairpin
	// connections stick as well.
	for _, from := range []string{"c", "d"} {
		if counts := l.spread(t, from, "10.96.0.6:80", 50, false); len(counts) != 1 {
			t.Errorf("%s was not pinned to one endpoint: %v", from, counts)
		}
	}
	// Without affinity the same clients spread.
	sticky.SessionAffinity = ""
	l.program(t, []Service{sticky})
	if counts := l.spread(t, "c", "10.96.0.6:80", 60, false); len(counts) < 2 {
		t.Errorf("without affinity c still went to one endpoint: %v", counts)
	}
}

// TestUDPService: datagrams from fresh sockets to a UDP service spread over
// the endpoints, and every one is answered from the service address.
func TestUDPService(t *testing.T) {
	l := newTestLab(t)
	l.serve(t, "a", 5353)
	l.serve(t, "b", 5353)
	dns := Service{Namespace: "kube-system", Name: "kube-dns", ClusterIP: netip.MustParseAddr("10.96.0.10"),
		Ports: []ServicePort{{Name: "dns", Protocol: UDP, Port: 53, TargetPort: 5353, Endpoints: svc1.Ports[0].Endpoints}}}
	l.program(t, []Service{dns})
	counts := l.spread(t, "d", "10.96.0.10:53", 400, true)
	requireSplit(t, counts, 400, "a", "b")
}

// TestNoEndpointsRefuses: a service with no ready endpoint rejects at once
// (connection refused, not a timeout); so does a port the cluster IP does
// not serve, while an address of the service CIDR no service has drops.
func TestNoEndpointsRefuses(t *testing.T) {
	l := newTestLab(t)
	l.serve(t, "a", 8080)
	empty := Service{Name: "empty", ClusterIP: netip.MustParseAddr("10.96.0.7"),
		Ports: []ServicePort{{Port: 80, TargetPort: 8080, Endpoints: []Endpoint{{IP: podIPs["a"], NodeName: "node1", NotReady: true}}}}}
	l.program(t, []Service{empty, svc1})
	for _, addr := range []string{"10.96.0.7:80", "10.96.0.2:81"} {
		start := time.Now()
		_, err := l.askTCP("c", addr, 2*time.Second)
		if !errors.Is(err, errConnRefused) {
			t.Errorf("c -> %s: %v, want connection refused", addr, err)
		}
		if time.Since(start) > time.Second {
			t.Errorf("c -> %s took %s to fail", addr, time.Since(start))
		}
	}
	if _, err := l.askTCP("c", "10.96.0.99:80", 300*time.Millisecond); errors.Is(err, errConnRefused) || err == nil {
		t.Errorf("c -> unallocated 10.96.0.99:80: %v, want a silent drop", err)
	}
}

// TestMasqueradeToOutside: a pod's connection to the client (outside the
// cluster) arrives from its node's address; pod to pod keeps pod IPs.
func TestMasqueradeToOutside(t *testing.T) {
	l := newTestLab(t)
	l.serve(t, "client", 9000)
	l.serve(t, "d", 9000)
	l.program(t, nil)
	a, err := l.askTCP("c", "10.128.0.100:9000", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.Seen != node1IP {
		t.Errorf("the client saw c as %s, want node1's address %s", a.Seen, node1IP)
	}
	a, err = l.askTCP("c", "10.244.2.3:9000", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.Seen != podIPs["c"] {
		t.Errorf("d saw c as %s, want c's own %s", a.Seen, podIPs["c"])
	}
	// Off: the pod's own address leaves the node, and the client, which
	// has no route back to pod subnets, never answers.
	l.program(t, nil, func(n *Node) { n.MasqueradeOutside = false })
	if a, err := l.askTCP("c", "10.128.0.100:9000", 300*time.Millisecond); err == nil {
		t.Errorf("with masquerade off the client answered c, seen as %s", a.Seen)
	}
}

// TestReprogramLive: changing a service's endpoints on a live lab takes
// effect at once, and the tables are replaced, not added to.
func TestReprogramLive(t *testing.T) {
	l := newTestLab(t)
	l.serve(t, "a", 8080)
	l.serve(t, "b", 8080)
	l.program(t, []Service{svc1})
	onlyB := svc1
	onlyB.Ports = []ServicePort{{Port: 80, TargetPort: 8080, Endpoints: []Endpoint{{IP: podIPs["b"], NodeName: "node2"}}}}
	l.program(t, []Service{onlyB})
	if counts := l.spread(t, "c", "10.96.0.2:80", 30, false); counts["b"] != 30 {
		t.Errorf("after re-programming only b should serve: %v", counts)
	}
	rs, err := Rules(labNode(1), []Service{onlyB})
	if err != nil {
		t.Fatal(err)
	}
	if got := zeroCounters(nft(t, l.names["node1"], "", "list", "ruleset")); got != rs.Listing() {
		t.Errorf("after re-programming the ruleset is not the new one:\n%s", got)
	}
	if err := Remove(l.ns("node1")); err != nil {
		t.Fatal(err)
	}
	if got := nft(t, l.names["node1"], "", "list", "ruleset"); got != "" {
		t.Errorf("Remove left rules behind:\n%s", got)
	}
}

// TestNftSeesServicesAndCounters reads the programmed rules from the
// outside with nft: they parse, name the service's addresses, and their
// counters are the ones Counters reports.
func TestNftSeesServicesAndCounters(t *testing.T) {
	l := newTestLab(t)
	l.serve(t, "a", 8080)
	l.serve(t, "b", 8080)
	l.program(t, []Service{svc1})
	l.spread(t, "c", "10.96.0.2:80", 20, false)
	listing := nft(t, l.names["node1"], "", "list", "ruleset")
	for _, want := range []string{"10.96.0.2 . tcp . 80 : goto service-", "dnat to 10.244.1.2:8080", "dnat to 10.244.2.2:8080"} {
		if !strings.Contains(listing, want) {
			t.Errorf("nft list ruleset lacks %q:\n%s", want, listing)
		}
	}
	counters, err := Counters(l.ns("node1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range counters {
		line := fmt.Sprintf("counter packets %d bytes %d dnat to %s", c.Packets, c.Bytes, c.Endpoint)
		if !strings.Contains(listing, line) {
			t.Errorf("nft does not show %q for %s", line, c.Chain)
		}
	}
	// conntrack on node1 shows the DNAT: asked for the cluster IP,
	// answered by an endpoint.
	flows, err := conntrack.List(l.ns("node1"))
	if err != nil {
		t.Fatal(err)
	}
	natted := 0
	for _, f := range flows {
		if f.Original.Dst == svc1.ClusterIP && f.Original.Src == podIPs["c"] {
			if f.Reply.Src != podIPs["a"] && f.Reply.Src != podIPs["b"] || f.Reply.SrcPort != 8080 || !f.DestinationNAT() {
				t.Errorf("conntrack entry %s does not show a DNAT to an endpoint", f)
			}
			natted++
		}
	}
	if natted != 20 {
		t.Errorf("conntrack on node1 has %d flows from c to the cluster IP, want 20", natted)
	}
	// The same listing, counters zeroed, is what the script says.
	rs, err := Rules(labNode(1), []Service{svc1})
	if err != nil {
		t.Fatal(err)
	}
	if zeroCounters(listing) != rs.Listing() {
		t.Errorf("the live listing differs from the script's tables")
	}
}

// TestRefusesHostNamespace: the process's own namespace is the host's.
func TestRefusesHostNamespace(t *testing.T) {
	nstest.NeedRoot(t)
	rs, err := Rules(labNode(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/proc/self/ns/net", fmt.Sprintf("/proc/%d/ns/net", os.Getpid())} {
		if err := Program(path, rs); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("Program(%s) = %v, want a refusal", path, err)
		}
	}
	if err := Remove("/proc/self/ns/net"); err == nil {
		t.Error("Remove accepted the host's namespace")
	}
}

// serve answers every connection to port in pod's namespace, TCP and UDP,
// with "<pod> <address the client came from>" (whoami.Serve).
func (l *testLab) serve(t testing.TB, pod string, port int) {
	t.Helper()
	whoami.Serve(t, l.ns(pod), pod, port, port)
}

// askTCP connects from the role's namespace to addr and reads the answer.
func (l *testLab) askTCP(from, addr string, timeout time.Duration) (whoami.Answer, error) {
	return whoami.Ask(l.ns(from), "tcp", addr, timeout)
}

// askUDP sends one datagram from a fresh socket (a new source port, so a
// new conntrack entry) and reads the answer.
func (l *testLab) askUDP(from, addr string, timeout time.Duration) (whoami.Answer, error) {
	return whoami.Ask(l.ns(from), "udp", addr, timeout)
}
