package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/spec"
)

// addLaptop gives a copied tutorial lab a second external host, on the
// underlay next to the nodes, running a web server.
func addLaptop(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("  - name: laptop               # on the underlay, next to the nodes\n    containers: [{name: web, builtin: web-server}]\n"); err != nil {
		t.Fatal(err)
	}
}

// masqueradeOff switches a copied topology's masquerading off.
func masqueradeOff(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "  masquerade: true", "  masquerade: false", 1)
	if s == string(data) {
		t.Fatalf("%s has no masquerade: true line", path)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// upTutorial brings a copy of the tutorial's lab up (edited first), for a
// root test that runs in parallel with the others.
func upTutorial(t *testing.T, prefix string, edits ...func(*testing.T, string)) (cli, string, *spec.Topology) {
	t.Helper()
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	path, name := c.up("tutorial.yaml", prefix, edits...)
	topo, err := spec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c, name, topo
}

// The tutorial's lab with VM1 behind the router and a laptop on the
// underlay: both reach the nodes and each other; every pod reaches both,
// masqueraded to its node's address, while pod-to-pod traffic keeps the
// pods' addresses; neither reaches a pod (no route to the pod network:
// the router answers network unreachable); the nodes hold flannel's
// masquerade table; trace, status, graph, capture, exec and logs know
// the external hosts.
func TestExternalHosts(t *testing.T) {
	c, name, topo := upTutorial(t, "tex", addLaptop)
	vm1, _ := topo.External("vm1")
	laptop, _ := topo.External("laptop")
	if laptop.IP != netip.MustParseAddr("10.128.0.4") || laptop.Gateway != netip.MustParseAddr("10.128.0.1") {
		t.Fatalf("laptop %s via %s, want 10.128.0.4 (after the router and the nodes) via the router", laptop.IP, laptop.Gateway)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ping := func(from string, to netip.Addr) probe.PingResult {
		t.Helper()
		res, err := probe.Ping(ctx, nsOf(name, from), to, probe.PingOptions{Count: 1, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("ping %s -> %s: %v", from, to, err)
		}
		return res
	}

	// The outside world: VM1 and the laptop reach the nodes and each
	// other through the router, which forwards without NAT.
	for _, tc := range []struct {
		from string
		to   netip.Addr
		ttl  int
	}{
		{"vm1", topo.Nodes[0].IP, 63}, {"vm1", laptop.IP, 63}, {"laptop", topo.Nodes[1].IP, 64}, {"laptop", vm1.IP, 63},
	} {
		if res := ping(tc.from, tc.to); res.Received != 1 || res.Echoes[0].TTL != tc.ttl {
			t.Errorf("%s -> %s: %d replies, TTL %d (want %d): %v", tc.from, tc.to, res.Received, res.Echoes[0].TTL, tc.ttl, res.Err())
		}
	}
	if out := c.must("exec", "--lab", name, "vm1", "-c", "client", "--", "curl", "-s", "http://10.128.0.4/"); !strings.Contains(out, "HTTP Server IP address: 10.128.0.4") {
		t.Errorf("vm1's curl to the laptop: %s", out)
	}
	if out := c.must("logs", "--lab", name, "laptop", "-c", "web"); !strings.Contains(out, "10.130.0.10 - - [") {
		t.Errorf("the laptop's server did not log vm1's own address (no NAT between external hosts):\n%s", out)
	}

	// Pods reach the outside masqueraded, pods keep their addresses
	// between them, nothing outside reaches a pod.
	checkOutside(t, topo)
	checkNetworkModel(t, topo)

	// trace from an external host: to a node it arrives; to a pod it
	// stops at the router (exit 1).
	if out, code := c.run("trace", name, "vm1", "node01"); code != 0 || !strings.Contains(out, "router") || !strings.Contains(out, "delivered") {
		t.Errorf("trace vm1 node01: exit %d:\n%s", code, out)
	}
	if out, code := c.run("trace", name, "vm1", "redapp1"); code != 1 || !strings.Contains(out, "stopped in router") {
		t.Errorf("trace vm1 redapp1: exit %d, want 1 and a stop in the router:\n%s", code, out)
	}
	if out := c.must("trace", name, "blueapp2", "vm1"); !strings.Contains(out, "snat 192.168.2.12 → 10.128.0.3") {
		t.Errorf("trace blueapp2 vm1 does not show the masquerade on node02:\n%s", out)
	}

	// A capture on VM1 sees the pod's request from its node's address.
	captureSees(t, c, name, "vm1:eth0", "IP 10.128.0.2 > 10.130.0.10: ICMP echo request", func() { ping("redapp1", vm1.IP) })

	// Status, JSON and table, and the picture.
	var doc struct {
		Network    struct{ Masquerade bool }
		Namespaces []struct {
			Role, Name, IP, Network, Gateway string
			Networks                         []string
			State                            string
			Pod                              *struct{ Phase string }
		}
	}
	if err := json.Unmarshal([]byte(c.must("status", name, "-o", "json")), &doc); err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, ns := range doc.Namespaces {
		roles[ns.Name] = ns.Role + " " + ns.IP + " " + ns.Network + " " + ns.Gateway + " " + strings.Join(ns.Networks, ",") + " " + ns.State
		if ns.Name == "vm1" && (ns.Pod == nil || ns.Pod.Phase != "Running") {
			t.Errorf("vm1's containers in status: %+v", ns.Pod)
		}
	}
	for obj, want := range map[string]string{
		"router": "router 10.128.0.1   10.128.0.0/24,10.130.0.0/24 ours",
		"vm1":    "external 10.130.0.10 10.130.0.0/24 10.130.0.1  ours",
		"laptop": "external 10.128.0.4 10.128.0.0/24 10.128.0.1  ours",
	} {
		if roles[obj] != want {
			t.Errorf("status -o json %s: %q, want %q", obj, roles[obj], want)
		}
	}
	if !doc.Network.Masquerade {
		t.Error("status -o json: network.masquerade is not set")
	}
	table := c.must("status", name)
	for _, want := range []string{"router 10.128.0.1 joins 10.130.0.0/24 (10.130.0.1); 2 external hosts", "EXTERNAL  READY", "laptop    1/1    Running"} {
		if !strings.Contains(table, want) {
			t.Errorf("status lacks %q:\n%s", want, table)
		}
	}
	if obj := c.must("status", name, "vm1"); !strings.HasPrefix(obj, "External host vm1 of lab "+name+": namespace "+name+"-vm1, IP 10.130.0.10, network 10.130.0.0/24, default gateway 10.130.0.1") {
		t.Errorf("status %s vm1:\n%s", name, obj)
	}
	graph := c.must("graph", name)
	for _, want := range []string{"router  joins the external networks", "router-eth1 on ext1, network 10.130.0.0/24", "vm1     10.130.0.10/24  eth0 ─ veth-vm1 on ext1, default via 10.130.0.1", "laptop  10.128.0.4/24"} {
		if !strings.Contains(graph, want) {
			t.Errorf("graph lacks %q:\n%s", want, graph)
		}
	}
}

// captureSees runs `labctl capture` on one target while do() sends
// traffic, and fails unless a printed packet contains want.
func captureSees(t *testing.T, c cli, name, target, want string, do func()) {
	t.Helper()
	cmd := exec.Command(c.bin, "--state-dir", c.state, "capture", name, target, "-f", "icmp", "-c", "1", "--duration", "10s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "listening on") {
				once = true
				close(listening)
			}
		}
		if !once {
			close(listening)
		}
	}()
	<-listening
	do()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("capture %s: %v:\n%s", target, err, out.String())
	}
	if !strings.Contains(out.String(), want) {
		t.Errorf("capture %s saw:\n%s\nwant a packet %q", target, out.String(), want)
	}
}

// With masquerading off, a pod's request reaches VM1 from the pod's own
// address, and VM1's answer dies at the router, which has no route back
// to the pod network: the pod waits in vain. This is what a student sees
// without the tutorial's SNAT rule.
func TestMasqueradeOff(t *testing.T) {
	c, name, topo := upTutorial(t, "tmo", masqueradeOff)
	vm1, _ := topo.External("vm1")
	pod := topo.Pods()[1] // blueapp1

	// The request arrives from the pod's address; the reply is lost.
	out, code := c.run("trace", name, pod.Name, "vm1", "--tcp", "80")
	for _, want := range []string{
		"request: IP 192.168.1.12.", // the pod's address, not node01's
		"delivered: 10.130.0.10 is local",
		"stopped in router (eth1): router has no route to 192.168.1.12",
		"which never came back: it stopped in router (no-route)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("trace %s vm1 --tcp 80 (exit %d) lacks %q:\n%s", pod.Name, code, want, out)
		}
	}
	if strings.Contains(out, "snat") {
		t.Errorf("trace shows a masquerade that is off:\n%s", out)
	}
	// The SYN-ACK never comes back: give up after a few SYNs.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := probe.CheckTCP(ctx, nsOf(name, pod.Name), nsOf(name, "vm1"), netip.AddrPortFrom(vm1.IP, 23000)); err == nil {
		t.Error("a pod connected to vm1 without masquerade: the reply found a way back to the pod network")
	}
	if out, code := c.run("exec", "--lab", name, pod.Name, "-c", "client", "--", "curl", "-s", "-m", "2", "http://10.130.0.10/"); code == 0 {
		t.Errorf("curl from %s to vm1 without masquerade succeeded:\n%s", pod.Name, out)
	}
	// No node has flannel's table, VM1 still reaches no pod; pods still
	// reach pods.
	checkOutside(t, topo)
	checkNetworkModel(t, topo)
}

// A lab that lost its router and an external host is degraded; a repair
// rebuilds both (their underlay ends removed first), restarts the external
// host's containers, and pods reach it masqueraded again.
func TestExternalHostsRepair(t *testing.T) {
	c, name, topo := upTutorial(t, "txr")
	path := topo.File
	for _, obj := range []string{"router", "vm1"} {
		if out, code := run(t, "ip", "netns", "del", name+"-"+obj); code != 0 {
			t.Fatalf("ip netns del: %s", out)
		}
	}
	status, code := c.run("status", name)
	for _, want := range []string{`the router namespace "` + name + `-router" is missing`, `external host "vm1": namespace "` + name + `-vm1" is missing`} {
		if !strings.Contains(status, want) {
			t.Errorf("status of the damaged lab (exit %d) lacks %q:\n%s", code, want, status)
		}
	}
	if out, code := c.run("up", path); code != 5 {
		t.Fatalf("up of the degraded lab: exit %d, want 5:\n%s", code, out)
	}
	out := c.must("up", "--repair", path)
	for _, want := range []string{"rebuilt namespaces", name + "-router", name + "-vm1", `restarted the containers of external hosts "vm1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("repair says:\n%s\nlacking %q", out, want)
		}
	}
	vm1, _ := topo.External("vm1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cc, err := probe.CheckTCP(ctx, nsOf(name, "redapp2"), nsOf(name, "vm1"), netip.AddrPortFrom(vm1.IP, 23001))
	if err != nil || cc.Seen.Addr() != topo.Nodes[1].IP {
		t.Errorf("redapp2 -> vm1 after the repair: seen from %v, %v; want node02's address", cc.Seen, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, code := c.run("exec", "--lab", name, "blueapp1", "-c", "client", "--", "curl", "-s", "-m", "2", "http://10.130.0.10/")
		if code == 0 && strings.Contains(out, "HTTP Server IP address: 10.130.0.10") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vm1's web server is not back after the repair: exit %d\n%s", code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkOutside proves what a lab promises outside its cluster: every node
// holds flannel's masquerade table when the lab masquerades, and none
// otherwise; when it masquerades, every pod reaches every external host
// from its node's address; no external host reaches a pod's address, and
// the router (where the host's default route leads) says network
// unreachable; the router and the external hosts have the addresses and
// routes the topology gives them, and the nodes their default route to
// the router.
func checkOutside(t *testing.T, topo *spec.Topology) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, pod := range topo.Pods() {
		node, _ := topo.Node(pod.Node)
		if !topo.Network.Masquerade {
			break // no answer finds its way back (TestMasqueradeOff)
		}
		for _, e := range topo.Externals {
			cc, err := probe.CheckTCP(ctx, nsOf(topo.Name, pod.Name), nsOf(topo.Name, e.Name), netip.AddrPortFrom(e.IP, uint16(22000+i)))
			switch {
			case err != nil:
				t.Errorf("tcp %s -> %s: %v", pod.Name, e.Name, err)
			case cc.Seen.Addr() != node.IP:
				t.Errorf("tcp %s -> %s: seen from %s, want its node's address %s (masquerade)", pod.Name, e.Name, cc.Seen.Addr(), node.IP)
			}
		}
	}
	// The nodes' masquerade table, as nft reads it back.
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("this test reads the nodes' rules with nft (apt-get install nftables)")
	}
	for _, n := range topo.Nodes {
		out, code := run(t, "ip", "netns", "exec", topo.Name+"-"+n.Name, "nft", "list", "ruleset")
		const masq = "ip saddr " + "%s ip daddr != 224.0.0.0/4 masquerade fully-random"
		if has := strings.Contains(out, fmt.Sprintf(masq, topo.Network.ClusterCIDR)); code != 0 || has != topo.Network.Masquerade {
			t.Errorf("%s's ruleset (exit %d), masquerade %v:\n%s", n.Name, code, topo.Network.Masquerade, out)
		}
	}
	if len(topo.Externals) == 0 {
		return
	}
	target := topo.Pods()[0].IP
	for _, e := range topo.Externals {
		res, err := probe.Ping(ctx, nsOf(topo.Name, e.Name), target, probe.PingOptions{Count: 1, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("ping %s -> %s: %v", e.Name, target, err)
		}
		// The router's "network unreachable" may be held back: the kernel
		// limits the ICMP errors it sends to one host (icmp_ratelimit),
		// and an earlier test may have drawn on VM1's share.
		from := res.Echoes[0].From
		if res.Received != 0 || (e.Gateway.IsValid() && from.IsValid() && from != e.Gateway) {
			t.Errorf("%s -> pod %s: %d replies, answered by %s (%v); want network unreachable from the router %s", e.Name, target, res.Received, res.Echoes[0].From, res.Err(), e.Gateway)
		}
		routes := routeLines(t, handleIn(t, topo.Name, e.Name))
		if e.Gateway.IsValid() && !slices.Contains(routes, "default via "+e.Gateway.String()+" dev eth0") {
			t.Errorf("%s's routes lack its default via the router: %v", e.Name, routes)
		}
	}
	if r := topo.Router; r != nil {
		want := []string{"eth0 " + netip.PrefixFrom(r.IP, topo.Network.Underlay.Bits()).String()}
		for _, n := range r.Networks {
			want = append(want, n.Device+" "+netip.PrefixFrom(n.Gateway, n.CIDR.Bits()).String())
		}
		nh := handleIn(t, topo.Name, spec.RouterName)
		for _, w := range want {
			dev, addr, _ := strings.Cut(w, " ")
			l, err := nh.LinkByName(dev)
			if err != nil {
				t.Fatalf("router: %v", err)
			}
			addrs, _ := nh.AddrList(l, unix.AF_INET)
			if len(addrs) != 1 || addrs[0].IPNet.String() != addr {
				t.Errorf("router %s: %v, want %s", dev, addrs, addr)
			}
		}
		for _, n := range topo.Nodes {
			if routes := routeLines(t, handleIn(t, topo.Name, n.Name)); !slices.Contains(routes, "default via "+r.IP.String()+" dev eth0") {
				t.Errorf("%s's routes lack its default via the router: %v", n.Name, routes)
			}
		}
	}
}
